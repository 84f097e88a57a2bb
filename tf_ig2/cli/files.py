"""Reading the command line's inputs and references: arrays, images and folders of images.

Inputs and references are ``.npy`` arrays, ``.npz`` archives, or PNG/JPEG/BMP images (one file
or a folder of them), decoded, resized to ``(H, W)`` (bilinear, antialiased) and multiplied by a
scale. Values within float32 round-off of a value range's bound (``--value-range``) are clipped
to that bound (:func:`snap_to_value_range`).

The rest of the command line's files live beside this module, one job each:

- :mod:`tf_ig2.cli.output`: the output folder (written in a temporary folder and moved into place,
  :func:`~tf_ig2.cli.output.staged_output`), ``summary.json`` and :func:`~tf_ig2.cli.output.write_explanation`;
- :mod:`tf_ig2.cli.report`: the pictures (overlays, grid, panels, GradPath film strips) and ``index.html``;
- :mod:`tf_ig2.cli.stream`: inputs larger than memory (``tf-ig2 explain --stream``): opening them
  lazily, the resumable run's record, and :func:`~tf_ig2.cli.stream.finish_stream`;
- :mod:`tf_ig2.cli.inputs`: models with several inputs (``--inputs NAME=PATH``) and token ids
  (``--input-layer``): matching files to the model's inputs and reading them.

Their public names are also reachable from here (``cli_files.write_explanation``,
``cli_files.open_stream``, ...).
"""

from __future__ import annotations

import fractions
import math
import os
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from tf_ig2.validation import one_line

PathLike = Union[str, "os.PathLike[str]"]

#: Image file extensions read as images (decoded by TensorFlow).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

#: Values read at most this many float32 machine epsilons, relative to a bound's magnitude (at
#: least 1), outside a value range are taken as round-off and clipped to the bound
#: (:func:`snap_to_value_range`).
VALUE_RANGE_ROUND_OFF_EPS = 16

ValueRange = Optional[Tuple[float, float]]

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


def _numeric(name: str, array: np.ndarray, path: str) -> np.ndarray:
    if array.dtype == object or array.dtype == np.bool_ or not (
            np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"`{name}` must hold numbers. Received: {path!r} holding dtype {array.dtype}")
    return array


def _unreadable(name: str, path: str, error: BaseException) -> ValueError:
    """The error of a ``.npy``/``.npz`` file that cannot be read; pickled (object) arrays say so."""
    if "allow_pickle" in str(error) or "Object arrays" in str(error):
        return ValueError(f"Could not read `{name}` from {path!r}: it holds Python objects (a pickled object array), "
                          f"which are never loaded, since unpickling can run any code. Save a numeric array instead, "
                          f"e.g. np.save(path, np.asarray(values, dtype=np.float32)).")
    return ValueError(f"Could not read `{name}` from {path!r}: {one_line(error)}")


def _read_npy(name: str, path: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001 - any failure to read is reported the same way
        raise _unreadable(name, path, error) from error
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
    except ValueError as error:
        if str(error).startswith(f"`{name}`: the archive"):
            raise
        raise _unreadable(name, path, error) from error
    except Exception as error:  # noqa: BLE001 - any failure to read is reported the same way
        raise _unreadable(name, path, error) from error
    return _numeric(name, np.asarray(array), path)


def read_array(path: PathLike, name: str) -> np.ndarray:
    """Reads a ``.npy`` array, or the one (or the ``name``) array of a ``.npz`` archive, as stored.

    Raises:
        ValueError: If ``path`` is missing, unreadable, no ``.npy``/``.npz`` file, or holds no numbers.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"`{name}` file not found. Received: {path!r}")
    lower = path.lower()
    if lower.endswith(".npy"):
        return _read_npy(name, path)
    if lower.endswith(".npz"):
        return _read_npz(name, path)
    raise ValueError(f"Unknown `{name}` format: expected a .npy or .npz array. Received: {path!r}")


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


# -- messages ------------------------------------------------------------------------------------
