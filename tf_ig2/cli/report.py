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

With several targets per input (``--targets``, ``--top-k``) the overlays and panels are one per
(input, target), named by class (``overlay_000_class3.png``, ``panel_000_class3.png``; each panel
that of ``explanation.select_target(j)``), and the report shows each target's row and panel.

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
        class_names: Names of the classes, indexed by class (``--class-names``), shown beside
            the class indices; ``None`` for none.
    """

    min_display_size: int = defaults.CLI_MIN_DISPLAY_SIZE
    value_range: Optional[Tuple[float, float]] = None
    max_inputs: int = defaults.CLI_REPORT_MAX_INPUTS
    path_strips: Optional[StripMaker] = None
    class_names: Optional[Tuple[str, ...]] = None


@dataclasses.dataclass
class Pictures:
    """The picture files written for a run, by input (and target).

    Attributes:
        overlays: One overlay file per input, or ``None`` when none were written; with several
            targets, one per (input, target), input by input.
        grid: The grid file, or ``None``.
        panels: The panel files of the first ``len(panels)`` inputs (with several targets, of
            the first ``len(panels) // targets`` inputs, one per target, input by input).
        path_strips: The film strip files of the first ``len(path_strips)`` inputs.
        targets: T when several targets were explained per input, else ``None``.
    """

    overlays: Optional[List[str]] = None
    grid: Optional[str] = None
    panels: List[str] = dataclasses.field(default_factory=list)
    path_strips: List[str] = dataclasses.field(default_factory=list)
    targets: Optional[int] = None

    def files(self) -> List[str]:
        """Every file written, overlays first."""
        return [*(self.overlays or []), *([self.grid] if self.grid else []), *self.panels, *self.path_strips]

    def _per_input(self) -> Tuple[Tuple[str, List[str]], ...]:
        """The pictures drawn once per input (all of them for one target; the film strips for several)."""
        if self.targets is None:
            return ("overlay", self.overlays or []), ("panel", self.panels), ("path_strip", self.path_strips)
        return (("path_strip", self.path_strips),)

    def of_input(self, index: int) -> Dict[str, str]:
        """``{"overlay": ..., "panel": ..., "path_strip": ...}``: the files of input ``index`` that exist.

        With several targets, the film strip only: the overlays and panels are the targets'
        (:meth:`of_target`).
        """
        return {key: names[index] for key, names in self._per_input() if index < len(names)}

    def of_target(self, index: int, column: int) -> Dict[str, str]:
        """``{"overlay": ..., "panel": ...}``: the files of the ``column``-th target of input ``index``."""
        if self.targets is None:
            return {}
        position = index * self.targets + column
        return {key: names[position] for key, names in (("overlay", self.overlays or []), ("panel", self.panels))
                if position < len(names)}

    def linked(self, index: int) -> List[Tuple[str, str]]:
        """``[(file, alt text), ...]``: the pictures of input ``index`` shown in the report (not its targets')."""
        alts = {"panel": f"input {index}: input, counterfactual, signed attribution, magnitude",
                "path_strip": f"input {index}: its GradPath at 0, 25, 50, 75 and 100% of the steps"}
        files = self.of_input(index)
        return [(files[key], alt) for key, alt in alts.items() if key in files]

    def linked_target(self, index: int, column: int, target: Any = None) -> List[Tuple[str, str]]:
        """``[(file, alt text)]``: the panel of the ``column``-th target (class ``target``) of input ``index``."""
        files = self.of_target(index, column)
        which = f"class {target}" if target is not None else f"target {column}"
        return [(files["panel"], f"input {index}, {which}: input, counterfactual, signed attribution, "
                                 f"magnitude")] if "panel" in files else []


def file_names(pattern: str, count: int, total: int, targets: Optional[np.ndarray] = None) -> List[str]:
    """``count`` names from ``pattern``, numbered from 0 with at least 3 digits (as many as ``total - 1`` has).

    With ``targets`` ``(n, T)`` (several targets per input, ``n >= count``), ``count * T`` names,
    one per (input, target), input by input, named by class: ``panel_000_class3.png``.
    """
    width = max(3, len(str(max(total, 1) - 1)))
    if targets is None:
        return [pattern.format(index=f"{index:0{width}d}") for index in range(count)]
    return [pattern.format(index=f"{index:0{width}d}_class{int(target)}") for index in range(count)
            for target in np.asarray(targets)[index]]


def several_targets(explanation: Any) -> Optional[np.ndarray]:
    """The ``(N, T)`` class indices of an explanation of several targets per input; ``None`` for one target.

    Raises:
        ValueError: If several targets were explained without class indices (a callable target).
    """
    if explanation.target_count is None:
        return None
    if explanation.targets is None:
        raise ValueError("The command line's pictures of several targets per input are named by class: they need "
                         "class indices, not a callable target.")
    return np.asarray(explanation.targets)


def _label(index: int, target: Any, class_names: Optional[Sequence[str]]) -> str:
    return f"#{index} class {markup.class_label(target, class_names)}"


def _write_png(folder: str, name: str, picture: np.ndarray) -> None:
    with open(os.path.join(folder, name), "wb") as handle:
        handle.write(visualize.encode_png(picture))


def write_overlays(folder: str, images: np.ndarray, attributions: np.ndarray, *,
                   min_display_size: int = defaults.CLI_MIN_DISPLAY_SIZE, targets: Optional[np.ndarray] = None,
                   class_names: Optional[Sequence[str]] = None) -> Tuple[List[str], str]:
    """Writes one overlay PNG per image and ``grid.png`` (:func:`tf_ig2.visualize.display_images`).

    Args:
        folder: An existing folder.
        images: ``(N, H, W, C)`` inputs (any value range; each is rescaled for display).
        attributions: ``(N, H, W, C)`` attributions; ``(N, T, H, W, C)`` with ``targets``.
        min_display_size: Shorter side of the picture, at least, in pixels: each overlay shows
            the image at ``(H * f, W * f)`` with ``f = ceil(min_display_size / min(H, W))``,
            labelled with its index above and a colour bar of the magnitude beside it.
        targets: ``(N, T)`` class indices for several targets per input: one overlay per (input,
            target), ``overlay_000_class3.png``, labelled with the class; the grid shows them all.
        class_names: Names of the classes, shown beside the class indices.

    Returns:
        ``(overlay file names, grid file name)``.
    """
    factor = visualize.display_factor(images.shape[1:3], min_display_size)
    names = file_names(OVERLAY_PATTERN, len(images), len(images), targets)
    if targets is None:
        labels = [f"#{index}" for index in range(len(images))]
    else:
        labels = [_label(index, target, class_names) for index in range(len(images)) for target in targets[index]]
        images = np.repeat(images, targets.shape[1], axis=0)
        attributions = np.reshape(attributions, (-1,) + tuple(np.shape(attributions)[2:]))
    overlays, grid = visualize.display_images(visualize.display_channels(images), attributions, factor=factor,
                                              labels=labels)
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
        The file names, one per image; with several targets per input, one per (image, target),
        image by image, named by class (``panel_000_class3.png``), each the panel of
        ``explanation.select_target(j)``.
    """
    counterfactuals = explanation.counterfactuals
    targets = several_targets(explanation)
    names = file_names(PANEL_PATTERN, len(images), total, targets)
    columns = [explanation] if targets is None else [explanation.select_target(column)
                                                    for column in range(targets.shape[1])]
    references = 1 if counterfactuals is None else np.shape(counterfactuals[0])[0]
    label = markup.end_column_label(explanation.method, references)
    names_left = iter(names)
    for index in range(len(images)):
        other = None
        if counterfactuals is not None:
            other = visualize.display_channels(np.asarray(counterfactuals[index], np.float64).mean(axis=0))
        shown = visualize.display_channels(np.asarray(images[index]))
        for column in columns:
            picture = visualize.panel(
                shown, column.attributions[index], other,
                title="\n".join(markup.caption(column, index, options.class_names)), counterfactual_label=label,
                value_range=options.value_range, min_size=options.min_display_size)
            _write_png(folder, next(names_left), picture)
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
    pictures = Pictures(targets=explanation.target_count)
    if overlays:
        pictures.overlays, pictures.grid = write_overlays(folder, images, explanation.attributions,
                                                          min_display_size=options.min_display_size,
                                                          targets=several_targets(explanation),
                                                          class_names=options.class_names)
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
                     min_size: int = defaults.CLI_MIN_DISPLAY_SIZE,
                     class_names: Optional[Sequence[str]] = None) -> StripMaker:
    """The film strips of an IG² explainer: each input's GradPath towards its first reference.

    Each input is explained again, alone, against its first reference with ``return_path=True``,
    so that memory holds one path of ``steps + 1`` points at a time (the results equal those of
    the whole run up to float round-off). IG²'s completeness warning is not repeated for them.
    GradPath does not depend on the target: with several targets per input (``(k, T)``
    targets) the input is explained for its first one, and the title names them all.

    Args:
        explainer: An :class:`~tf_ig2.IG2` explainer (anything whose ``explain`` takes
            ``return_path``).
        references: ``(R, *S)`` shared by all inputs or ``(N, R, *S)`` per input (the inputs
            given to the maker must be the first ones).
        value_range: ``(low, high)`` for the frames' grey scale, or ``None``.
        min_size: Small images are enlarged until their shorter side is at least this.
        class_names: Names of the classes, shown in the titles beside the class indices.

    Returns:
        ``draw(inputs (k, *S), targets (k,), (k, T) or None) -> [k (H', W', 3) uint8 pictures]``.
    """
    from tf_ig2.diagnostics import CompletenessWarning

    def draw(inputs: np.ndarray, targets: Optional[np.ndarray]) -> List[np.ndarray]:
        strips = []
        for index in range(len(inputs)):
            target = None if targets is None else np.asarray(targets[index:index + 1])
            several = target is not None and target.ndim == 2
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CompletenessWarning)
                explanation = explainer.explain(inputs[index:index + 1],
                                                _first_reference(references, index, inputs.ndim - 1),
                                                target[:, 0] if several else target, return_path=True)
            steps = int(np.shape(explanation.path)[2]) - 1
            if several:
                classes = "classes " + ", ".join(markup.class_label(value, class_names) for value in target[0])
            else:
                explained = None if explanation.targets is None else explanation.targets[0]
                classes = f"class {markup.class_label(explained, class_names)}"
            title = f"#{index} {classes}: GradPath to GradCF of reference 0, {steps} steps"
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
    target_pictures = {(record["index"], column): pictures.linked_target(record["index"], column, entry.get("target"))
                       for record in records for column, entry in enumerate(record.get("targets") or ())}
    page = visualize.report_html(shown, records, notes=report_notes,
                                 pictures={record["index"]: pictures.linked(record["index"]) for record in records},
                                 target_pictures=target_pictures, title=f"tf-ig2 explain: {document.get('method')}")
    with open(os.path.join(folder, REPORT_FILE), "w", encoding="utf-8") as handle:
        handle.write(page)
    return REPORT_FILE
