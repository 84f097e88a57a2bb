"""The command line's output folder: written safely, with ``summary.json`` and the report.

An :class:`~tf_ig2.Explanation` is written as ``attributions.npy``, ``counterfactuals.npy``,
``summary.json``, ``index.html`` and, for image inputs, the pictures of :mod:`tf_ig2.cli.report`
(overlays, ``grid.png``, panels and, with ``--path-strip``, GradPath film strips). An explanation of
several targets per input is written with its target axis: ``(N, T, *S)`` attributions, each
input's targets listed in ``summary.json``, pictures per (input, target).

Nothing of the user's is touched: outputs are written to a staging folder inside the destination
(:func:`staged_output`) and only then renamed into place; the folder's manifest lists what tf_ig2
wrote there, the only files a later run replaces or removes (:mod:`tf_ig2.folders`).
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from tf_ig2 import folders
from tf_ig2.cli import report as cli_report
from tf_ig2.cli.report import Pictures, ReportOptions
from tf_ig2.explanation import Explanation

PathLike = Union[str, "os.PathLike[str]"]

#: Names of the files an explanation is written to (the pictures' names are in tf_ig2.cli.report).
ATTRIBUTIONS_FILE = "attributions.npy"
COUNTERFACTUALS_FILE = "counterfactuals.npy"
SUMMARY_FILE = "summary.json"

#: For a model with several inputs, one file per input: ``attributions.<input name>.npy`` and
#: ``counterfactuals.<input name>.npy`` (characters other than letters, digits, ``_``, ``.`` and
#: ``-`` in the name become ``_``).
PER_INPUT_PATTERN = "{stem}.{name}.npy"


def per_input_file(file_name: str, input_name: str) -> str:
    """``attributions.npy`` -> ``attributions.<input_name>.npy`` (see :data:`PER_INPUT_PATTERN`)."""
    return PER_INPUT_PATTERN.format(stem=file_name[:-len(".npy")], name=re.sub(r"[^\w.\-]", "_", input_name))


def _array_files(file_name: str, inputs: Optional[Sequence[str]]) -> Union[str, Dict[str, str]]:
    """``file_name``, or for several inputs ``{input name: per-input file name}``.

    Raises:
        ValueError: If two input names give one file name (characters other than letters, digits,
            ``.`` and ``-`` become ``_``), so that one input's results would overwrite the other's.
    """
    if inputs is None:
        return file_name
    files = {name: per_input_file(file_name, name) for name in inputs}
    seen: Dict[str, str] = {}
    for name, path in files.items():
        if path in seen:
            raise ValueError(f"The model's inputs {seen[path]!r} and {name!r} would both be written to {path!r}; "
                             f"rename one of them. Received: input names {list(inputs)}")
        seen[path] = name
    return files


def _names_of(files: Union[str, Dict[str, str]]) -> List[str]:
    return [files] if isinstance(files, str) else list(files.values())


# -- the output folder -----------------------------------------------------------------------------
def output_names(*, stream: bool = False, inputs: Optional[Sequence[str]] = None) -> Tuple[str, ...]:
    """The files of fixed name a run writes to its output folder (pictures numbered per input aside).

    Args:
        stream: For a streamed run (no counterfactuals, no grid).
        inputs: The input names of a model with several inputs, whose arrays go to one file per
            input; ``None`` for one input.
    """
    attributions = _names_of(_array_files(ATTRIBUTIONS_FILE, inputs))
    if stream:
        return (*attributions, SUMMARY_FILE, cli_report.REPORT_FILE)
    return (*attributions, *_names_of(_array_files(COUNTERFACTUALS_FILE, inputs)), SUMMARY_FILE,
            cli_report.REPORT_FILE, cli_report.GRID_FILE)


def check_output(path: PathLike, overwrite: bool, names: Sequence[str] = ()) -> str:
    """Checks, writing nothing, that ``path`` may receive outputs; returns it as a string.

    Raises:
        ValueError: If ``path`` is a file or below one, cannot be written to, is a non-empty
            folder and ``overwrite`` is false, or holds a file tf_ig2 did not write at one of
            ``names``.
        tf_ig2.folders.FolderInUseError: If another run holds the folder's lock.
    """
    return folders.check_destination(path, overwrite=overwrite, names=names)


@contextlib.contextmanager
def staged_output(destination: PathLike, *, overwrite: bool, names: Sequence[str] = ()) -> Iterator[str]:
    """A staging folder inside ``destination`` whose files are moved into place on success.

    The folder's lock is held meanwhile (or reused, when this process holds it already). On
    success the files tf_ig2 wrote there before and did not write again are removed
    (:func:`tf_ig2.folders.publish`); every other entry is kept. On an exception the staging
    folder is removed and ``destination`` is left as it was (a folder created here is removed).

    Yields:
        The staging folder to write into.

    Raises:
        ValueError: As :func:`check_output`, or when a file tf_ig2 did not write is where an
            output goes (:class:`tf_ig2.folders.ForeignFilesError`).
    """
    destination = os.path.abspath(check_output(destination, overwrite, names))
    with folders.holding(destination):
        manifest = folders.Manifest.load(destination)
        with folders.staging_folder(destination) as staging:
            yield staging
            folders.publish(staging, destination, manifest)


def is_image_batch(values: Any) -> bool:
    """Whether ``(N, *S)`` values are images: rank 3 per sample ``(H, W, C)``."""
    return np.ndim(values) == 4


# -- summary.json ----------------------------------------------------------------------------------
def _scores(target: Any, score: Any, gradcf_score: Any, delta: Any, relative: Any,
            class_names: Optional[Sequence[str]]) -> Dict[str, Any]:
    """The JSON entries of one explained target: its class (and name), scores and deltas."""
    entry: Dict[str, Any] = {"target": None if target is None else int(target)}
    if class_names is not None:
        entry["class_name"] = (class_names[int(target)] if target is not None and 0 <= int(target) < len(class_names)
                               else None)
    entry.update(score=float(score), gradcf_score=float(gradcf_score),
                 completeness_delta=float(delta) if np.isfinite(delta) else None,  # NaN: a smoothed square
                 relative_delta=float(relative) if np.isfinite(relative) else None)
    return entry


def records(count: int, *, targets: Optional[np.ndarray], scores: np.ndarray, gradcf_scores: np.ndarray,
            deltas: np.ndarray, distances: Optional[np.ndarray], names: Optional[List[str]] = None,
            pictures: Optional[Pictures] = None, class_names: Optional[Sequence[str]] = None,
            reference_rows: Optional[np.ndarray] = None) -> List[Dict[str, Any]]:
    """One JSON-ready record per input (see :func:`summary`) for the first ``count`` inputs.

    Args:
        count: How many records.
        targets, scores, gradcf_scores, deltas: ``(n,)`` per-input values, ``n >= count``; ``(n, T)``
            for T targets per input, listed per input under ``"targets"``, one entry per target.
        distances: ``(n, R, 2)`` representation distances (IG²), or ``None``.
        names: The inputs' names, or ``None``.
        pictures: The pictures written; each record names its own (``overlay``, ``panel``,
            ``path_strip``; with several targets each target's entry its ``overlay`` and ``panel``).
        class_names: Names of the classes: each target is then listed with its ``class_name``.
        reference_rows: ``(n, R)`` the pool rows each input's references were drawn from
            (``--reference-pool``), or ``None``.
    """
    relative = Explanation(attributions=None, counterfactuals=None, target_scores=np.asarray(scores[:count]),
                           counterfactual_scores=np.asarray(gradcf_scores[:count]),
                           delta=np.asarray(deltas[:count]), method="").relative_delta
    several = np.ndim(relative) == 2
    found = []
    for index in range(count):
        record: Dict[str, Any] = {"index": index, "name": names[index] if names is not None else None}
        if several:
            record["targets"] = [
                {**_scores(None if targets is None else targets[index][column], scores[index][column],
                           gradcf_scores[index][column], deltas[index][column], relative[index, column],
                           class_names), **(pictures.of_target(index, column) if pictures is not None else {})}
                for column in range(relative.shape[1])]
        else:
            record.update(_scores(None if targets is None else targets[index], scores[index], gradcf_scores[index],
                                  deltas[index], relative[index], class_names))
        if distances is not None:
            record["representation_distance"] = [
                {"reference": reference, "start": float(start), "end": float(end)}
                for reference, (start, end) in enumerate(np.asarray(distances[index], np.float64))
            ]
        if reference_rows is not None:
            record["reference_rows"] = [int(row) for row in reference_rows[index]]
        if pictures is not None:
            record.update(pictures.of_input(index))
        found.append(record)
    return found


def picture_files(pictures: Optional[Pictures]) -> Dict[str, Any]:
    """The ``files`` entries of ``summary.json`` naming the pictures and the report."""
    pictures = pictures or Pictures()
    return {"grid": pictures.grid, "overlays": pictures.overlays or [], "panels": pictures.panels,
            "path_strips": pictures.path_strips, "report": cli_report.REPORT_FILE}


def summary(explanation: Any, *, names: Optional[List[str]] = None, pictures: Optional[Pictures] = None,
            settings: Optional[Dict[str, Any]] = None, class_names: Optional[Sequence[str]] = None,
            reference_rows: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """The JSON-ready summary of an explanation: settings, version, files and one record per input.

    Per input: its name, the explained ``target``, its ``score`` ``f_c(x)``, the mean
    ``gradcf_score`` ``f_c(counterfactual)`` over its references (GradCF for IG², the baselines
    for the other methods), the ``completeness_delta`` ``sum(A) - (score - gradcf_score)``, the
    ``relative_delta`` ``|completeness_delta| / |score - gradcf_score|``
    (:attr:`~tf_ig2.Explanation.relative_delta`), for IG² per reference the representation
    distance at the start and the end of the GradPath, and its picture files. With
    ``class_names``, each target's ``class_name``; with ``reference_rows``, the pool rows its
    references were drawn from.

    For several inputs (attributions keyed by input name) the summary starts with
    ``input_names``, and ``inputs_shape``, ``counterfactuals_shape`` and ``files.attributions``,
    ``files.counterfactuals`` are dicts keyed by input name.

    For T targets per input the summary says ``target_count`` T and ``attributions_shape``
    ``(N, T, *S)`` (``inputs_shape`` stays ``(N, *S)``), and each record lists under
    ``targets`` one entry per target: ``target``, (``class_name``), ``score``, ``gradcf_score``,
    ``completeness_delta``, ``relative_delta`` and its ``overlay`` and ``panel``; the
    representation distances and the film strip are the input's (the path is shared).
    """
    from tf_ig2 import __version__

    several = _input_names(explanation)
    count = explanation.target_count
    document = {
        "tf_ig2_version": __version__,
        "method": explanation.method,
        "representation": explanation.representation,
        "inputs_shape": _shapes(explanation.attributions, without_targets=count is not None),
        **({"target_count": count, "attributions_shape": _shapes(explanation.attributions)}
           if count is not None else {}),
        "counterfactuals_shape": _shapes(explanation.counterfactuals),
        "settings": settings or {},
        "files": {"attributions": _array_files(ATTRIBUTIONS_FILE, several),
                  "counterfactuals": _array_files(COUNTERFACTUALS_FILE, several), **picture_files(pictures)},
        "inputs": records(len(explanation.target_scores), targets=explanation.targets,
                          scores=explanation.target_scores, gradcf_scores=explanation.counterfactual_scores,
                          deltas=explanation.delta, distances=explanation.representation_distance, names=names,
                          pictures=pictures, class_names=class_names, reference_rows=reference_rows),
    }
    if several is not None:
        document = {"input_names": several, **document}
    return document


def _input_names(explanation: Any) -> Optional[List[str]]:
    """The input names of an explanation of several inputs (attributions keyed by name), else ``None``."""
    return list(explanation.attributions) if isinstance(explanation.attributions, dict) else None


def _shapes(values: Any, without_targets: bool = False) -> Union[List[int], Dict[str, List[int]]]:
    """An array's shape as a list, or ``{input name: shape}`` for several inputs.

    With ``without_targets``, the target axis of ``(N, T, *S)`` attributions is left out: ``(N, *S)``.
    """
    if isinstance(values, dict):
        return {name: _shapes(value, without_targets) for name, value in values.items()}
    shape = list(np.shape(values))
    return shape[:1] + shape[2:] if without_targets else shape


def write_explanation(folder: str, explanation: Any, inputs: np.ndarray, *, names: Optional[List[str]] = None,
                      settings: Optional[Dict[str, Any]] = None, report: ReportOptions = ReportOptions(),
                      reference_rows: Optional[np.ndarray] = None) -> List[str]:
    """Writes an explanation into an existing ``folder``; returns the file names written.

    Files: ``attributions.npy`` ``(N, *S)`` float32, ``counterfactuals.npy`` ``(N, R, *S)``
    float32 (for several inputs, whose attributions are a dict keyed by input name, one
    ``attributions.<name>.npy`` and ``counterfactuals.<name>.npy`` per input, see
    :data:`PER_INPUT_PATTERN`), ``summary.json`` (see :func:`summary`), ``index.html`` (every
    input) and, when the inputs are images ``(N, H, W, C)``, ``overlay_000.png``... and ``panel_000.png``... (one of
    each per input), ``grid.png`` and, when ``report.path_strips`` is given, ``path_000.png``...
    for the first ``report.max_inputs`` inputs (see :mod:`tf_ig2.cli.report`).

    With T targets per input (an explanation of ``target_count`` T, which needs class indices):
    ``attributions.npy`` is ``(N, T, *S)``, and the overlays and panels are one per (input,
    target), named by class: ``overlay_000_class3.png``, ``panel_000_class3.png``.

    Args:
        folder: The folder to write into (normally the one :func:`staged_output` yields).
        explanation: An :class:`~tf_ig2.Explanation`.
        inputs: The explained ``(N, *S)`` inputs (a dict of them for several inputs: no pictures).
        names: The inputs' names (e.g. image file names), or ``None``.
        settings: The settings used, stored in the summary and shown in the report.
        report: How the pictures are drawn (:class:`~tf_ig2.cli.report.ReportOptions`).
    """
    several = _input_names(explanation)
    arrays = []
    for file_name, values in ((ATTRIBUTIONS_FILE, explanation.attributions),
                              (COUNTERFACTUALS_FILE, explanation.counterfactuals)):
        files = _array_files(file_name, several)
        for name, path in (files.items() if isinstance(files, dict) else [(None, files)]):
            np.save(os.path.join(folder, path), np.asarray(values if name is None else values[name], np.float32))
            arrays.append(path)
    pictures = Pictures()
    if several is None and is_image_batch(inputs):
        pictures = cli_report.write_pictures(folder, explanation, np.asarray(inputs), report)
    document = summary(explanation, names=names, pictures=pictures, settings=settings,
                       class_names=report.class_names, reference_rows=reference_rows)
    folders.write_json(os.path.join(folder, SUMMARY_FILE), document)
    count = len(document["inputs"])
    report_file = cli_report.write_report(folder, document, document["inputs"], pictures,
                                          cli_report.notes(count, count, pictures, stream=False, listed=True))
    return [*arrays, *pictures.files(), SUMMARY_FILE, report_file]
