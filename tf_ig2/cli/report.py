"""The command line's pictures and its HTML report, written beside ``summary.json``.

For image inputs ``(N, H, W, C)`` (other inputs get the report only):

- ``overlay_000.png`` ... and ``grid.png``: each input blended with its attribution magnitude,
  and all of them tiled (in-memory runs only);
- ``panel_000.png`` ...: one panel per input, :func:`tf_ig2.visualize.panel`: the input, GradCF
  (the baseline for IG and Guided IG; streamed runs keep no counterfactuals and leave it out), the
  signed attribution with its colour bar, and the magnitude over the grey input;
- ``path_000.png`` ... (``--path-strip``, IG² only): the GradPath towards the first reference at
  0, 25, 50, 75 and 100% of its steps, :func:`tf_ig2.visualize.path_strip`;
- ``index.html``: the settings, then per input its pictures, target, scores, completeness delta
  and relative delta, and for IG² the representation distances
  (:func:`tf_ig2.visualize.report_html`). Pictures are linked by relative paths and absolute paths
  in the settings are shown by their last component, so the folder can be zipped and shared.

Small inputs are enlarged by an integer factor until their shorter side is at least
``--min-display-size`` pixels. Pictures are drawn one input at a time, so memory does not grow
with N; a film strip needs the whole path of one (input, reference) pair, explained again with
``return_path=True`` one input at a time (:func:`path_strip_maker`).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_ig2 import defaults, visualize
from tf_ig2.visualize import markup

#: Names of the picture files and of the report.
GRID_FILE = "grid.png"
OVERLAY_PATTERN = "overlay_{index}.png"
PANEL_PATTERN = "panel_{index}.png"
PATH_STRIP_PATTERN = "path_{index}.png"
REPORT_FILE = "index.html"

#: Draws the film strips of the first inputs: ``(inputs (k, *S), targets (k,) or None) -> k pictures``.
StripMaker = Callable[[np.ndarray, Optional[np.ndarray]], List[np.ndarray]]


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """How the pictures of a run are drawn.

    Attributes:
        min_display_size: Small images are enlarged (integer factor) until their shorter side is
            at least this many pixels; 1 keeps them as they are.
        value_range: ``(low, high)`` of the input values, the shared grey scale of input, GradCF
            and path frames; ``None`` for each picture's joint minimum and maximum.
        max_inputs: The most inputs given a panel and a row in the report of a streamed run, and
            a film strip in any run.
        path_strips: Draws the film strips (:func:`path_strip_maker`); ``None`` for none.
    """

    min_display_size: int = defaults.CLI_MIN_DISPLAY_SIZE
    value_range: Optional[Tuple[float, float]] = None
    max_inputs: int = defaults.CLI_REPORT_MAX_INPUTS
    path_strips: Optional[StripMaker] = None


@dataclasses.dataclass
class Pictures:
    """The picture files written for a run, by input.

    Attributes:
        overlays: One overlay file per input, or ``None`` when none were written.
        grid: The grid file, or ``None``.
        panels: The panel files of the first ``len(panels)`` inputs.
        path_strips: The film strip files of the first ``len(path_strips)`` inputs.
    """

    overlays: Optional[List[str]] = None
    grid: Optional[str] = None
    panels: List[str] = dataclasses.field(default_factory=list)
    path_strips: List[str] = dataclasses.field(default_factory=list)

    def files(self) -> List[str]:
        """Every file written, overlays first."""
        return [*(self.overlays or []), *([self.grid] if self.grid else []), *self.panels, *self.path_strips]

    def of_input(self, index: int) -> Dict[str, str]:
        """``{"overlay": ..., "panel": ..., "path_strip": ...}``: the files of input ``index`` that exist."""
        found = {}
        for key, names in (("overlay", self.overlays or []), ("panel", self.panels), ("path_strip", self.path_strips)):
            if index < len(names):
                found[key] = names[index]
        return found

    def linked(self, index: int) -> List[Tuple[str, str]]:
        """``[(file, alt text), ...]``: the pictures of input ``index`` shown in the report."""
        alts = {"panel": f"input {index}: input, counterfactual, signed attribution, magnitude",
                "path_strip": f"input {index}: its GradPath at 0, 25, 50, 75 and 100% of the steps"}
        files = self.of_input(index)
        return [(files[key], alt) for key, alt in alts.items() if key in files]


def file_names(pattern: str, count: int, total: int) -> List[str]:
    """``count`` names from ``pattern``, numbered from 0 with at least 3 digits (as many as ``total - 1`` has)."""
    width = max(3, len(str(max(total, 1) - 1)))
    return [pattern.format(index=f"{index:0{width}d}") for index in range(count)]


def _write_png(folder: str, name: str, picture: np.ndarray) -> None:
    with open(os.path.join(folder, name), "wb") as handle:
        handle.write(visualize.encode_png(picture))


def write_overlays(folder: str, images: np.ndarray, attributions: np.ndarray, *,
                   min_display_size: int = defaults.CLI_MIN_DISPLAY_SIZE) -> Tuple[List[str], str]:
    """Writes one overlay PNG per image and ``grid.png`` (:func:`tf_ig2.visualize.display_images`).

    Args:
        folder: An existing folder.
        images: ``(N, H, W, C)`` inputs (any value range; each is rescaled for display).
        attributions: ``(N, H, W, C)`` attributions.
        min_display_size: Shorter side of the picture, at least, in pixels: each overlay shows
            the image at ``(H * f, W * f)`` with ``f = ceil(min_display_size / min(H, W))``,
            labelled with its index above and a colour bar of the magnitude beside it.

    Returns:
        ``(overlay file names, grid file name)``.
    """
    factor = visualize.display_factor(images.shape[1:3], min_display_size)
    names = file_names(OVERLAY_PATTERN, len(images), len(images))
    overlays, grid = visualize.display_images(visualize.display_channels(images), attributions, factor=factor,
                                              labels=[f"#{index}" for index in range(len(images))])
    for name, picture in zip(names, overlays):
        _write_png(folder, name, picture)
    _write_png(folder, GRID_FILE, grid)
    return names, GRID_FILE


def write_panels(folder: str, explanation: Any, images: np.ndarray, *, total: int,
                 options: ReportOptions = ReportOptions()) -> List[str]:
    """Writes ``panel_000.png`` ... for the explained ``images``, one input at a time.

    Args:
        folder: An existing folder.
        explanation: The explanation of ``images`` (its first ``len(images)`` inputs), its
            ``counterfactuals`` ``(n, R, H, W, C)`` (averaged over R) or ``None``.
        images: ``(n, H, W, C)`` explained inputs.
        total: The number of inputs of the run (for the width of the numbers).
        options: The display settings.

    Returns:
        The file names, one per image.
    """
    counterfactuals = explanation.counterfactuals
    names = file_names(PANEL_PATTERN, len(images), total)
    references = 1 if counterfactuals is None else np.shape(counterfactuals[0])[0]
    label = markup.end_column_label(explanation.method, references)
    for index, name in enumerate(names):
        other = None
        if counterfactuals is not None:
            other = visualize.display_channels(np.asarray(counterfactuals[index], np.float64).mean(axis=0))
        picture = visualize.panel(
            visualize.display_channels(np.asarray(images[index])), explanation.attributions[index], other,
            title="\n".join(markup.caption(explanation, index)), counterfactual_label=label,
            value_range=options.value_range, min_size=options.min_display_size)
        _write_png(folder, name, picture)
    return names


def write_path_strips(folder: str, strips: Sequence[np.ndarray], total: int) -> List[str]:
    """Writes ``path_000.png`` ... from the film strip pictures of the first inputs."""
    names = file_names(PATH_STRIP_PATTERN, len(strips), total)
    for name, picture in zip(names, strips):
        _write_png(folder, name, picture)
    return names


def write_pictures(folder: str, explanation: Any, images: np.ndarray, options: ReportOptions, *,
                   total: Optional[int] = None, overlays: bool = True) -> Pictures:
    """Writes the pictures of explained images: overlays and grid, panels, film strips.

    Args:
        folder: An existing folder.
        explanation: The explanation of ``images``.
        images: ``(n, H, W, C)``: the inputs drawn (all of them, or the first ones of a stream).
        options: The display settings; ``options.path_strips`` draws the strips of the first
            ``options.max_inputs`` inputs.
        total: The run's number of inputs; ``None`` for ``len(images)``.
        overlays: Whether to write the overlays and the grid.

    Returns:
        The :class:`Pictures` written.
    """
    total = len(images) if total is None else total
    pictures = Pictures()
    if overlays:
        pictures.overlays, pictures.grid = write_overlays(folder, images, explanation.attributions,
                                                          min_display_size=options.min_display_size)
    pictures.panels = write_panels(folder, explanation, images, total=total, options=options)
    if options.path_strips is not None:
        count = min(len(images), options.max_inputs)
        targets = None if explanation.targets is None else np.asarray(explanation.targets[:count])
        pictures.path_strips = write_path_strips(folder, options.path_strips(np.asarray(images[:count]), targets),
                                                 total)
    return pictures


def _first_reference(references: Any, index: int, sample_rank: int) -> np.ndarray:
    """The first reference of input ``index``: ``(1, *S)`` from ``(R, *S)`` or ``(N, R, *S)``."""
    references = np.asarray(references[index, :1]) if np.ndim(references) == sample_rank + 2 else references[:1]
    return np.asarray(references, np.float32)


def path_strip_maker(explainer: Any, references: Any, *, value_range: Any = None,
                     min_size: int = defaults.CLI_MIN_DISPLAY_SIZE) -> StripMaker:
    """The film strips of an IG² explainer: each input's GradPath towards its first reference.

    Each input is explained again, alone, against its first reference with ``return_path=True``,
    so that memory holds one path of ``steps + 1`` points at a time (the results equal those of
    the whole run up to float round-off). IG²'s completeness warning is not repeated for them.

    Args:
        explainer: An :class:`~tf_ig2.IG2` explainer (anything whose ``explain`` takes
            ``return_path``).
        references: ``(R, *S)`` shared by all inputs or ``(N, R, *S)`` per input (the inputs
            given to the maker must be the first ones).
        value_range: ``(low, high)`` for the frames' grey scale, or ``None``.
        min_size: Small images are enlarged until their shorter side is at least this.

    Returns:
        ``draw(inputs (k, *S), targets (k,) or None) -> [k (H', W', 3) uint8 pictures]``.
    """
    from tf_ig2.diagnostics import CompletenessWarning

    def draw(inputs: np.ndarray, targets: Optional[np.ndarray]) -> List[np.ndarray]:
        strips = []
        for index in range(len(inputs)):
            target = None if targets is None else np.asarray(targets[index:index + 1])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CompletenessWarning)
                explanation = explainer.explain(inputs[index:index + 1],
                                                _first_reference(references, index, inputs.ndim - 1), target,
                                                return_path=True)
            steps = int(np.shape(explanation.path)[2]) - 1
            explained = None if explanation.targets is None else explanation.targets[0]
            title = f"#{index} class {markup.class_label(explained)}: GradPath to GradCF of reference 0, {steps} steps"
            strips.append(visualize.path_strip(explanation, 0, 0, title=title, value_range=value_range,
                                               min_size=min_size))
        return strips

    return draw


def shareable_settings(settings: Dict[str, Any]) -> Dict[str, Any]:
    """The settings with every absolute path shown by its last component (``/data/x.npy`` -> ``x.npy``)."""
    def shown(value: Any) -> Any:
        if isinstance(value, str) and (os.path.isabs(value) or value.startswith("~")):
            return os.path.basename(value.rstrip("/\\")) or value
        if isinstance(value, list):
            return [shown(item) for item in value]
        return value

    return {key: shown(value) for key, value in settings.items()}


def notes(total: int, shown: int, pictures: Pictures, *, stream: bool, listed: bool) -> List[str]:
    """The report's notes on what it leaves out."""
    found = []
    if shown < total:
        where = "summary.json" if listed else "the result shards (shards/, tf_ig2.dataset.load_results)"
        found.append(f"Only the first {shown} of {total} inputs are shown (tf_ig2.defaults.CLI_REPORT_MAX_INPUTS); "
                     f"the values of every input are in {where}.")
    if stream and pictures.panels:
        found.append("A streamed run keeps no counterfactuals (GradCF or baselines), so its panels leave that "
                     "column out.")
    if pictures.path_strips and len(pictures.path_strips) < shown:
        found.append(f"GradPath film strips are drawn for the first {len(pictures.path_strips)} inputs "
                     "(tf_ig2.defaults.CLI_REPORT_MAX_INPUTS).")
    return found


def write_report(folder: str, document: Dict[str, Any], records: Sequence[Dict[str, Any]], pictures: Pictures,
                 report_notes: Sequence[str] = ()) -> str:
    """Writes ``index.html`` (:func:`tf_ig2.visualize.report_html`); returns its name.

    Args:
        folder: The folder holding ``summary.json`` and the pictures.
        document: The run's summary, as written to ``summary.json``.
        records: The per-input records shown (all, or the first ones).
        pictures: The pictures written, linked by their file names.
        report_notes: Sentences shown above the inputs.
    """
    shown = dict(document, settings=shareable_settings(document.get("settings") or {}))
    page = visualize.report_html(shown, records, notes=report_notes,
                                 pictures={record["index"]: pictures.linked(record["index"]) for record in records},
                                 title=f"tf-ig2 explain: {document.get('method')}")
    with open(os.path.join(folder, REPORT_FILE), "w", encoding="utf-8") as handle:
        handle.write(page)
    return REPORT_FILE
