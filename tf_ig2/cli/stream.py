"""Inputs larger than memory for ``tf-ig2 explain --stream``: opened lazily, explained into resumable shards.

:func:`open_stream` opens the inputs lazily (a ``.npy`` file as a memory map, images one file at a
time) for :func:`tf_ig2.dataset.explain_dataset`, whose result shards go to ``DIR/shards``; the
run's settings, and whether it finished, are recorded in ``DIR/shards/run.json``
(:func:`write_stream_record`), so that a stopped run is continued. Then :func:`finish_stream`
concatenates the attributions into ``DIR/attributions.npy`` through a memory map, shard by shard,
and writes ``DIR/summary.json`` and ``DIR/index.html`` with the panels (and film strips) of the
first inputs (:mod:`tf_ig2.cli.report`). Values are read exactly as :mod:`tf_ig2.cli.files` reads
them in memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from tf_ig2 import defaults, folders
from tf_ig2.cli import files as cli_files
from tf_ig2.cli import output as cli_output
from tf_ig2.cli import report as cli_report
from tf_ig2.cli.files import PathLike, ValueRange
from tf_ig2.dataset.results import ResultsFolder, load_results, merge_shards
from tf_ig2.explanation import Explanation


def _chunk_rows(array: np.ndarray) -> int:
    """Rows of ``array`` read at a time by the scans below: about 16 MB."""
    row_bytes = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize
    return max(1, (1 << 24) // max(1, row_bytes))


def _snap_in_place(array: np.ndarray, value_range: ValueRange, *, write: bool) -> bool:
    """Whether rows of ``array`` hold values within round-off outside ``value_range``.

    With ``write``, those values (and only those) are clipped in place, a few rows at a time:
    in a copy-on-write memory map only the pages holding them are copied into memory.
    """
    found = False
    step = _chunk_rows(array)
    for low in range(0, len(array), step):
        rows = array[low:low + step]
        chunk = np.asarray(rows)
        snapped = cli_files.snap_to_value_range(chunk, value_range)
        if snapped is chunk:
            continue
        if not write:
            return True
        found = True
        changed = snapped != chunk
        rows[changed] = snapped[changed]
    return found


#: In the output folder of a streamed run: the :func:`tf_ig2.dataset.explain_dataset` results
#: folder, and the record of the run's settings inside it (whether the run finished).
STREAM_FOLDER = "shards"
STREAM_RECORD = "run.json"

#: Rows of a stored array converted to float32 (and scaled) at a time while streaming it.
_CONVERT_ROWS = 256


@dataclasses.dataclass(frozen=True)
class StreamInputs:
    """Inputs opened for :func:`tf_ig2.dataset.explain_dataset` without reading them all.

    Attributes:
        values: A read-only memory map ``(N, *S)`` float32, or a re-iterable of ``(B, *S)``
            float32 batches read from disk as they are needed.
        count: N, the number of inputs.
        sample_shape: S, the shape of one input.
        names: The image file names, or ``None`` for arrays.
    """

    values: Any
    count: int
    sample_shape: Tuple[int, ...]
    names: Optional[List[str]]


class _ConvertedRows:
    """The rows of a stored ``(N, *S)`` array as float32 times ``scale``, ``(B, *S)`` at a time.

    Values within round-off outside ``value_range`` are clipped to it (:func:`snap_to_value_range`).

    Re-iterable, so that :func:`tf_ig2.dataset.explain_dataset` can compare the first inputs
    with those of an earlier run; ``num_inputs`` feeds its progress bar.
    """

    def __init__(self, array: np.ndarray, scale: float, value_range: ValueRange = None):
        self.array = array
        self.scale = scale
        self.value_range = value_range
        self.num_inputs = int(array.shape[0])

    def __len__(self) -> int:
        return self.num_inputs

    def __iter__(self) -> Iterator[np.ndarray]:
        for low in range(0, self.num_inputs, _CONVERT_ROWS):
            rows = cli_files._scaled(np.asarray(self.array[low:low + _CONVERT_ROWS]), self.scale)
            yield cli_files.snap_to_value_range(rows, self.value_range)


class _TokenRows(_ConvertedRows):
    """The rows of a stored ``(N, T)`` array of token ids as int64, ``(B, T)`` at a time.

    Floats must hold whole numbers (:func:`tf_ig2.cli.inputs.as_token_ids`); a fraction is
    refused when its rows are read.
    """

    def __init__(self, array: np.ndarray, name: str, path: str):
        super().__init__(array, 1.0)
        self.name = name
        self.path = path

    def __iter__(self) -> Iterator[np.ndarray]:
        from tf_ig2.cli.inputs import as_token_ids

        for low in range(0, self.num_inputs, _CONVERT_ROWS):
            yield as_token_ids(np.asarray(self.array[low:low + _CONVERT_ROWS]), self.name, self.path)


class _ImageLoader:
    """Reads one image file as a batch of one ``(1, H, W, C)``, exactly as :func:`read_inputs` does.

    Without an image size every image must have the size of the first one, as in
    :func:`read_inputs`.
    """

    def __init__(self, name: str, image_size: Optional[Tuple[int, int]], channels: Optional[int], scale: float,
                 first_size: Optional[Tuple[int, int]] = None, value_range: ValueRange = None):
        self.name = name
        self.image_size = image_size
        self.channels = channels
        self.scale = scale
        self.first_size = first_size
        self.value_range = value_range

    def __call__(self, path: str) -> np.ndarray:
        image = cli_files.read_image(path, self.name, image_size=self.image_size, channels=self.channels,
                                     scale=self.scale, value_range=self.value_range)
        size = tuple(image.shape[:2])
        if self.image_size is None:
            if self.first_size is None:
                self.first_size = size
            elif size != self.first_size:
                raise ValueError(
                    f"`{self.name}` images have different sizes ({self.first_size} for the first, {size}); give an "
                    f"image size (--image-size H W) to resize them to. Received: {path!r}"
                )
        return image[None]


def _open_npy(name: str, path: str) -> np.ndarray:
    """A read-only memory map of a ``.npy`` file holding numbers (:func:`tf_ig2.dataset.open_inputs`)."""
    from tf_ig2.dataset import open_inputs

    try:
        array = open_inputs(path)
    except Exception as error:  # noqa: BLE001 - any failure to read is reported the same way
        raise ValueError(f"Could not read `{name}` from {path!r}: {cli_files.one_line(error)}") from error
    return cli_files._numeric(name, array, path)


def open_stream(path: PathLike, name: str = "inputs", *, image_size: Optional[Sequence[int]] = None,
                channels: Optional[int] = None, scale: float = 1.0, value_range: ValueRange = None) -> StreamInputs:
    """Opens inputs for streaming: nothing but one image (or the array's header) is read now.

    Values are those :func:`read_inputs` would return for the same arguments, read as they
    are needed: a ``.npy`` file stored as float32 with ``scale`` 1 and no ``value_range`` is
    memory-mapped as it is; another dtype, scale or a value range is converted ``256`` rows
    at a time; images are decoded, resized and scaled one file at a time (via
    :class:`tf_ig2.dataset.ArrayFiles`).

    Args:
        path: A ``.npy`` file ``(N, *S)``, an image file, or a folder of images (name order).
        name: What is read, used in messages.
        image_size: ``(H, W)`` images are resized to; ``None`` keeps the first image's size,
            which every image must then have.
        channels: Colour channels images are decoded to (1, 3 or 4); ``None`` for 3.
        scale: Every value read is multiplied by it.
        value_range: ``(low, high)``: values within float32 round-off outside it are clipped
            to it (:func:`snap_to_value_range`); ``None`` for none.

    Returns:
        A :class:`StreamInputs`.

    Raises:
        ValueError: If ``path`` is missing or unreadable, a ``.npz`` archive (which cannot be
            memory-mapped), of an unknown format, a folder without images, or holds no input.
    """
    from tf_ig2.dataset import ArrayFiles

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"`{name}` file not found. Received: {path!r}")
    size = None if image_size is None else tuple(int(side) for side in image_size)
    if channels not in (None, 1, 3, 4):
        raise ValueError(f"`channels` must be None, 1, 3 or 4. Received: channels={channels!r}")
    lower = path.lower()
    if os.path.isdir(path) or lower.endswith(cli_files.IMAGE_EXTENSIONS):
        files = cli_files.image_files(path) if os.path.isdir(path) else [path]
        if not files:
            raise ValueError(f"`{name}` folder holds no images ({', '.join(cli_files.IMAGE_EXTENSIONS)}). "
                             f"Received: {path!r}")
        loader = _ImageLoader(name, size, channels, scale, value_range=value_range)
        sample_shape = tuple(int(side) for side in loader(files[0]).shape[1:])
        return StreamInputs(ArrayFiles(files, load=loader, num_inputs=len(files)), len(files), sample_shape,
                            [os.path.basename(file) for file in files])
    if lower.endswith(".npz"):
        raise ValueError(
            f"`{name}` in a .npz archive cannot be streamed (an archive cannot be memory-mapped): save the array "
            f"with numpy.save as a .npy file, or explain it without --stream. Received: {path!r}"
        )
    if not lower.endswith(".npy"):
        raise ValueError(
            f"Unknown `{name}` format for streaming: expected a .npy array, an image "
            f"({', '.join(cli_files.IMAGE_EXTENSIONS)}) or a folder of images. Received: {path!r}"
        )
    array = _open_npy(name, path)
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(f"`{name}` must be a batch-first array (N, *S) holding at least one input. "
                         f"Received: {path!r} of shape {array.shape}")
    as_stored = array.dtype == np.float32 and scale == 1.0 and value_range is None
    values = array if as_stored else _ConvertedRows(array, scale, value_range)
    return StreamInputs(values, int(array.shape[0]), tuple(int(side) for side in array.shape[1:]), None)


def open_token_stream(path: PathLike, name: str = "inputs") -> StreamInputs:
    """Opens token ids ``(N, T)`` for streaming (``--input-layer``): a ``.npy`` array, memory-mapped.

    An array stored as int64 is read as it is; other integers, and floats holding whole numbers,
    are converted to int64 ``256`` rows at a time, as the in-memory command reads them
    (:func:`tf_ig2.cli.inputs.read_token_ids`).

    Raises:
        ValueError: If ``path`` is no ``.npy`` file, is unreadable or holds no input.
    """
    path = os.fspath(path)
    if not path.lower().endswith(".npy") or os.path.isdir(path):
        raise ValueError(f"`{name}` token ids are streamed from a .npy array (memory-mapped); save them with "
                         f"numpy.save, or explain them without --stream. Received: {path!r}")
    array = _open_npy(name, path)
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(f"`{name}` must be a batch-first array (N, *S) holding at least one input. "
                         f"Received: {path!r} of shape {array.shape}")
    values = array if array.dtype == np.int64 else _TokenRows(array, name, path)
    return StreamInputs(values, int(array.shape[0]), tuple(int(side) for side in array.shape[1:]), None)


def read_stream_references(path: PathLike, name: str = "references", *,
                           image_size: Optional[Sequence[int]] = None, channels: Optional[int] = None,
                           scale: float = 1.0, value_range: ValueRange = None) -> np.ndarray:
    """References for a streamed run: ``(R, *S)`` shared, or ``(N, R, *S)`` per input.

    A ``.npy`` file stored as float32 read with ``scale`` 1 stays on disk (a read-only memory
    map: per-input references are read a batch at a time); anything else is read into memory
    by :func:`read_inputs`, with the same values. Values within float32 round-off outside
    ``value_range`` are clipped to it (:func:`snap_to_value_range`); in a memory-mapped file
    that holds such values, they are clipped in a copy-on-write memory map (the file is not
    changed; the pages holding them are copied into memory).

    Raises:
        ValueError: As :func:`read_inputs`.
    """
    path = os.fspath(path)
    if os.path.isfile(path) and path.lower().endswith(".npy") and scale == 1.0:
        array = _open_npy(name, path)
        if array.dtype == np.float32:
            if value_range is None or array.ndim == 0 or not _snap_in_place(array, value_range, write=False):
                return array
            try:
                array = np.load(path, mmap_mode="c")
            except Exception as error:  # noqa: BLE001 - any failure to read is reported the same way
                raise ValueError(f"Could not read `{name}` from {path!r}: {cli_files.one_line(error)}") from error
            _snap_in_place(array, value_range, write=True)
            return array
    return cli_files.read_inputs(path, name, image_size=image_size, channels=channels, scale=scale,
                       value_range=value_range)[0]


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def stream_record(output: PathLike) -> Optional[Dict[str, Any]]:
    """The record of the streamed run in ``output`` (``settings``, ``finished``), or ``None``."""
    record = _read_json(os.path.join(os.fspath(output), STREAM_FOLDER, STREAM_RECORD))
    if record is None or not isinstance(record.get("settings"), dict) or not isinstance(record.get("finished"), bool):
        return None
    return record


def write_stream_record(output: PathLike, settings: Dict[str, Any], *, finished: bool) -> None:
    """Records a streamed run's settings, and whether it finished, in ``output/shards/run.json``."""
    from tf_ig2 import __version__

    folder = os.path.join(os.fspath(output), STREAM_FOLDER)
    os.makedirs(folder, exist_ok=True)
    folders.write_json(os.path.join(folder, STREAM_RECORD),
               {"tf_ig2_version": __version__, "settings": settings, "finished": finished})


def stream_explained(output: PathLike) -> int:
    """How many inputs the streamed run in ``output`` has explained in finished shards (0 if unknown)."""
    try:
        folder = ResultsFolder.read(os.path.join(os.fspath(output), STREAM_FOLDER))
    except ValueError:
        return 0
    return folder.count if folder is not None else 0


def check_stream_output(output: PathLike, overwrite: bool) -> Optional[Dict[str, Any]]:
    """Checks, writing nothing, that ``output`` may receive a streamed run; returns the record of one to continue.

    An unfinished streamed run in ``output`` may always be continued (the caller compares its
    settings). Otherwise the folder must be missing or empty, or ``overwrite`` true. Either way
    no file tf_ig2 did not write may be where the results go, and no other run may hold the
    folder.

    Returns:
        The :func:`stream_record` of the unfinished run in ``output``, or ``None``.

    Raises:
        ValueError: If ``output`` or ``output/shards`` is a file, ``output`` is a non-empty
            folder without an unfinished streamed run and ``overwrite`` is false, or a file
            tf_ig2 did not write is where a result goes.
        tf_ig2.folders.FolderInUseError: If another run holds the folder.
    """
    from tf_ig2.dataset import results

    output = os.fspath(output)
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"Output path {output!r} exists and is not a folder.")
    shards = os.path.join(output, STREAM_FOLDER)
    if os.path.lexists(shards) and not os.path.isdir(shards):
        raise ValueError(f"{shards!r} exists and is not a folder; the streamed results are written there. Move it "
                         "away or choose another output folder.")
    record = stream_record(output)
    unfinished = record is not None and not record["finished"]
    if record is not None and not unfinished and not overwrite:
        raise ValueError(f"Output folder {output!r} holds a finished streamed run; pass --overwrite to explain "
                         "again from the start (files this command does not write are left as they are).")
    cli_output.check_output(output, overwrite or unfinished, cli_output.output_names(stream=True))
    conflicts = results.foreign_files(shards)
    if conflicts:
        raise folders.ForeignFilesError(folders.foreign_message(shards, conflicts))
    return record if unfinished else None


