"""The one tiler: pictures laid out row by row on one sheet, and the pictures the callbacks log.

Convention (the same everywhere): the sheet starts as ``background``; the pictures are placed row by
row, ``gap`` pixels apart; cells left over in the last row, and the gaps, stay ``background``. The
grid of :func:`grid` (tf-explain's ``grid_display`` layout) has no gap and a black background; the
callbacks' charts and strips are tiled 4 px apart on light grey.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, validation
from tf_ig2.visualize import maps

#: The callbacks' sheets: pixels between pictures, and the grey of the gaps and empty cells.
SHEET_GAP: int = 4
SHEET_BACKGROUND: int = 217


def to_uint8(pictures: Any) -> np.ndarray:
    """Values in [0, 1] (arrays or tensors) as uint8 ``round(255 * v)``, clipped."""
    return np.clip(np.round(np.asarray(pictures, np.float64) * 255.0), 0, 255).astype(np.uint8)


def tile(pictures: Any, columns: Optional[int] = None, *, gap: int = 0, background: float = 0) -> np.ndarray:
    """Tiles same-sized pictures row by row into one sheet (pure numpy, any dtype).

    Args:
        pictures: ``(k, H, W, C)`` array (k >= 1).
        columns: Pictures per row; ``None`` for ``ceil(sqrt(k))``.
        gap: Pixels between neighbouring pictures (>= 0).
        background: Value of the gaps and of the empty cells after the last picture (in the
            pictures' units: 0 is black, 255 white for uint8).

    Returns:
        ``(rows * H + (rows - 1) * gap, columns * W + (columns - 1) * gap, C)`` array of the
        pictures' dtype, ``rows = ceil(k / columns)``.

    Raises:
        TypeError, ValueError: If ``pictures`` is not a non-empty rank-4 array, or ``columns`` or
            ``gap`` is not a valid count.
    """
    pictures = np.asarray(pictures)
    if pictures.ndim != 4 or len(pictures) == 0:
        raise ValueError(f"`pictures` must be a non-empty (k, H, W, C) array. Received: shape {pictures.shape}")
    columns = validation.optional_positive_int("columns", columns)
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise ValueError(f"`gap` must be an int >= 0. Received: gap={gap!r}")
    count, height, width, channels = pictures.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    sheet = np.full((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, channels),
                    background, pictures.dtype)
    for index in range(count):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        sheet[top:top + height, left:left + width] = pictures[index]
    return sheet


def sheet(pictures: np.ndarray, columns: Optional[int] = None) -> np.ndarray:
    """The callbacks' sheet of uint8 charts or strips: :func:`tile` 4 px apart on light grey."""
    return tile(pictures, columns, gap=SHEET_GAP, background=SHEET_BACKGROUND)


def _grey_to_rgb(values: np.ndarray) -> np.ndarray:
    if values.ndim == 3:
        values = values[..., None]
    if values.shape[-1] not in (1, 3):
        raise ValueError(f"`images` must have 1 or 3 channels. Received: shape {values.shape}")
    return np.repeat(values, 3, axis=-1) if values.shape[-1] == 1 else values


def grid(images: Any, columns: Optional[int] = None) -> tf.Tensor:
    """Tiles a batch of images into one image, row by row (tf-explain's ``grid_display`` layout).

    Empty cells at the end of the last row are black (:func:`tile` with no gap, background 0).

    Args:
        images: ``(N, H, W, 3)`` (or ``(N, H, W, 1)`` / ``(N, H, W)``, shown grey) numbers.
        columns: Images per row; ``None`` for ``ceil(sqrt(N))``.

    Returns:
        ``(rows * H, columns * W, 3)`` float32 tensor with ``rows = ceil(N / columns)``.
    """
    columns = validation.optional_positive_int("columns", columns)
    values = _grey_to_rgb(maps._numeric_array("images", images, (3, 4)))
    return maps._tensor(tile(values, columns))


def display_images(images: Any, attributions: Any, *, alpha: float = defaults.OVERLAY_ALPHA,
                   percentile: float = defaults.HEATMAP_PERCENTILE, colormap: str = defaults.HEATMAP_COLORMAP,
                   factor: int = 1, columns: Optional[int] = None,
                   labels: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Overlays enlarged by ``factor`` and their grid, as uint8 RGB arrays ready to encode.

    The same pictures as :func:`~tf_ig2.visualize.overlay`, :func:`~tf_ig2.visualize.upscale`
    and :func:`grid`, without the round trips through tensors (for callbacks, which log them every
    few epochs).

    Args:
        labels: One label per image (e.g. ``"#0"``): each overlay then gets it above and, beside
            it, a ``colormap`` bar from 0 to the ``sum_c |A|`` its brightest colour stands for
            (:func:`~tf_ig2.visualize.panel_layout.labelled`).

    Returns:
        ``(overlays (N, H', W', 3), grid (rows * H', columns * W' + gaps, 3))``, both uint8; without
        ``labels`` ``H' = H * factor`` and ``W' = W * factor``.
    """
    factor = validation.positive_int("factor", factor)
    columns = validation.optional_positive_int("columns", columns)
    overlays = to_uint8(maps._enlarge(maps._overlay(images, attributions, alpha, percentile, colormap), factor))
    if labels is None:
        return overlays, tile(overlays, columns)
    from tf_ig2.visualize.panel_layout import labelled

    if len(labels) != len(overlays):
        raise ValueError(f"`labels` must hold one label per image ({len(overlays)}). Received: {len(labels)}")
    scales = maps._magnitude_scales(attributions, percentile)
    drawn = [labelled(picture, str(label), scale, colormap) for picture, label, scale in zip(overlays, labels, scales)]
    height, width = max(picture.shape[0] for picture in drawn), max(picture.shape[1] for picture in drawn)
    overlays = np.stack([np.pad(picture, ((0, height - picture.shape[0]), (0, width - picture.shape[1]), (0, 0)),
                                constant_values=255) for picture in drawn])
    return overlays, tile(overlays, columns, gap=4, background=255)
