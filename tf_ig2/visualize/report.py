"""The HTML report of an explanation run: one self-contained page, text and relative picture links.

:func:`report_html` is pure (dicts and strings in, a string out): the command line writes what it
returns as ``index.html`` beside ``summary.json`` and the pictures it links to. Every text is
HTML-escaped; pictures are linked by relative paths (or inline ``data:image/...`` URIs) only, so
that the folder can be moved, zipped and shared.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

from tf_ig2.visualize.markup import end_label, html_table, html_text

#: A scheme (``http:``, ``file:``) or a Windows drive (``C:``) at the start of a link.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")

_STYLE = ("body{font-family:sans-serif;margin:1.5em;color:#222}"
          "table{border-collapse:collapse;margin:0.5em 0}"
          "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}"
          "section{margin:1.5em 0;border-top:1px solid #ddd}"
          "img{image-rendering:pixelated;margin:4px 8px 4px 0;vertical-align:top}"
          ".note{background:#fff6d5;padding:4px 8px}")
#: Added for several targets per input: each target's block of pictures side by side.
_TARGETS_STYLE = ".target{display:inline-block;margin-right:1em}h4{margin:0.5em 0 0}"


def picture_source(source: str) -> str:
    """A picture link made safe for ``src``: a relative path (URL-quoted) or a ``data:image/`` URI.

    Raises:
        ValueError: If ``source`` is absolute (``/x``, ``C:\\x``), has a scheme other than
            ``data:image/``, or climbs out of the report's folder (``..``).
    """
    if not isinstance(source, str) or not source:
        raise ValueError(f"A picture source must be a non-empty path relative to the report's folder. Received: "
                         f"{source!r}")
    if source.startswith("data:image/"):
        return source
    parts = re.split(r"[\\/]", source)
    if source.startswith(("/", "\\")) or _SCHEME.match(source) or ".." in parts:
        raise ValueError("Pictures in the report must be linked by paths relative to its folder, inside it. "
                         f"Received: {source!r}")
    return urllib.parse.quote(source.replace("\\", "/"))


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}"


def _setting(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _distances(record: Mapping[str, Any]) -> Optional[str]:
    items = record.get("representation_distance")
    if not items:
        return None
    return "; ".join(f"r{item['reference']}: {_number(item['start'])} \u2192 {_number(item['end'])}" for item in items)


def _facts(summary: Mapping[str, Any]) -> List[Tuple[str, Any]]:
    end = end_label(summary.get("method"))
    facts = [("method", summary.get("method")), ("representation", summary.get("representation") or "-"),
             ("inputs shape", summary.get("inputs_shape"))]
    if summary.get("target_count") is not None:
        facts += [("targets per input", summary.get("target_count")),
                  ("attributions shape", summary.get("attributions_shape") or "-")]
    facts.append((f"counterfactuals ({end}) shape", summary.get("counterfactuals_shape") or "-"))
    counts = summary.get("counts")
    if isinstance(counts, Mapping):
        facts += [(f"{key.replace('_', ' ')}", value) for key, value in counts.items()]
    deltas = summary.get("completeness_delta")
    if isinstance(deltas, Mapping):
        facts += [("mean |completeness delta|", _number(deltas.get("mean_abs"))),
                  ("max |completeness delta|", _number(deltas.get("max_abs")))]
    facts.append(("tf_ig2 version", summary.get("tf_ig2_version")))
    return [(key, "-" if value is None else value) for key, value in facts]


def _images(pictures: Iterable[Tuple[str, str]]) -> str:
    return "".join(f'<img src="{html_text(picture_source(source))}" alt="{html_text(alt)}" loading="lazy">'
                   for source, alt in pictures)


def _class(entry: Mapping[str, Any]) -> str:
    """A target's class as shown: ``"3"``, or ``"3 (cat)"`` when the entry has a ``class_name``."""
    target = _number(entry.get("target"))
    return f"{target} ({entry['class_name']})" if entry.get("class_name") is not None else target


def _score_row(entry: Mapping[str, Any]) -> List[str]:
    """A target's class, scores, completeness delta and relative delta, as table cells."""
    return [_class(entry), _number(entry.get("score")), _number(entry.get("gradcf_score")),
            _number(entry.get("completeness_delta")),
            _number(entry["relative_delta"]) if entry.get("relative_delta") is not None
            else "no score change to attribute"]


def _section(record: Mapping[str, Any], method: Any, pictures: Sequence[Tuple[str, str]],
             target_pictures: Optional[Mapping[Tuple[int, int], Sequence[Tuple[str, str]]]] = None) -> str:
    end = end_label(method)
    index = record.get("index")
    heading = f"#{index}" + (f" {record['name']}" if record.get("name") else "")
    header = ["target", "f(x)", f"f({end})", "completeness delta", "relative delta"]
    distances = _distances(record)
    several = record.get("targets")
    if several is None:
        row = _score_row(record)
        if distances is not None:
            header.append("representation distance (start \u2192 end)")
            row.append(distances)
        return (f'<section id="input-{html_text(index)}"><h3>{html_text(heading)}</h3>'
                f"{html_table(header, [row])}{_images(pictures)}</section>")
    # Several targets: one row per target, then each target's pictures under its class.
    shared = (html_table(["representation distance (start \u2192 end), shared by the targets"], [[distances]])
              if distances is not None else "")
    blocks = "".join(
        f'<div class="target" id="input-{html_text(index)}-target-{column}"><h4>class {html_text(_class(entry))}'
        f"</h4>{_images((target_pictures or {}).get((index, column), ()))}</div>"
        for column, entry in enumerate(several))
    return (f'<section id="input-{html_text(index)}"><h3>{html_text(heading)}</h3>'
            f"{html_table(header, [_score_row(entry) for entry in several])}{shared}{blocks}{_images(pictures)}"
            "</section>")