def first_inputs(inputs: StreamInputs, count: int) -> np.ndarray:
    """The first ``count`` inputs ``(count, *S)`` float32, read as the run read them (a few files or rows)."""
    values = inputs.values
    if isinstance(values, np.ndarray):
        return np.asarray(values[:count], np.float32)
    batches, read = [], 0
    for batch in values:
        batch = np.asarray(batch, np.float32)
        batches.append(batch)
        read += len(batch)
        if read >= count:
            break
    return np.concatenate(batches)[:count]


def _first_rows(folder: ResultsFolder, name: str, count: int) -> Optional[np.ndarray]:
    """The first ``count`` rows of a stored result array, read from its first shards; ``None`` if not stored."""
    if name not in folder.arrays:
        return None
    parts, read = [], 0
    for path in folder.shard_paths(name):
        if read >= count:
            break
        part = np.load(path, mmap_mode="r")[:count - read]
        parts.append(np.array(part))
        read += len(part)
    return np.concatenate(parts)[:count]


def _shown_explanation(folder: ResultsFolder, attributions_file: str, count: int, method: str,
                       representation: Optional[str]) -> Explanation:
    """The first ``count`` inputs' results as an :class:`~tf_ig2.Explanation` without counterfactuals."""
    values = {name: _first_rows(folder, name, count) for name in ("target_scores", "counterfactual_scores", "delta",
                                                                 "targets", "representation_distance")}
    attributions = np.array(np.load(attributions_file, mmap_mode="r")[:count])
    return Explanation(attributions=attributions, counterfactuals=None, target_scores=values["target_scores"],
                       counterfactual_scores=values["counterfactual_scores"], delta=values["delta"], method=method,
                       targets=values["targets"], representation_distance=values["representation_distance"],
                       representation=representation)


