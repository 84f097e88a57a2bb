"""Files in and out for the command line: reading inputs, writing explanations safely.

Inputs and references are ``.npy`` arrays, ``.npz`` archives, or PNG/JPEG/BMP images (one file
or a folder of them), decoded, resized to ``(H, W)`` (bilinear, antialiased) and multiplied by a
scale. Values within float32 round-off of a value range's bound (``--value-range``) are clipped
to that bound (:func:`snap_to_value_range`). An :class:`~tf_ig2.Explanation` is written as
``attributions.npy``, ``counterfactuals.npy``, ``summary.json`` and, for image inputs, one
overlay PNG per input and ``grid.png`` (see :mod:`tf_ig2.visualize`).

Nothing of the user's is touched until everything is ready: outputs are written to a temporary
folder beside the destination (:func:`staged_output`) and only then moved into place, each
written entry replacing the entry of the same name and nothing else.

For inputs larger than memory (``tf-ig2 explain --stream``), :func:`open_stream` opens them lazily
(a ``.npy`` file as a memory map, images one file at a time) for
:func:`tf_ig2.dataset.explain_dataset`, whose result shards go to ``DIR/shards``; then
:func:`finish_stream` concatenates the attributions into ``DIR/attributions.npy`` through a
memory map, shard by shard, and writes ``DIR/summary.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fractions
import json
import math
import os
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import defaults
from .dataset.results import ResultsFolder, load_results, merge_shards, write_json
from .explanation import Explanation

PathLike = Union[str, "os.PathLike[str]"]

#: Image file extensions read as images (decoded by TensorFlow).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

#: Values read at most this many float32 machine epsilons, relative to a bound's magnitude (at
#: least 1), outside a value range are taken as round-off and clipped to the bound
#: (:func:`snap_to_value_range`).
VALUE_RANGE_ROUND_OFF_EPS = 16

ValueRange = Optional[Tuple[float, float]]

#: Names of the files an explanation is written to.
ATTRIBUTIONS_FILE = "attributions.npy"
COUNTERFACTUALS_FILE = "counterfactuals.npy"
SUMMARY_FILE = "summary.json"
GRID_FILE = "grid.png"
OVERLAY_PATTERN = "overlay_{index}.png"


# -- reading -------------------------------------------------------------------------------------
def parse_scale(text: Union[str, float]) -> float:
    """Reads a scale such as ``"0.5"``, ``"1/255"`` or ``2``; it must be positive and finite.

    Raises:
        ValueError: If ``text`` is no such number.
    """
    message = f"`scale` must be a positive number or a fraction such as 1/255. Received: {text!r}"
    try:
        value = float(fractions.Fraction(str(text).strip())) if not isinstance(text, float) else text
    except (ValueError, ZeroDivisionError) as error:
        raise ValueError(message) from error
    if not math.isfinite(value) or value <= 0:
        raise ValueError(message)
    return value


def value_range_tolerance(bound: float) -> float:
    """How far outside ``bound`` a value read may lie and still count as float32 round-off.

    The tolerance is ``VALUE_RANGE_ROUND_OFF_EPS * eps * max(1, |bound|)`` with ``eps`` the
    float32 machine epsilon (``2**-23``) and ``VALUE_RANGE_ROUND_OFF_EPS = 16``: about
    ``1.9e-6`` for bounds 0 and 1, ``4.9e-4`` for 255. Multiplying by a scale such as
    ``float32(1/255)`` is off by at most about 1 epsilon, and antialiased bilinear resizing of
    8-bit images adds up to a few more (5 measured for a 430-fold reduction: a white pixel
    becomes ``1.0000006`` after ``--scale 1/255``); 16 leaves room for both, far below
    anything an image or a real value outside the range could mean (``1/255`` is
    ``32900`` epsilons).
    """
    return VALUE_RANGE_ROUND_OFF_EPS * float(np.finfo(np.float32).eps) * max(1.0, abs(float(bound)))


def snap_to_value_range(values: np.ndarray, value_range: ValueRange) -> np.ndarray:
    """Clips the values within float32 round-off of a value range's bound to that bound.

    A value below ``low`` by at most :func:`value_range_tolerance` ``(low)`` becomes ``low``
    (as float32), a value above ``high`` by at most ``value_range_tolerance(high)`` becomes
    ``high``; every other value is left as it is, so that values really outside the range
    (e.g. ``1.01`` for ``(0, 1)``) are still refused by the explainer's check. Comparisons are
    made in float32, as the explainer makes them.

    Args:
        values: float32 values.
        value_range: ``(low, high)`` scalars, or ``None`` (nothing is changed).

    Returns:
        ``values`` itself when nothing lies within round-off outside the range, else a clipped
        copy.
    """
    if value_range is None:
        return values
    low, high = (float(bound) for bound in value_range)
    low32, high32 = np.float32(low), np.float32(high)
    below = (values < low32) & (values >= np.float32(low - value_range_tolerance(low)))
    above = (values > high32) & (values <= np.float32(high + value_range_tolerance(high)))
    if not (below.any() or above.any()):
        return values
    return np.where(below, low32, np.where(above, high32, values)).astype(np.float32, copy=False)


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
        snapped = snap_to_value_range(chunk, value_range)
        if snapped is chunk:
            continue
        if not write:
            return True
        found = True
        changed = snapped != chunk
        rows[changed] = snapped[changed]
    return found


def _numeric(name: str, array: np.ndarray, path: str) -> np.ndarray:
    if array.dtype == object or array.dtype == np.bool_ or not (
            np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"`{name}` must hold numbers. Received: {path!r} holding dtype {array.dtype}")
    return array


def _read_npy(name: str, path: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001 - any failure to read is reported the same way
        raise ValueError(f"Could not read `{name}` from {path!r}: {one_line(error)}") from error
    return _numeric(name, np.asarray(array), path)


def _read_npz(name: str, path: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if len(keys) == 1:
                key = keys[0]
            elif name in keys:
                key = name
            else:
                raise ValueError(
                    f"`{name}`: the archive {path!r} holds several arrays and none is named {name!r}. "
                    f"Received: arrays {keys}"
                )
            array = archive[key]
    except ValueError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure to read is reported the same way
        raise ValueError(f"Could not read `{name}` from {path!r}: {one_line(error)}") from error
    return _numeric(name, np.asarray(array), path)


def _decode_image(name: str, path: str, channels: Optional[int]) -> np.ndarray:
    import tensorflow as tf

    try:
        with open(path, "rb") as handle:
            contents = handle.read()
        image = tf.io.decode_image(contents, channels=channels or 3, expand_animations=False)
    except Exception as error:  # noqa: BLE001 - any failure to read is reported the same way
        raise ValueError(f"Could not read `{name}` image {path!r}: {one_line(error)}") from error
    return image.numpy()


def _resize(images: List[np.ndarray], image_size: Optional[Tuple[int, int]], name: str,
            paths: List[str]) -> np.ndarray:
    import tensorflow as tf

    if image_size is None:
        sizes = sorted({image.shape[:2] for image in images})
        if len(sizes) > 1:
            raise ValueError(
                f"`{name}` images have different sizes {sizes}; give an image size (--image-size H W) to resize "
                f"them to. Received: {len(paths)} images"
            )
        return np.stack(images).astype(np.float32)
    resized = []
    for image in images:
        if image.shape[:2] == tuple(image_size):
            resized.append(image.astype(np.float32))
        else:
            resized.append(tf.image.resize(image.astype(np.float32), image_size, method="bilinear",
                                           antialias=True).numpy())
    return np.stack(resized).astype(np.float32)


def image_files(folder: str) -> List[str]:
    """The image files of ``folder`` (see :data:`IMAGE_EXTENSIONS`), sorted by name."""
    names = sorted(entry for entry in os.listdir(folder)
                   if entry.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, entry)))
    return [os.path.join(folder, entry) for entry in names]


def read_inputs(path: PathLike, name: str, *, image_size: Optional[Sequence[int]] = None,
                channels: Optional[int] = None, scale: float = 1.0,
                value_range: ValueRange = None) -> Tuple[np.ndarray, Optional[List[str]]]:
    """Reads a batch of inputs (or references) from an array file, an image or a folder of images.

    Args:
        path: A ``.npy`` file; a ``.npz`` file with one array, or with an array named ``name``;
            an image file; or a folder of image files (read in name order).
        name: What is read (``"inputs"`` or ``"references"``), used in messages and to pick an
            array out of a ``.npz`` archive.
        image_size: ``(H, W)`` every image is resized to; ``None`` keeps their size (all images
            must then have the same size). Ignored for arrays.
        channels: Colour channels images are decoded to (1 grey, 3 RGB, 4 RGBA); ``None`` for 3.
        scale: Every value read (image or array) is multiplied by it, e.g. ``1/255``.
        value_range: ``(low, high)``: values within float32 round-off outside it (after
            ``scale``) are clipped to it (:func:`snap_to_value_range`); ``None`` for none.

    Returns:
        ``(values, names)``: float32 values (an array as stored, or images ``(N, H, W, C)``), and
        the image file names (``None`` for arrays).

    Raises:
        ValueError: If ``path`` is missing or unreadable, of an unknown format, or a folder
            without images.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"`{name}` file not found. Received: {path!r}")
    if image_size is not None:
        image_size = tuple(int(side) for side in image_size)
    if channels not in (None, 1, 3, 4):
        raise ValueError(f"`channels` must be None, 1, 3 or 4. Received: channels={channels!r}")
    names: Optional[List[str]] = None
    if os.path.isdir(path):
        files = image_files(path)
        if not files:
            raise ValueError(f"`{name}` folder holds no images ({', '.join(IMAGE_EXTENSIONS)}). Received: {path!r}")
        values = _resize([_decode_image(name, file, channels) for file in files], image_size, name, files)
        names = [os.path.basename(file) for file in files]
    else:
        lower = path.lower()
        if lower.endswith(".npy"):
            values = _read_npy(name, path)
        elif lower.endswith(".npz"):
            values = _read_npz(name, path)
        elif lower.endswith(IMAGE_EXTENSIONS):
            values = _resize([_decode_image(name, path, channels)], image_size, name, [path])
            names = [os.path.basename(path)]
        else:
            raise ValueError(
                f"Unknown `{name}` format: expected a .npy or .npz array, an image "
                f"({', '.join(IMAGE_EXTENSIONS)}) or a folder of images. Received: {path!r}"
            )
    return snap_to_value_range(_scaled(values, scale), value_range), names


