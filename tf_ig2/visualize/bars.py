"""Bar charts of per-feature attributions (tabular inputs), drawn with OpenCV into uint8 arrays."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import tensorflow as tf


def feature_bars(names: Sequence[str], attributions: Any, *, top: Optional[int] = None,
                 width: int = 480, row_height: int = 20, font_scale: float = 0.4) -> tf.Tensor:
    """A horizontal bar chart of per-feature attributions (tabular inputs), largest first.

    Args:
        names: F feature names.
        attributions: ``(F,)`` attributions of one input.
        top: Show only the ``top`` features of largest magnitude (``None``: all).
        width: Image width in pixels.
        row_height: Pixels per bar.
        font_scale: OpenCV font scale of the labels.

    Returns:
        ``(rows * row_height, width, 3)`` float32 image in [0, 1]: red bars right of the axis for
        positive values, blue bars left of it for negative ones.
    """
    import cv2

    values = np.asarray(attributions, np.float64).reshape(-1)
    if len(names) != len(values):
        raise ValueError(f"`names` and `attributions` must have the same length. Received: "
                         f"{len(names)} names and {len(values)} attributions")
    order = np.argsort(-np.abs(values), kind="stable")[: top or len(values)]
    label_width = width * 2 // 5
    axis = label_width + (width - label_width) // 2
    half = (width - label_width) // 2 - 4
    scale = np.abs(values[order]).max() if len(order) else 0.0
    chart = np.full((max(len(order), 1) * row_height, width, 3), 255, np.uint8)  # OpenCV draws text on uint8
    chart[:, axis:axis + 1] = 77
    font = cv2.FONT_HERSHEY_SIMPLEX
    for row, index in enumerate(order):
        top_edge = row * row_height
        length = int(round(half * abs(values[index]) / scale)) if scale > 0 else 0
        colour = (217, 51, 51) if values[index] >= 0 else (51, 89, 217)
        if values[index] >= 0:
            chart[top_edge + 3:top_edge + row_height - 3, axis + 1:axis + 1 + length] = colour
        else:
            chart[top_edge + 3:top_edge + row_height - 3, axis - length:axis] = colour
        label = str(names[index])[:28]
        cv2.putText(chart, label, (4, top_edge + row_height - 6), font, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return tf.constant(chart.astype(np.float32) / 255.0)