def _reading_guide(summary: Mapping[str, Any]) -> str:
    """A few sentences saying what the pictures and numbers of the page mean."""
    end = end_label(summary.get("method"))
    shape = summary.get("counterfactuals_shape")
    references = int(shape[1]) if isinstance(shape, (list, tuple)) and len(shape) > 1 else None
    over = f"the mean over its {references} references" if references and references > 1 else "one per reference"
    where = (f"{end} is the end of the GradPath: the point reached from the input by fixed-length steps that "
             f"bring the model's representation towards that of a reference, a counterfactual close to the input"
             if summary.get("representation") else f"the {end} is where the integration path starts")
    sentences = [
        f"Each input's panel shows, left to right: the input; its {end} ({over}; {where}); the signed "
        f"attribution, red where a feature raises the explained score and blue where it lowers it, on one "
        f"symmetric scale given by its colour bar; and the attribution's magnitude over the grey input, "
        f"with its own colour bar.",
        f"The table gives the explained class (target), its score f(x) and f({end}) (averaged over the "
        f"references), the completeness delta (the attributions' sum minus f(x) - f({end}); small against "
        f"the score gap is good) and the relative delta (|delta| over that gap; \"no score change to "
        f"attribute\" when the gap is negligible, as for an untrained model).",
    ]
    if summary.get("target_count") is not None:
        sentences.append(f"Several classes were explained per input ({summary['target_count']} targets): the table "
                         f"has one row per target, each target has its own panel, and the {end} and the path are "
                         f"shared by the targets.")
    if summary.get("representation"):
        sentences.append(f"Representation distance (start \u2192 end): how far the representation of the path's "
                         f"point is from each reference's, at the input and at {end}; the path did its work when "
                         f"the end is much smaller than the start.")
    return "".join(f"<p>{html_text(sentence)}</p>" for sentence in sentences)


def report_html(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]], *,
                pictures: Optional[Mapping[int, Sequence[Tuple[str, str]]]] = None, notes: Sequence[str] = (),
                title: str = "tf-ig2 explanation",
                target_pictures: Optional[Mapping[Tuple[int, int], Sequence[Tuple[str, str]]]] = None) -> str:
    """An HTML page: the run's facts and settings, notes, then one section per input.

    Args:
        summary: The run's summary as written to ``summary.json``: ``method``,
            ``representation``, ``inputs_shape``, ``counterfactuals_shape``, ``settings``,
            ``tf_ig2_version`` and, for streamed runs, ``counts`` and ``completeness_delta``.
        records: The inputs shown, as ``summary.json`` lists them: ``index``, ``name``,
            ``target`` (and ``class_name``), ``score``, ``gradcf_score``, ``completeness_delta``,
            ``relative_delta`` and, for IG², ``representation_distance``
            (``[{reference, start, end}, ...]``). For several targets per input (a summary with
            ``target_count``), ``targets`` lists those fields but the distances per target: the
            input's section then has one row per target, and a block per target with its class
            and its pictures.
        pictures: ``{index: [(source, alt text), ...]}``: each input's pictures, linked by a path
            relative to the report's folder or a ``data:image/`` URI (see :func:`picture_source`).
        notes: Sentences shown above the inputs, e.g. that only the first inputs are shown.
        title: The page title.
        target_pictures: ``{(index, j): [(source, alt text), ...]}``: the pictures of the j-th
            target of each input, for records with ``targets``.

    Returns:
        The page, a complete HTML5 document; every text is escaped.

    Raises:
        ValueError: If a picture source is absolute, has a scheme or leaves the folder.
    """
    pictures = pictures or {}
    settings = summary.get("settings") or {}
    facts = html_table(["run", ""], [(key, value) for key, value in _facts(summary)])
    settings_table = html_table(["setting", "value"], [(key, _setting(value)) for key, value in settings.items()])
    note_html = "".join(f'<p class="note">{html_text(note)}</p>' for note in notes)
    style = _STYLE + (_TARGETS_STYLE if summary.get("target_count") is not None else "")
    sections = "".join(_section(record, summary.get("method"), pictures.get(record.get("index"), ()),
                                target_pictures) for record in records)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html_text(title)}</title><style>{style}</style></head><body>"
            f"<h1>{html_text(title)}</h1><h2>How to read this page</h2>{_reading_guide(summary)}"
            f"{facts}<h2>Settings</h2>{settings_table}"
            f"<h2>Inputs</h2>{note_html}{sections}</body></html>\n")