def _scaled(values: np.ndarray, scale: float) -> np.ndarray:
    """``values`` as float32, multiplied by ``scale`` (in float32)."""
    values = values.astype(np.float32)
    if scale != 1.0:
        values = (values * np.float32(scale)).astype(np.float32)
    return values


def read_image(path: PathLike, name: str = "inputs", *, image_size: Optional[Sequence[int]] = None,
               channels: Optional[int] = None, scale: float = 1.0, value_range: ValueRange = None) -> np.ndarray:
    """Reads one image file as ``(H, W, C)`` float32, exactly as :func:`read_inputs` reads each image.

    Args:
        path: An image file (see :data:`IMAGE_EXTENSIONS`).
        name: What is read, used in messages.
        image_size: ``(H, W)`` to resize to (bilinear, antialiased); ``None`` keeps its size.
        channels: Colour channels to decode to (1, 3 or 4); ``None`` for 3.
        scale: Every value is multiplied by it.
        value_range: ``(low, high)``: values within float32 round-off outside it are clipped to
            it (:func:`snap_to_value_range`); ``None`` for none.

    Raises:
        ValueError: If the file cannot be decoded.
    """
    path = os.fspath(path)
    size = None if image_size is None else tuple(int(side) for side in image_size)
    image = _scaled(_resize([_decode_image(name, path, channels)], size, name, [path])[0], scale)
    return snap_to_value_range(image, value_range)


