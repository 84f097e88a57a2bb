"""The GradPath film strip as one uint8 picture, for the command line's report and the callbacks.

The strip shows the path of one input towards one reference (``return_path=True``) at fractions of
its steps (0, 25, 50, 75 and 100% by default, :func:`~tf_ig2.visualize.path_frames`): the first
frame is the input, the last the path's end point (GradCF). Below each frame, its change from the
input ``sum_c (frame - x)`` in red (up) and blue (down) on white, on one symmetric scale for the
strip, with a colour bar labelled in input units. The frames share one grey or colour scale: the
given ``value_range``, else the joint minimum and maximum of the frames. Small inputs are enlarged
by an integer factor (pixels as blocks) until their shorter side is at least ``min_size``.

Labels are drawn with OpenCV, as in :mod:`~tf_ig2.visualize.panel_layout`.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from tf_ig2 import defaults, validation
from tf_ig2.visualize import maps, markup
from tf_ig2.visualize.panel_layout import (
    _BACKGROUND,
    _FRAME,
    GAP,
    LINE,
    MARGIN,
    _colour_bar,
    _joint_display,
    _put,
    _text_width,
)
from tf_ig2.visualize.plots import path_frames


def _labels(steps: np.ndarray, total: int, end: str) -> List[str]:
    labels = []
    for position, step in enumerate(int(value) for value in steps):
        if step == 0:
            labels.append("input, step 0")
        elif step == total and position == len(steps) - 1:
            labels.append(f"{end}, step {step}")
        else:
            labels.append(f"step {step} ({round(100 * step / max(total, 1))}%)")
    return labels


def path_strip(explanation: Any, index: int = 0, reference: int = 0, *,
               fractions: Sequence[float] = defaults.PATH_FRACTIONS, title: Optional[str] = None,
               value_range: Any = None, min_size: int = defaults.PANEL_MIN_SIZE) -> np.ndarray:
    """The path of input ``index`` towards reference ``reference`` as a film strip picture.

    Args:
        explanation: An explanation of images with ``path`` ``(N, R, steps + 1, H, W[, C])``
            (``return_path=True``).
        index: The explained input.
        reference: The reference (its path).
        fractions: Values in [0, 1]: the frames are steps ``round(fraction * steps)``.
        title: Text above the strip (``\\n`` starts a new line; non-ASCII shows as ``?``);
            ``None`` for ``"#<index> path to GradCF of reference <reference>, <steps> steps"``.
        value_range: ``(low, high)`` of the input values for the frames' shared scale; ``None``
            for the frames' joint minimum and maximum.
        min_size: Enlarge (integer factor) until the shorter side is at least this many pixels.

    Returns:
        ``(H', W', 3)`` uint8 RGB on white: a row of frames, below it a row of their changes
        from the input and its colour bar.

    Raises:
        TypeError, ValueError: Without a path, for a path of something other than images, or on
            an index, reference, fraction or setting out of range.
    """
    steps, frames = path_frames(explanation, index, reference, fractions)
    frames = np.asarray(frames, np.float64)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4:
        raise ValueError(f"`explanation.path` must hold images (N, R, steps + 1, H, W[, C]) for a film strip. "
                         f"Received: points of shape {frames.shape[1:]}")
    if not np.all(np.isfinite(frames)):
        raise ValueError("`explanation.path` must hold finite values only. Received: NaN or inf")
    frames = maps.display_channels(frames)
    total = int(np.shape(explanation.path)[2]) - 1
    end = markup.end_label(explanation.method)
    factor = maps.display_factor(frames.shape[1:3], validation.positive_int("min_size", min_size))
    count, height, width, channels = frames.shape
    shown = _joint_display(frames.reshape(count * height, width, channels), None, value_range)[0]
    shown = shown.reshape(count, height, width, 3)
    change = (frames - frames[:1]).sum(axis=-1)
    scale = float(np.max(np.abs(change)))
    coloured = maps._diverging(change / scale if scale > 0 else change)
    tops = [np.round(maps._enlarge(picture, factor) * 255.0).astype(np.uint8) for picture in shown]
    bottoms = [np.round(maps._enlarge(picture, factor) * 255.0).astype(np.uint8) for picture in coloured]
    side_h, side_w = tops[0].shape[:2]
    labels = _labels(steps, total, end)
    widths = [max(side_w, _text_width(label)) for label in labels]
    bar = _colour_bar(side_h, scale)
    if title is None:
        title = f"#{index} path to {end} of reference {reference}, {total} steps"
    title_lines = str(title).split("\n")
    body = sum(widths) + GAP * (len(widths) - 1) + GAP // 2 + bar.shape[1]
    canvas_width = 2 * MARGIN + max([body] + [_text_width(line) for line in title_lines])
    top = MARGIN + LINE * len(title_lines)
    second = top + LINE + side_h + GAP
    canvas = np.full((second + LINE + side_h + MARGIN, canvas_width, 3), _BACKGROUND, np.uint8)
    for row, line in enumerate(title_lines):
        _put(canvas, line, MARGIN, MARGIN + LINE * row + 10)
    _put(canvas, "change from the input", MARGIN, second + 11)
    left = MARGIN
    for label, upper, lower, cell in zip(labels, tops, bottoms, widths):
        _put(canvas, label, left, top + 11)
        for row_top, picture in ((top + LINE, upper), (second + LINE, lower)):
            canvas[row_top - 1:row_top + side_h + 1, left - 1:left + side_w + 1] = _FRAME
            canvas[row_top:row_top + side_h, left:left + side_w] = picture
        left += cell + GAP
    start = left - GAP + GAP // 2
    canvas[second + LINE:second + LINE + side_h, start:start + bar.shape[1]] = bar
    return canvas
