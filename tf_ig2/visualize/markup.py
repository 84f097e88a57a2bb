"""Text made safe for where it is shown: HTML (notebooks, reports) and Markdown (TensorBoard's text tab).

Everything here is pure: strings and arrays in, strings out. The HTML helpers are what an HTML report
or a notebook summary builds on; :func:`explanation_html` is ``Explanation._repr_html_``.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any, List, Optional, Sequence

import numpy as np

#: Characters escaped in Markdown (TensorBoard renders Markdown, then removes any HTML it does not
#: allow, so ``<`` and ``&`` become entities).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|])")

#: Inputs listed one by one in :func:`explanation_html`; beyond it only the summary line.
HTML_MAX_ROWS: int = 10


def markdown_text(text: Any) -> str:
    """``text`` as literal Markdown: special characters backslash-escaped, ``& < >`` as entities, one line."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))
    return escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def html_text(text: Any) -> str:
    """``str(text)`` escaped for HTML text and attribute values (``& < > " '``)."""
    return html.escape(str(text), quote=True)


def html_image(picture: Any, alt: str = "") -> str:
    """An ``<img>`` tag holding a uint8 RGB picture inline as a PNG data URI.

    Args:
        picture: ``(H, W, 3)`` uint8 RGB, e.g. a :func:`~tf_ig2.visualize.panel`.
        alt: The image's description (escaped).

    Returns:
        ``<img src="data:image/png;base64,..." alt="..." width="W" height="H">``.
    """
    from tf_ig2.visualize.png import encode_png

    picture = np.asarray(picture)
    data = base64.b64encode(encode_png(picture)).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" alt="{html_text(alt)}" width="{picture.shape[1]}" '
            f'height="{picture.shape[0]}">')


def end_label(method: Any) -> str:
    """What the path's end point is called, as the method registry says (``"GradCF"`` for IG²)."""
    from tf_ig2.methods import registry as methods  # the registry, without TensorFlow

    return methods.end_name(method)


def end_column_label(method: Any, references: int) -> str:
    """The counterfactual column's label: ``"GradCF"``, or ``"GradCF (mean of 4)"`` over 4 references."""
    label = end_label(method)
    return f"{label} (mean of {references})" if references > 1 else label


def class_label(target: Any, class_names: Optional[Sequence[Any]] = None) -> str:
    """``"3"``, or ``"3 (three)"`` when ``class_names`` names it; ``"-"`` for no target."""
    if target is None:
        return "-"
    target = int(target)
    if class_names is not None and 0 <= target < len(class_names):
        return f"{target} ({class_names[target]})"
    return str(target)


def caption(explanation: Any, index: int, class_names: Optional[Sequence[Any]] = None, *,
            label: Optional[str] = None) -> List[str]:
    """Two lines describing explained input ``index``: its class, then its scores and completeness gap.

    ``label`` names the row in place of ``#index`` (e.g. ``"#0 target 2/3:"``).

    Returns:
        ``["#0 class 3 (three)", "f(x) 2.31  f(GradCF) -1.2  delta +0.012 (0.52%)"]``; the
        percentage is :attr:`~tf_ig2.Explanation.relative_delta`. ``f(GradCF)`` is the mean over
        the references.
    """
    target = None if explanation.targets is None else explanation.targets[index]
    relative = float(explanation.relative_delta[index])
    completeness = (f"delta {float(explanation.delta[index]):+.2g} ({100.0 * relative:.2g}%)" if np.isfinite(relative)
                    else "no score change to attribute")
    return [f"{f'#{index}' if label is None else label} class {class_label(target, class_names)}",
            f"f(x) {float(explanation.target_scores[index]):.3g}  "
            f"f({end_label(explanation.method)}) {float(explanation.counterfactual_scores[index]):.3g}  "
            + completeness]


def _shape(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_shape(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_shape(item) for item in value)
    array = np.asarray(value)
    return f"{array.dtype} {tuple(array.shape)}"


def _cell(value: float) -> str:
    return f"{float(value):.4g}"


def html_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A plain ``<table>`` of escaped cells (one header row)."""
    head = "".join(f"<th>{html_text(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html_text(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def explanation_html(explanation: Any, *, class_names: Optional[Sequence[str]] = None,
                     max_rows: int = HTML_MAX_ROWS) -> str:
    """A compact HTML summary of an :class:`~tf_ig2.Explanation` for notebooks.

    Args:
        explanation: The explanation (any object with its fields).
        class_names: Names of the classes, indexed by target.
        max_rows: Inputs listed one per row; the rest are counted.

    Returns:
        An HTML ``<div>``: the method, the shapes, then per input the target, ``f(x)``, the
        counterfactual's score, ``delta`` and ``|delta| / |f(x) - f(x')|``. Every value is escaped.
    """
    count = len(explanation.target_scores)
    end = end_label(explanation.method)
    facts = [("method", explanation.method), ("inputs", count),
             ("attributions", _shape(explanation.attributions)),
             (f"counterfactuals ({end})", _shape(explanation.counterfactuals))]
    if explanation.path is not None:
        facts.append(("path", _shape(explanation.path)))
    if explanation.representation is not None:
        facts.append(("representation", explanation.representation))
    if explanation.representation_distance is not None:
        facts.append(("representation distance at the end (mean)",
                      _cell(np.mean(np.asarray(explanation.representation_distance)[..., -1]))))
    if count:
        facts.append(("max |delta|", _cell(np.max(np.abs(explanation.delta)))))
    summary = "".join(f"<tr><th style=\"text-align: left\">{html_text(key)}</th><td>{html_text(value)}</td></tr>"
                      for key, value in facts)
    relative = explanation.relative_delta
    rows = []
    for index in range(min(count, max_rows)):
        # one row per target: (N,) fields have one, (N, T) fields T
        fields = [None if values is None else np.atleast_1d(values[index]) for values in
                  (explanation.targets, explanation.target_scores, explanation.counterfactual_scores,
                   explanation.delta, relative)]
        for column in range(len(fields[1])):
            target = class_label(None if fields[0] is None else fields[0][column], class_names)
            rows.append([index, target] + [_cell(values[column]) for values in fields[1:]])
    table = html_table(["#", "target", "f(x)", f"f({end})", "delta", "relative delta"], rows) if rows else ""
    more = (f"<p>... and {count - max_rows} more inputs</p>" if count > max_rows else "")
    return (f"<div><strong>{html_text(type(explanation).__name__)}</strong>"
            f"<table>{summary}</table>{table}{more}</div>")