# -- writing -------------------------------------------------------------------------------------
def one_line(message: Union[str, BaseException]) -> str:
    """``message`` on one line, its whitespace runs collapsed; an error is prefixed with its type.

    Every message the command line prints, and every error met reading a model or a file, goes
    through it: an error ``OSError("No space\\n left")`` becomes ``"OSError: No space left"``.
    """
    text = " ".join(str(message).split())
    if not isinstance(message, BaseException):
        return text
    return f"{type(message).__name__}: {text}" if text else type(message).__name__


def check_output(path: PathLike, overwrite: bool) -> str:
    """Checks that ``path`` may receive outputs; returns it as a string.

    Raises:
        ValueError: If ``path`` is a file, or a non-empty folder and ``overwrite`` is false.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"Output path {path!r} exists and is not a folder.")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise ValueError(
            f"Output folder {path!r} is not empty; pass --overwrite to replace the files this command writes "
            "there (other files are left as they are)."
        )
    return path


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def publish(staging: str, destination: str) -> List[str]:
    """Moves everything in ``staging`` into ``destination``; returns the moved entries' names.

    A missing ``destination`` is the renamed ``staging`` folder. Otherwise each entry of
    ``staging`` replaces the entry of the same name in ``destination`` (a folder as a whole),
    and every other entry of ``destination`` stays as it is.
    """
    entries = sorted(os.listdir(staging))
    if not os.path.exists(destination):
        os.replace(staging, destination)
        return entries
    for entry in entries:
        target = os.path.join(destination, entry)
        if os.path.lexists(target):
            _remove(target)
        os.replace(os.path.join(staging, entry), target)
    os.rmdir(staging)
    return entries


@contextlib.contextmanager
def staged_output(destination: PathLike, *, overwrite: bool) -> Iterator[str]:
    """A temporary folder beside ``destination`` whose contents are moved there on success.

    On an exception the temporary folder is removed and ``destination`` is left untouched.

    Yields:
        The temporary folder to write into.

    Raises:
        ValueError: As :func:`check_output`.
    """
    destination = os.path.abspath(check_output(destination, overwrite))
    parent = os.path.dirname(destination)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(destination)}.partial-", dir=parent)
    try:
        yield staging
        check_output(destination, overwrite)
        publish(staging, destination)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)


def is_image_batch(values: np.ndarray) -> bool:
    """Whether ``(N, *S)`` values are images: rank 3 per sample ``(H, W, C)``."""
    return values.ndim == 4


def _display_images(images: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` images as grey ``(N, H, W, 1)`` or RGB ``(N, H, W, 3)``."""
    channels = images.shape[-1]
    if channels in (1, 3):
        return images
    if channels == 4:
        return images[..., :3]
    return images.mean(axis=-1, keepdims=True)


