"""Image maps of attributions: magnitude and signed maps, colour maps, overlays, enlargement.

For an attribution ``A`` of shape ``(N, H, W, C)`` the magnitude map of image ``n`` is
``M_n = clip(sum_c |A_n[..., c]| / P_q(sum_c |A_n|), 0, 1)``, where ``P_q`` is the per-image
``q``-th percentile (linear interpolation between order statistics). Clipping at a high percentile
instead of the maximum keeps one extreme pixel from washing the rest of the map out. The signed
(diverging) map scales ``sum_c A_n`` symmetrically by ``P_q(|sum_c A_n|)`` into ``[-1, 1]``.

Every scale is computed in float64 after dividing by the per-image maximum, so maps of all-negative,
all-zero or very small (even subnormal) attributions are neither blank nor wrapped around: an
all-zero map stays exactly zero. When the percentile itself is zero (a map with a few non-zero
pixels) the maximum is used instead, so those pixels stay visible.

All functions are pure: they take numpy arrays or tensors and return float32 ``tf.Tensor`` values
in ``[0, 1]``; nothing is written anywhere. The work is done in numpy, where these small per-image operations are
cheaper than eager TensorFlow ops.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, validation

#: The colour maps offered, by name: OpenCV's 256-entry tables of matplotlib's inferno and viridis
#: and of jet (:func:`colormap_table`).
COLORMAP_NAMES = ("inferno", "viridis", "jet")


@functools.lru_cache(maxsize=None)
def colormap_table(name: str) -> np.ndarray:
    """``(256, 3)`` float32 RGB in [0, 1]: the colour map ``name`` at 0, 1/255, ..., 1 (OpenCV's table)."""
    import cv2

    code = {"inferno": cv2.COLORMAP_INFERNO, "viridis": cv2.COLORMAP_VIRIDIS, "jet": cv2.COLORMAP_JET}[name]
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], code)[:, 0]
    table = (bgr[:, ::-1] / 255.0).astype(np.float32)
    table.setflags(write=False)
    return table


# -- argument checks ----------------------------------------------------------------------------
def _numeric_array(name: str, value: Any, ranks: tuple) -> np.ndarray:
    """``value`` as a finite float64 numpy array whose rank is one of ``ranks``.

    The work is done in numpy: the maps are small, and TensorFlow would flush subnormal float32
    values to zero on the CPU, blanking maps of very small attributions.
    """
    if tf.is_tensor(value) and (value.dtype == tf.bool or not (value.dtype.is_floating or value.dtype.is_integer)):
        raise TypeError(f"`{name}` must hold numbers. Received: tensor of dtype {value.dtype.name}")
    array = validation.as_numpy(name, value)
    if array.dtype == object or array.dtype == np.bool_ or not (
            np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"`{name}` must hold numbers. Received: {validation.describe(array)}")
    if array.ndim not in ranks:
        raise ValueError(
            f"`{name}` must have rank {' or '.join(map(str, ranks))} (batch-first). "
            f"Received: shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(f"`{name}` must not be empty. Received: shape {array.shape}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must hold finite values only. Received: NaN or inf in shape {array.shape}")
    return array


def check_percentile(percentile: Any) -> float:
    """``percentile`` checked: a number in (0, 100]."""
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real):
        raise TypeError(f"`percentile` must be a number in (0, 100]. Received: percentile={percentile!r}")
    if not 0.0 < float(percentile) <= 100.0:
        raise ValueError(f"`percentile` must be in (0, 100]. Received: percentile={percentile!r}")
    return float(percentile)


def check_colormap(colormap: Any) -> np.ndarray:
    """``colormap`` checked against :data:`COLORMAP_NAMES`; returns its table (:func:`colormap_table`)."""
    if not isinstance(colormap, str) or colormap not in COLORMAP_NAMES:
        raise ValueError(f"`colormap` must be one of {sorted(COLORMAP_NAMES)}. Received: colormap={colormap!r}")
    return colormap_table(colormap)


def _tensor(array: np.ndarray) -> tf.Tensor:
    return tf.constant(array.astype(np.float32))