def finish_stream(output: PathLike, *, settings: Dict[str, Any], names: Optional[List[str]],
                  representation: Optional[str], method: str, resumed: int,
                  max_listed: Optional[int] = None, inputs: Optional[StreamInputs] = None,
                  report: cli_report.ReportOptions = cli_report.ReportOptions(),
                  target_count: Optional[int] = None) -> List[str]:
    """Writes ``attributions.npy``, ``summary.json``, ``index.html`` and the panels of a finished streamed run.

    The attributions ``(N, *S)`` float32 (``(N, T, *S)`` for T targets per input) are copied
    shard by shard into a memory-mapped ``.npy`` file, so memory stays bounded by one shard;
    everything is written to a staging folder inside ``output`` first and moved into place at the end
    (:func:`~tf_ig2.cli.output.staged_output`).

    ``summary.json`` holds the settings, the tf_ig2 version, the counts (inputs, shards,
    inputs explained by earlier runs), the mean and largest ``|completeness_delta|`` and,
    when N is at most ``max_listed``, one record per input as
    :func:`~tf_ig2.cli.output.summary` writes them (else ``"inputs": null``: the per-input
    values stay in ``output/shards``). ``index.html`` shows the first ``report.max_inputs``
    inputs and, for image inputs given as ``inputs``, their panels (without a counterfactual
    column: the shards keep none) and, with ``report.path_strips``, their film strips. The
    results folder is read through :mod:`tf_ig2.dataset.results` only: its index
    (:class:`~tf_ig2.dataset.results.ResultsFolder`) and shard files,
    :func:`~tf_ig2.dataset.load_results` for the per-input values and
    :func:`~tf_ig2.dataset.merge_shards` for the attributions.

    Args:
        output: The output folder, holding the finished results in ``shards/``.
        settings: The settings used, stored in the summary.
        names: The inputs' names (image file names), or ``None``.
        representation: The description of the representation GradPath moved in (IG²), or
            ``None``.
        method: The explainer's method (``"ig2"``, ``"ig"``, ``"guided_ig"``).
        resumed: Inputs that earlier runs had explained.
        max_listed: The most inputs listed one by one; ``None`` for
            :data:`tf_ig2.defaults.CLI_SUMMARY_MAX_INPUTS` (1000).
        inputs: The streamed inputs, to draw the panels of the first ones; ``None`` for no
            pictures.
        report: How the pictures are drawn and how many inputs are shown.
        target_count: T when several targets were explained per input (``--targets``,
            ``--top-k``): the attributions are then ``(N, T, *S)``, the summary lists each
            target per input and the panels are one per (input, target), as
            :func:`~tf_ig2.cli.output.summary` and :func:`~tf_ig2.cli.report.write_pictures`
            write them in memory; ``None`` for one target.

    Returns:
        The names of the files written.

    Raises:
        ValueError: If ``output/shards`` holds no finished results.
    """
    from tf_ig2 import __version__

    output = os.fspath(output)
    shards = os.path.join(output, STREAM_FOLDER)
    folder = ResultsFolder.read(shards)
    if folder is None or not folder.complete or "attributions" not in folder.arrays:
        raise ValueError(f"{shards!r} holds no finished streamed results.")
    count = folder.count
    shown = min(count, report.max_inputs)
    with cli_output.staged_output(output, overwrite=True, names=cli_output.output_names(stream=True)) as staging:
        attributions_file = os.path.join(staging, cli_output.ATTRIBUTIONS_FILE)
        sample_shape = list(merge_shards(shards, "attributions", attributions_file)[1:])
        attributions_shape = [count, *sample_shape]
        if target_count is not None:
            sample_shape = sample_shape[1:]
        explanation = _shown_explanation(folder, attributions_file, shown, method, representation)
        pictures = cli_report.Pictures()
        if inputs is not None and len(sample_shape) == 3 and shown:
            pictures = cli_report.write_pictures(staging, explanation, first_inputs(inputs, shown), report,
                                                 total=count, overlays=False)
        listed = count <= (defaults.CLI_SUMMARY_MAX_INPUTS if max_listed is None else max_listed)
        magnitudes = np.abs(load_results(shards, mmap_mode=None, names=["delta"])["delta"].astype(np.float64))
        records = None
        if listed:
            wanted = [name for name in ("targets", "target_scores", "counterfactual_scores", "delta",
                                        "representation_distance") if name in folder.arrays]
            values = load_results(shards, mmap_mode=None, names=wanted)
            records = cli_output.records(
                count, targets=values.get("targets"), scores=values["target_scores"],
                gradcf_scores=values["counterfactual_scores"], deltas=values["delta"],
                distances=values.get("representation_distance"), names=names, pictures=pictures,
                class_names=report.class_names)
        document = {
            "tf_ig2_version": __version__,
            "method": method,
            "representation": representation,
            "stream": True,
            "inputs_shape": [count, *sample_shape],
            **({"target_count": target_count, "attributions_shape": attributions_shape}
               if target_count is not None else {}),
            "counterfactuals_shape": None,
            "settings": settings,
            "counts": {"inputs": count, "shards": folder.shards, "shard_size": folder.shard_size,
                       "explained_earlier": int(resumed), "explained_now": count - int(resumed)},
            # None for methods without completeness (a NaN delta, e.g. the plain gradient)
            "completeness_delta": {"mean_abs": float(magnitudes.mean()) if count else 0.0,
                                   "max_abs": float(magnitudes.max(initial=0.0))}
            if np.all(np.isfinite(magnitudes)) else None,
            "files": {"attributions": cli_output.ATTRIBUTIONS_FILE, "counterfactuals": None,
                      **cli_output.picture_files(pictures), "shards": STREAM_FOLDER},
            "inputs": records,
        }
        folders.write_json(os.path.join(staging, cli_output.SUMMARY_FILE), document)
        shown_records = records[:shown] if records is not None else cli_output.records(
            shown, targets=explanation.targets, scores=explanation.target_scores,
            gradcf_scores=explanation.counterfactual_scores, deltas=explanation.delta,
            distances=explanation.representation_distance, names=names, pictures=pictures,
            class_names=report.class_names)
        report_file = cli_report.write_report(staging, document, shown_records, pictures,
                                              cli_report.notes(count, shown, pictures, stream=True, listed=listed))
    return [cli_output.ATTRIBUTIONS_FILE, *pictures.files(), cli_output.SUMMARY_FILE, report_file]