def _png(image: Any) -> bytes:
    import tensorflow as tf

    pixels = tf.cast(tf.round(tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 1.0) * 255.0), tf.uint8)
    return tf.io.encode_png(pixels).numpy()


def write_images(folder: str, images: np.ndarray, attributions: np.ndarray, *,
                 min_display_size: int = defaults.CLI_MIN_DISPLAY_SIZE) -> Tuple[List[str], str]:
    """Writes one overlay PNG per image and ``grid.png`` into ``folder``.

    Small images are enlarged by the integer factor ``ceil(min_display_size / min(H, W))``
    (nearest neighbour), so the PNGs are ``(H * f, W * f)``; the grid tiles them.

    Args:
        folder: An existing folder.
        images: ``(N, H, W, C)`` inputs (any value range; each is rescaled for display).
        attributions: ``(N, H, W, C)`` attributions.
        min_display_size: Shorter PNG side, at least, in pixels; 1 keeps the input size.

    Returns:
        ``(overlay file names, grid file name)``.
    """
    from . import visualize

    overlays = visualize.overlay(_display_images(images), attributions)
    factor = max(1, math.ceil(min_display_size / min(int(images.shape[1]), int(images.shape[2]))))
    overlays = visualize.upscale(overlays, factor)
    width = max(3, len(str(len(images) - 1)))
    names = []
    for index in range(len(images)):
        file_name = OVERLAY_PATTERN.format(index=f"{index:0{width}d}")
        with open(os.path.join(folder, file_name), "wb") as handle:
            handle.write(_png(overlays[index]))
        names.append(file_name)
    with open(os.path.join(folder, GRID_FILE), "wb") as handle:
        handle.write(_png(visualize.grid(overlays)))
    return names, GRID_FILE