# -- numpy kernels (float64 in, float64 out) ------------------------------------------------------
def _channel_sum(name: str, attributions: Any, *, absolute: bool) -> np.ndarray:
    """``(N, H, W)`` sum over channels of ``(N, H, W, C)`` or ``(N, H, W)`` values."""
    values = _numeric_array(name, attributions, (3, 4))
    if absolute:
        values = np.abs(values)
    return values.sum(axis=-1) if values.ndim == 4 else values


def _robust_scale(maps: np.ndarray, percentile: float) -> np.ndarray:
    """``(N, H, W)`` maps divided by their per-image percentile of ``|maps|``, unclipped.

    The maps are first divided by their maximum magnitude (so that the percentile is computed on
    values in [0, 1] whatever their original scale); an all-zero map stays zero, and a map whose
    percentile is zero is scaled by its maximum.
    """
    flat = maps.reshape(len(maps), -1)
    peak = np.abs(flat).max(axis=1, keepdims=True)
    normalized = flat / np.where(peak > 0.0, peak, 1.0)
    level = np.percentile(np.abs(normalized), percentile, axis=1, keepdims=True)
    return (normalized / np.where(level > 0.0, level, 1.0)).reshape(maps.shape)


def _magnitude(attributions: Any, percentile: float) -> np.ndarray:
    maps = _channel_sum("attributions", attributions, absolute=True)
    return np.clip(_robust_scale(maps, percentile), 0.0, 1.0)


def _scales(maps: np.ndarray, percentile: float) -> np.ndarray:
    """``(N,)`` the value of each ``(N, H, W)`` map that :func:`_robust_scale` maps to 1, in its units.

    The per-image percentile of ``|maps|``, or the maximum when that percentile is zero (0 for an
    all-zero map).
    """
    flat = np.abs(maps.reshape(len(maps), -1))
    peaks = flat.max(axis=1)
    levels = np.percentile(flat / np.where(peaks > 0.0, peaks, 1.0)[:, None], percentile, axis=1)
    return np.where(levels > 0.0, levels, 1.0) * peaks


def _magnitude_scales(attributions: Any, percentile: float) -> np.ndarray:
    """``(N,)`` the ``sum_c |A|`` that the magnitude maps show at full colour (attribution units)."""
    return _scales(_channel_sum("attributions", attributions, absolute=True), percentile)


def _signed(attributions: Any, percentile: float) -> tuple:
    """``(N, H, W)`` signed maps ``sum_c A`` scaled into [-1, 1], and ``(N,)`` their scales.

    The scale of image ``n`` (in attribution units) is the value that maps to full colour: its
    percentile of ``|sum_c A|``, or its maximum when that percentile is zero (0 for an all-zero map).
    """
    maps = _channel_sum("attributions", attributions, absolute=False)
    return np.clip(_robust_scale(maps, percentile), -1.0, 1.0), _scales(maps, percentile)


def _diverging(signed: np.ndarray) -> np.ndarray:
    """``(..., 3)`` colours of values in [-1, 1].

    ``v > 0`` is ``(1, 1 - v, 1 - v)``, ``v < 0`` ``(1 - |v|, 1 - |v|, 1)``.
    """
    positive, negative = np.maximum(signed, 0.0), np.maximum(-signed, 0.0)
    return np.stack([1.0 - negative, 1.0 - positive - negative, 1.0 - positive], axis=-1)


