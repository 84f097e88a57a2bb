"""Files in and out for the command line: reading inputs, writing explanations safely.

Inputs and references are ``.npy`` arrays, ``.npz`` archives, or PNG/JPEG/BMP images (one file
or a folder of them), decoded, resized to ``(H, W)`` (bilinear, antialiased) and multiplied by a
scale. An :class:`~tf_ig2.Explanation` is written as ``attributions.npy``,
``counterfactuals.npy``, ``summary.json`` and, for image inputs, one overlay PNG per input and
``grid.png`` (see :mod:`tf_ig2.visualize`).

Nothing of the user's is touched until everything is ready: outputs are written to a temporary
folder beside the destination (:func:`staged_output`) and only then moved into place, each
written entry replacing the entry of the same name and nothing else.
"""

from __future__ import annotations

import contextlib
import fractions
import json
import math
import os
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import defaults

PathLike = Union[str, "os.PathLike[str]"]

#: Image file extensions read as images (decoded by TensorFlow).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

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


def _numeric(name: str, array: np.ndarray, path: str) -> np.ndarray:
    if array.dtype == object or array.dtype == np.bool_ or not (
            np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"`{name}` must hold numbers. Received: {path!r} holding dtype {array.dtype}")
    return array


def _read_npy(name: str, path: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001 - any failure to read is reported the same way
        raise ValueError(f"Could not read `{name}` from {path!r}: {_one_line(error)}") from error
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
        raise ValueError(f"Could not read `{name}` from {path!r}: {_one_line(error)}") from error
    return _numeric(name, np.asarray(array), path)


def _decode_image(name: str, path: str, channels: Optional[int]) -> np.ndarray:
    import tensorflow as tf

    try:
        with open(path, "rb") as handle:
            contents = handle.read()
        image = tf.io.decode_image(contents, channels=channels or 3, expand_animations=False)
    except Exception as error:  # noqa: BLE001 - any failure to read is reported the same way
        raise ValueError(f"Could not read `{name}` image {path!r}: {_one_line(error)}") from error
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
                channels: Optional[int] = None, scale: float = 1.0) -> Tuple[np.ndarray, Optional[List[str]]]:
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
    values = values.astype(np.float32)
    if scale != 1.0:
        values = (values * np.float32(scale)).astype(np.float32)
    return values, names


# -- writing -------------------------------------------------------------------------------------
def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


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


def summary(explanation: Any, *, names: Optional[List[str]] = None, overlays: Optional[List[str]] = None,
            settings: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The JSON-ready summary of an explanation: settings, version and one record per input.

    Per input: its name, the explained ``target``, its ``score`` ``f_c(x)``, the mean
    ``gradcf_score`` ``f_c(GradCF)`` over its references, the ``completeness_delta``
    ``sum(A) - (score - gradcf_score)`` and, per reference, the representation distance at the
    start and the end of the GradPath.
    """
    from . import __version__

    count = len(explanation.attributions)
    records = []
    for index in range(count):
        record: Dict[str, Any] = {
            "index": index,
            "name": names[index] if names is not None else None,
            "target": None if explanation.targets is None else int(explanation.targets[index]),
            "score": float(explanation.target_scores[index]),
            "gradcf_score": float(explanation.counterfactual_scores[index]),
            "completeness_delta": float(explanation.delta[index]),
        }
        distances = explanation.representation_distance
        if distances is not None:
            record["representation_distance"] = [
                {"reference": reference, "start": float(start), "end": float(end)}
                for reference, (start, end) in enumerate(np.asarray(distances[index], np.float64))
            ]
        if overlays is not None:
            record["overlay"] = overlays[index]
        records.append(record)
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