def _floats(values: Any) -> Any:
    return np.asarray(values, np.float64).tolist()


def _records(count: int, *, targets: Optional[np.ndarray], scores: np.ndarray, gradcf_scores: np.ndarray,
             deltas: np.ndarray, distances: Optional[np.ndarray], names: Optional[List[str]] = None,
             overlays: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    """One JSON-ready record per input (see :func:`summary`); arrays are ``(N,)`` or ``(N, R, 2)``."""
    relative = Explanation(attributions=None, counterfactuals=None, target_scores=np.asarray(scores),
                           counterfactual_scores=np.asarray(gradcf_scores), delta=np.asarray(deltas),
                           method="").relative_delta
    records = []
    for index in range(count):
        record: Dict[str, Any] = {
            "index": index,
            "name": names[index] if names is not None else None,
            "target": None if targets is None else int(targets[index]),
            "score": float(scores[index]),
            "gradcf_score": float(gradcf_scores[index]),
            "completeness_delta": float(deltas[index]),
            "relative_delta": float(relative[index]),
        }
        if distances is not None:
            record["representation_distance"] = [
                {"reference": reference, "start": float(start), "end": float(end)}
                for reference, (start, end) in enumerate(np.asarray(distances[index], np.float64))
            ]
        if overlays is not None:
            record["overlay"] = overlays[index]
        records.append(record)
    return records


def summary(explanation: Any, *, names: Optional[List[str]] = None, overlays: Optional[List[str]] = None,
            settings: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The JSON-ready summary of an explanation: settings, version and one record per input.

    Per input: its name, the explained ``target``, its ``score`` ``f_c(x)``, the mean
    ``gradcf_score`` ``f_c(counterfactual)`` over its references (GradCF for IG², the baselines
    for the other methods), the ``completeness_delta`` ``sum(A) - (score - gradcf_score)``, the
    ``relative_delta`` ``|completeness_delta| / |score - gradcf_score|``
    (:attr:`~tf_ig2.Explanation.relative_delta`) and, for IG², per reference the representation
    distance at the start and the end of the GradPath.
    """
    from . import __version__

    records = _records(len(explanation.attributions), targets=explanation.targets,
                       scores=explanation.target_scores, gradcf_scores=explanation.counterfactual_scores,
                       deltas=explanation.delta, distances=explanation.representation_distance, names=names,
                       overlays=overlays)
    return {
        "tf_ig2_version": __version__,
        "method": explanation.method,
        "representation": explanation.representation,
        "inputs_shape": list(explanation.attributions.shape),
        "counterfactuals_shape": list(explanation.counterfactuals.shape),
        "settings": settings or {},
        "files": {
            "attributions": ATTRIBUTIONS_FILE,
            "counterfactuals": COUNTERFACTUALS_FILE,
            "grid": GRID_FILE if overlays is not None else None,
            "overlays": overlays or [],
        },
        "inputs": records,
    }


def write_explanation(folder: str, explanation: Any, inputs: np.ndarray, *, names: Optional[List[str]] = None,
                      settings: Optional[Dict[str, Any]] = None,
                      min_display_size: int = defaults.CLI_MIN_DISPLAY_SIZE) -> List[str]:
    """Writes an explanation into an existing ``folder``; returns the file names written.

    Files: ``attributions.npy`` ``(N, *S)`` float32, ``counterfactuals.npy`` ``(N, R, *S)``
    float32, ``summary.json`` (see :func:`summary`) and, when the inputs are images
    ``(N, H, W, C)``, ``overlay_000.png``... (one per input) and ``grid.png``.

    Args:
        folder: The folder to write into (normally the one :func:`staged_output` yields).
        explanation: An :class:`~tf_ig2.Explanation`.
        inputs: The explained ``(N, *S)`` inputs.
        names: The inputs' names (e.g. image file names), or ``None``.
        settings: The settings used, stored in the summary.
        min_display_size: See :func:`write_images`.
    """
    np.save(os.path.join(folder, ATTRIBUTIONS_FILE), np.asarray(explanation.attributions, np.float32))
    np.save(os.path.join(folder, COUNTERFACTUALS_FILE), np.asarray(explanation.counterfactuals, np.float32))
    written = [ATTRIBUTIONS_FILE, COUNTERFACTUALS_FILE]
    overlays = None
    if is_image_batch(inputs):
        overlays, grid_name = write_images(folder, inputs, explanation.attributions,
                                           min_display_size=min_display_size)
        written += overlays + [grid_name]
    with open(os.path.join(folder, SUMMARY_FILE), "w", encoding="utf-8") as handle:
        json.dump(summary(explanation, names=names, overlays=overlays, settings=settings), handle, indent=2)
        handle.write("\n")
    return written + [SUMMARY_FILE]


# -- streaming: tf-ig2 explain --stream ------------------------------------------------------------
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
            yield snap_to_value_range(_scaled(np.asarray(self.array[low:low + _CONVERT_ROWS]), self.scale),
                                      self.value_range)


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
        image = read_image(path, self.name, image_size=self.image_size, channels=self.channels, scale=self.scale,
                           value_range=self.value_range)
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
    from .dataset import open_inputs

    try:
        array = open_inputs(path)
    except Exception as error:  # noqa: BLE001 - any failure to read is reported the same way
        raise ValueError(f"Could not read `{name}` from {path!r}: {one_line(error)}") from error
    return _numeric(name, array, path)


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
    from .dataset import ArrayFiles

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"`{name}` file not found. Received: {path!r}")
    size = None if image_size is None else tuple(int(side) for side in image_size)
    if channels not in (None, 1, 3, 4):
        raise ValueError(f"`channels` must be None, 1, 3 or 4. Received: channels={channels!r}")
    lower = path.lower()
    if os.path.isdir(path) or lower.endswith(IMAGE_EXTENSIONS):
        files = image_files(path) if os.path.isdir(path) else [path]
        if not files:
            raise ValueError(f"`{name}` folder holds no images ({', '.join(IMAGE_EXTENSIONS)}). Received: {path!r}")
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
            f"({', '.join(IMAGE_EXTENSIONS)}) or a folder of images. Received: {path!r}"
        )
    array = _open_npy(name, path)
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(f"`{name}` must be a batch-first array (N, *S) holding at least one input. "
                         f"Received: {path!r} of shape {array.shape}")
    as_stored = array.dtype == np.float32 and scale == 1.0 and value_range is None
    values = array if as_stored else _ConvertedRows(array, scale, value_range)
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
                raise ValueError(f"Could not read `{name}` from {path!r}: {one_line(error)}") from error
            _snap_in_place(array, value_range, write=True)
            return array
    return read_inputs(path, name, image_size=image_size, channels=channels, scale=scale,
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
    from . import __version__

    folder = os.path.join(os.fspath(output), STREAM_FOLDER)
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, STREAM_RECORD),
               {"tf_ig2_version": __version__, "settings": settings, "finished": finished})


def stream_explained(output: PathLike) -> int:
    """How many inputs the streamed run in ``output`` has explained in finished shards (0 if unknown)."""
    try:
        folder = ResultsFolder.read(os.path.join(os.fspath(output), STREAM_FOLDER))
    except ValueError:
        return 0
    return folder.count if folder is not None else 0


def check_stream_output(output: PathLike, overwrite: bool) -> Optional[Dict[str, Any]]:
    """Checks that ``output`` may receive a streamed run; returns the record of one to continue.

    An unfinished streamed run in ``output`` may always be continued (the caller compares its
    settings). Otherwise the folder must be missing or empty, or ``overwrite`` true.

    Returns:
        The :func:`stream_record` of the unfinished run in ``output``, or ``None``.

    Raises:
        ValueError: If ``output`` or ``output/shards`` is a file, or ``output`` is a non-empty
            folder without an unfinished streamed run and ``overwrite`` is false.
    """
    output = os.fspath(output)
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"Output path {output!r} exists and is not a folder.")
    shards = os.path.join(output, STREAM_FOLDER)
    if os.path.lexists(shards) and not os.path.isdir(shards):
        raise ValueError(f"{shards!r} exists and is not a folder; the streamed results are written there. Move it "
                         "away or choose another output folder.")
    record = stream_record(output)
    if record is not None and not record["finished"]:
        return record
    if record is not None and not overwrite:
        raise ValueError(f"Output folder {output!r} holds a finished streamed run; pass --overwrite to explain "
                         "again from the start (files this command does not write are left as they are).")
    check_output(output, overwrite)
    return None


def finish_stream(output: PathLike, *, settings: Dict[str, Any], names: Optional[List[str]],
                  representation: Optional[str], method: str, resumed: int,
                  max_listed: Optional[int] = None) -> List[str]:
    """Writes ``attributions.npy`` and ``summary.json`` of the finished streamed run in ``output``.

    The attributions ``(N, *S)`` float32 are copied shard by shard into a memory-mapped
    ``.npy`` file, so memory stays bounded by one shard; both files are written beside
    ``output`` first and moved in at the end (:func:`staged_output`).

    ``summary.json`` holds the settings, the tf_ig2 version, the counts (inputs, shards,
    inputs explained by earlier runs), the mean and largest ``|completeness_delta|`` and,
    when N is at most ``max_listed``, one record per input as :func:`summary` writes them
    (else ``"inputs": null``: the per-input values stay in ``output/shards``). The results
    folder is read through :mod:`tf_ig2.dataset.results` only: its index
    (:class:`~tf_ig2.dataset.results.ResultsFolder`), :func:`~tf_ig2.dataset.load_results` for
    the per-input values and :func:`~tf_ig2.dataset.merge_shards` for the attributions.

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

    Returns:
        The names of the files written.

    Raises:
        ValueError: If ``output/shards`` holds no finished results.
    """
    from . import __version__

    output = os.fspath(output)
    shards = os.path.join(output, STREAM_FOLDER)
    folder = ResultsFolder.read(shards)
    if folder is None or not folder.complete or "attributions" not in folder.arrays:
        raise ValueError(f"{shards!r} holds no finished streamed results.")
    count = folder.count
    with staged_output(output, overwrite=True) as staging:
        sample_shape = list(merge_shards(shards, "attributions", os.path.join(staging, ATTRIBUTIONS_FILE))[1:])
        listed = count <= (defaults.CLI_SUMMARY_MAX_INPUTS if max_listed is None else max_listed)
        wanted = [name for name in ("targets", "target_scores", "counterfactual_scores", "delta",
                                    "representation_distance") if name in folder.arrays]
        if not listed:
            wanted = ["delta"]
        values = load_results(shards, mmap_mode=None, names=wanted)
        magnitudes = np.abs(values["delta"].astype(np.float64))
        records = None
        if listed:
            records = _records(
                count,
                targets=values.get("targets"),
                scores=values["target_scores"],
                gradcf_scores=values["counterfactual_scores"],
                deltas=values["delta"],
                distances=values.get("representation_distance"),
                names=names)
        document = {
            "tf_ig2_version": __version__,
            "method": method,
            "representation": representation,
            "stream": True,
            "inputs_shape": [count, *sample_shape],
            "counterfactuals_shape": None,
            "settings": settings,
            "counts": {"inputs": count, "shards": folder.shards, "shard_size": folder.shard_size,
                       "explained_earlier": int(resumed), "explained_now": count - int(resumed)},
            "completeness_delta": {"mean_abs": float(magnitudes.mean()) if count else 0.0,
                                   "max_abs": float(magnitudes.max(initial=0.0))},
            "files": {"attributions": ATTRIBUTIONS_FILE, "counterfactuals": None, "grid": None, "overlays": [],
                      "shards": STREAM_FOLDER},
            "inputs": records,
        }
        with open(os.path.join(staging, SUMMARY_FILE), "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
    return [ATTRIBUTIONS_FILE, SUMMARY_FILE]