def _colorize(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    table = table.astype(np.float64)
    anchors = len(table)
    position = np.clip(values, 0.0, 1.0) * (anchors - 1)
    below = np.minimum(np.floor(position).astype(np.int64), anchors - 2)
    weight = (position - below)[..., None]
    return np.clip(table[below] * (1.0 - weight) + table[below + 1] * weight, 0.0, 1.0)


def _rescale(images: Any) -> np.ndarray:
    values = _numeric_array("images", images, (3, 4))
    if values.ndim == 3:
        values = values[..., None]
    if values.shape[-1] not in (1, 3):
        raise ValueError(
            f"`images` must have 1 or 3 channels (N, H, W, 1 or 3), or be (N, H, W). "
            f"Received: shape {values.shape}"
        )
    low = values.min(axis=(1, 2, 3), keepdims=True)
    high = values.max(axis=(1, 2, 3), keepdims=True)
    span = high - low
    stretched = (values - low) / np.where(span > 0.0, span, 1.0)
    values = np.where(span > 0.0, stretched, np.clip(values, 0.0, 1.0))
    return np.repeat(values, 3, axis=-1) if values.shape[-1] == 1 else values


def _resize(maps: np.ndarray, size: tuple) -> np.ndarray:
    """Bilinear resize of ``(N, h, w)`` maps to ``(N, *size)`` (OpenCV), clipped to [0, 1]."""
    import cv2  # only needed for maps of another size

    resized = [cv2.resize(item.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
               for item in maps]
    return np.clip(np.stack(resized).astype(np.float64), 0.0, 1.0)


def _grey(images: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` RGB in [0, 1] -> the same in grey (luma weights), still 3 channels."""
    luma = images @ np.array([0.299, 0.587, 0.114])
    return np.repeat(luma[..., None], 3, axis=-1)


def _overlay(images: Any, attributions: Any, alpha: float, percentile: float, colormap: str, *,
             grey: bool = False) -> np.ndarray:
    alpha = validation.fraction("alpha", alpha)
    percentile = check_percentile(percentile)
    table = check_colormap(colormap)
    background = _grey(_rescale(images)) if grey else _rescale(images)
    maps = _magnitude(attributions, percentile)
    if len(maps) != len(background):
        raise ValueError(
            f"`images` and `attributions` must hold the same number of items. Received: "
            f"{len(background)} images and {len(maps)} attribution maps"
        )
    if maps.shape[1:3] != background.shape[1:3]:
        maps = _resize(maps, background.shape[1:3])
    return (1.0 - alpha) * background + alpha * _colorize(maps, table)


# -- public maps --------------------------------------------------------------------------------
def magnitude_map(attributions: Any, *, percentile: float = defaults.HEATMAP_PERCENTILE) -> tf.Tensor:
    """Per-image magnitude of attributions, scaled to [0, 1].

    Args:
        attributions: ``(N, H, W, C)`` or ``(N, H, W)`` numbers (array or tensor).
        percentile: The per-image percentile of ``sum_c |A|`` that maps to 1; larger values clip.

    Returns:
        ``(N, H, W)`` float32 tensor in [0, 1].

    Raises:
        TypeError, ValueError: On a malformed argument (wrong rank, empty, NaN or inf).
    """
    return _tensor(_magnitude(attributions, check_percentile(percentile)))


def diverging_map(attributions: Any, *, percentile: float = defaults.HEATMAP_PERCENTILE) -> tf.Tensor:
    """Signed attributions in colour: red for positive, blue for negative, white for zero.

    The signed map ``s = sum_c A`` is divided by the per-image percentile of ``|s|`` (the same
    scale for both signs) and clipped to [-1, 1]; ``v > 0`` becomes ``(1, 1 - v, 1 - v)`` and
    ``v < 0`` becomes ``(1 - |v|, 1 - |v|, 1)``.

    Args:
        attributions: ``(N, H, W, C)`` or ``(N, H, W)`` numbers.
        percentile: The per-image percentile of ``|s|`` that maps to full colour.

    Returns:
        ``(N, H, W, 3)`` float32 RGB tensor in [0, 1].
    """
    signed, _ = _signed(attributions, check_percentile(percentile))
    return _tensor(_diverging(signed))


def colorize(maps: Any, colormap: str = defaults.HEATMAP_COLORMAP) -> tf.Tensor:
    """Maps values in [0, 1] to RGB through a colour map (values outside are clipped).

    Args:
        maps: ``(N, H, W)`` or ``(N, H, W, 1)`` numbers, e.g. a :func:`magnitude_map`.
        colormap: ``"inferno"``, ``"viridis"`` or ``"jet"``.

    Returns:
        ``(N, H, W, 3)`` float32 RGB tensor in [0, 1].
    """
    table = check_colormap(colormap)
    values = _numeric_array("maps", maps, (3, 4))
    if values.ndim == 4:
        if values.shape[-1] != 1:
            raise ValueError(f"`maps` must be (N, H, W) or (N, H, W, 1). Received: shape {values.shape}")
        values = values[..., 0]
    return _tensor(_colorize(values, table))


def rescale_images(images: Any) -> tf.Tensor:
    """Per-image min-max rescaling to [0, 1], grey images repeated to RGB.

    A constant image cannot be stretched and is clipped to [0, 1] instead.

    Args:
        images: ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)`` numbers of any range.

    Returns:
        ``(N, H, W, 3)`` float32 tensor in [0, 1].
    """
    return _tensor(_rescale(images))


def overlay(images: Any, attributions: Any, *, alpha: float = defaults.OVERLAY_ALPHA,
            percentile: float = defaults.HEATMAP_PERCENTILE,
            colormap: str = defaults.HEATMAP_COLORMAP) -> tf.Tensor:
    """The input images blended with their coloured magnitude maps.

    ``overlay = (1 - alpha) * rescale(image) + alpha * colorize(magnitude_map(attributions))``.
    A map whose height and width differ from the image's is resized bilinearly first.

    Args:
        images: ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)`` of any value range (each
            image is rescaled to [0, 1] on its own).
        attributions: ``(N, h, w, C)`` or ``(N, h, w)``, usually with ``(h, w) == (H, W)``.
        alpha: Weight of the coloured map in [0, 1].
        percentile: See :func:`magnitude_map`.
        colormap: See :func:`colorize`.

    Returns:
        ``(N, H, W, 3)`` float32 RGB tensor in [0, 1].
    """
    return _tensor(_overlay(images, attributions, alpha, percentile, colormap))


def upscale(images: Any, factor: int) -> tf.Tensor:
    """Nearest-neighbour enlargement by an integer ``factor`` (pixels become blocks).

    Args:
        images: ``(N, H, W, C)`` numbers.
        factor: Integer >= 1.

    Returns:
        ``(N, H * factor, W * factor, C)`` float32 tensor.
    """
    factor = validation.positive_int("factor", factor)
    values = _numeric_array("images", images, (4,))
    return _tensor(_enlarge(values, factor))


def display_factor(shape: Sequence[int], min_size: int) -> int:
    """The integer enlargement that makes an image's shorter side at least ``min_size`` pixels.

    Args:
        shape: ``(H, W, ...)`` of one image.
        min_size: Pixels >= 1; 1 keeps the image as it is.

    Returns:
        ``max(1, ceil(min_size / min(H, W)))``.
    """
    min_size = validation.positive_int("min_size", min_size)
    shorter = min(int(shape[0]), int(shape[1]))
    return max(1, -(-min_size // max(shorter, 1)))


def _enlarge(values: np.ndarray, factor: int) -> np.ndarray:
    """``(..., H, W, C)`` -> ``(..., H * factor, W * factor, C)``, pixels as blocks."""
    return np.repeat(np.repeat(values, factor, axis=-3), factor, axis=-2) if factor > 1 else values


def display_channels(images: Any) -> np.ndarray:
    """Images with any number of channels as grey or RGB, ready for the panels and strips.

    One and three channels are kept; four (RGBA) lose their alpha channel; any other count is
    averaged into one grey channel.

    Args:
        images: ``(..., H, W, C)`` numbers (one image or a batch).

    Returns:
        ``(..., H, W, 1)`` or ``(..., H, W, 3)`` numpy array of the same dtype (float64 when averaged).

    Raises:
        ValueError: If ``images`` has fewer than 3 dimensions.
    """
    images = np.asarray(images)
    if images.ndim < 3:
        raise ValueError(f"`images` must be (..., H, W, C). Received: shape {images.shape}")
    channels = images.shape[-1]
    if channels in (1, 3):
        return images
    if channels == 4:
        return images[..., :3]
    return images.mean(axis=-1, keepdims=True)
