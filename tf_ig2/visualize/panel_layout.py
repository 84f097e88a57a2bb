"""Panels: one picture per explained image, input | GradCF | signed map with its colour bar | magnitude on grey.

A panel is a pure uint8 ``(H, W, 3)`` RGB array (OpenCV draws the labels), the same picture for the
TensorBoard callback (``<name>/panels``), the command line and HTML reports (wrap it with
:func:`~tf_ig2.visualize.markup.html_image`). Small inputs are enlarged by an integer factor
(pixels as blocks) until their shorter side is at least ``min_size`` pixels.

- *input* and *GradCF* (or the baseline, for IG and Guided IG) share one grey or colour scale: the
  given ``value_range``, else the joint minimum and maximum of the two, so that what the path
  changed is visible;
- *attribution*: ``sum_c A`` in red (positive) and blue (negative) on white, scaled symmetrically
  by its ``percentile`` of ``|sum_c A|`` (:func:`~tf_ig2.visualize.diverging_map`); the colour bar
  beside it is labelled with that scale in attribution units;
- *|attribution|*: the magnitude ``sum_c |A|`` in ``colormap`` blended over the grey input, scaled by
  its own ``percentile``; its colour bar runs from 0 to that scale.
"""

from __future__ import annotations

import functools
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from tf_ig2 import defaults, validation
from tf_ig2.explanation import require_one_target
from tf_ig2.visualize import maps, markup

#: Layout in pixels: margin around and gap between the pictures, the colour bar's width, the
#: label line height and the OpenCV font scale.
MARGIN, GAP, BAR_WIDTH, LINE, FONT_SCALE = 6, 6, 10, 15, 0.4
_BACKGROUND, _TEXT, _FRAME = 255, (0, 0, 0), (170, 170, 170)


def _ascii(text: str) -> str:
    return str(text).encode("ascii", "replace").decode("ascii")


def _text_width(text: str) -> int:
    import cv2

    return cv2.getTextSize(_ascii(text), cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, 1)[0][0]


def _put(canvas: np.ndarray, text: str, left: int, baseline: int) -> None:
    import cv2

    cv2.putText(canvas, _ascii(text), (int(left), int(baseline)), cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, _TEXT, 1,
                cv2.LINE_AA)


def _image_argument(name: str, value: Any) -> np.ndarray:
    """One ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` image as float64 ``(H, W, C)``."""
    array = maps._numeric_array(name, np.asarray(value)[None] if np.ndim(value) in (2, 3) else value, (3, 4))[0]
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] not in (1, 3):
        raise ValueError(f"`{name}` must be one image (H, W), (H, W, 1) or (H, W, 3). Received: shape "
                         f"{np.shape(value)}")
    return array


def _joint_display(image: np.ndarray, other: Optional[np.ndarray], value_range: Any) -> List[np.ndarray]:
    """The images as RGB in [0, 1] on one scale: ``value_range`` or their joint minimum and maximum."""
    pictures = [image] if other is None else [image, other]
    if value_range is not None:
        bounds = validation.value_range(value_range)
        low, high = (float(np.min(bound)) for bound in bounds)
    else:
        low, high = min(float(p.min()) for p in pictures), max(float(p.max()) for p in pictures)
    span = high - low
    shown = [np.clip((p - low) / span, 0.0, 1.0) if span > 0 else np.clip(p, 0.0, 1.0) for p in pictures]
    return [np.repeat(p, 3, axis=-1) if p.shape[-1] == 1 else p for p in shown]


@functools.lru_cache(maxsize=64)
def _bar_colours(height: int, colormap: Optional[str]) -> np.ndarray:
    """The framed ``(height, BAR_WIDTH, 3)`` uint8 colours of a bar (red-white-blue, or ``colormap`` from 0 up)."""
    if colormap is None:
        colours = maps._diverging(np.linspace(1.0, -1.0, height))
    else:
        colours = maps._colorize(np.linspace(1.0, 0.0, height), maps.check_colormap(colormap))
    bar = np.repeat(np.round(colours[:, None] * 255.0).astype(np.uint8), BAR_WIDTH, axis=1)
    bar[[0, -1]] = _FRAME
    bar[:, [0, BAR_WIDTH - 1]] = _FRAME
    bar.setflags(write=False)
    return bar


def _colour_bar(height: int, scale: float, colormap: Optional[str] = None) -> np.ndarray:
    """A vertical colour bar ``(height, W, 3)`` uint8 with its labels.

    Without ``colormap``: red-white-blue, labelled ``+scale``, ``0`` and ``-scale`` (signed maps);
    with it: that map from 0 (bottom) to ``scale`` (top), labelled ``scale`` and ``0`` (magnitudes).
    """
    labels = [f"+{scale:.2g}", "0", f"-{scale:.2g}"] if colormap is None else [f"{scale:.2g}", "", "0"]
    width = BAR_WIDTH + 4 + max(_text_width(label) for label in labels)
    bar = np.full((height, width, 3), _BACKGROUND, np.uint8)
    bar[:, :BAR_WIDTH] = _bar_colours(height, colormap)
    for label, baseline in zip(labels, (9, height // 2 + 4, height - 2)):
        _put(bar, label, BAR_WIDTH + 3, baseline)
    return bar


def labelled(picture: np.ndarray, label: str, scale: float, colormap: str) -> np.ndarray:
    """``picture`` ``(H, W, 3)`` uint8 with ``label`` above it and a ``colormap`` bar from 0 to ``scale`` beside it.

    For magnitude overlays: the bar says which colour is which ``sum_c |A|``, in attribution units.

    Returns:
        ``(H + LINE, W + GAP // 2 + bar width, 3)`` uint8 on white; the picture keeps its pixels.
    """
    height, width = picture.shape[:2]
    bar = _colour_bar(height, float(scale), colormap)
    canvas = np.full((LINE + height, max(width + GAP // 2 + bar.shape[1], _text_width(label)), 3), _BACKGROUND,
                     np.uint8)
    _put(canvas, label, 0, 11)
    canvas[LINE:, :width] = picture
    canvas[LINE:, width + GAP // 2:width + GAP // 2 + bar.shape[1]] = bar
    return canvas


def panel(image: Any, attribution: Any, counterfactual: Any = None, *, title: Optional[str] = None,
          counterfactual_label: str = "GradCF", magnitude: bool = True,
          percentile: float = defaults.HEATMAP_PERCENTILE, colormap: str = defaults.HEATMAP_COLORMAP,
          alpha: float = defaults.OVERLAY_ALPHA, value_range: Any = None,
          min_size: int = defaults.PANEL_MIN_SIZE) -> np.ndarray:
    """One explained image as a labelled panel: input | counterfactual | signed map + colour bar | magnitude.

    Args:
        image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, the explained input.
        attribution: ``(H, W)`` or ``(H, W, C)``, its attributions.
        counterfactual: The path's end point shaped like ``image`` (GradCF, or the baseline;
            average over references first); ``None`` leaves that column out.
        title: Text above the pictures (``\\n`` starts a new line; non-ASCII shows as ``?``).
        counterfactual_label: The counterfactual column's label (``"baseline"`` for IG).
        magnitude: Whether to add the magnitude-on-grey column.
        percentile: Per-image percentile that saturates the signed and magnitude maps.
        colormap: Colour map of the magnitude (``"inferno"``, ``"viridis"``, ``"jet"``).
        alpha: Weight of the magnitude over the grey input.
        value_range: ``(low, high)`` of the input's values for the shared input/counterfactual
            scale; ``None`` for their joint minimum and maximum.
        min_size: Enlarge (integer factor) until the shorter side is at least this many pixels.

    Returns:
        ``(H', W', 3)`` uint8 RGB on white.

    Raises:
        TypeError, ValueError: On a malformed image, attribution, counterfactual or setting.
    """
    image = _image_argument("image", image)
    attribution = maps._numeric_array("attribution", np.asarray(attribution)[None], (3, 4))
    if attribution.shape[1:3] != image.shape[:2]:
        raise ValueError(f"`attribution` must cover the image's {image.shape[:2]} pixels. Received: shape "
                         f"{attribution.shape[1:]}")
    other = None
    if counterfactual is not None:
        other = _image_argument("counterfactual", counterfactual)
        if other.shape != image.shape:
            raise ValueError(f"`counterfactual` must be shaped like `image` {image.shape}. Received: shape "
                             f"{other.shape}")
    percentile = maps.check_percentile(percentile)
    factor = maps.display_factor(image.shape, min_size)
    columns: List[Tuple[str, np.ndarray]] = []
    shown = _joint_display(image, other, value_range)
    columns.append(("input", shown[0]))
    if other is not None:
        columns.append((counterfactual_label, shown[1]))
    signed, scales = maps._signed(attribution, percentile)
    columns.append(("attribution", maps._diverging(signed[0])))
    if magnitude:
        columns.append(("|attribution| on grey",
                        maps._overlay(image[None], attribution, alpha, percentile, colormap, grey=True)[0]))
    pictures = [(label, np.round(maps._enlarge(picture, factor) * 255.0).astype(np.uint8))
                for label, picture in columns]
    height = pictures[0][1].shape[0]
    bars = {"attribution": _colour_bar(height, float(scales[0]))}
    if magnitude:
        bars["|attribution| on grey"] = _colour_bar(height, float(maps._magnitude_scales(attribution, percentile)[0]),
                                                    colormap)
    widths = [max(picture.shape[1], _text_width(label)) + (GAP // 2 + bars[label].shape[1] if label in bars else 0)
              for label, picture in pictures]
    title_lines = [] if title is None else str(title).split("\n")
    body_width = sum(widths) + GAP * (len(widths) - 1)
    width = 2 * MARGIN + max([body_width] + [_text_width(line) for line in title_lines])
    top = MARGIN + LINE * len(title_lines)
    canvas = np.full((top + LINE + height + MARGIN, width, 3), _BACKGROUND, np.uint8)
    for row, line in enumerate(title_lines):
        _put(canvas, line, MARGIN, MARGIN + LINE * row + 10)
    left = MARGIN
    for (label, picture), cell in zip(pictures, widths):
        _put(canvas, label, left, top + 11)
        bottom, right = top + LINE + height, left + picture.shape[1]
        canvas[top + LINE - 1:bottom + 1, left - 1:right + 1] = _FRAME  # a 1 px frame: white maps stay visible
        canvas[top + LINE:bottom, left:right] = picture
        if label in bars:
            start = left + picture.shape[1] + GAP // 2
            canvas[top + LINE:top + LINE + height, start:start + bars[label].shape[1]] = bars[label]
        left += cell + GAP
    return canvas


def _single(value: Any, what: str) -> np.ndarray:
    if isinstance(value, (list, tuple, dict)):
        raise TypeError(f"{what} of a model with several inputs cannot be drawn as one panel; explain one "
                        f"input at a time. Received: a {type(value).__name__}")
    return np.asarray(value)


def panels(images: Any, attributions: Any, counterfactuals: Any = None, *,
           titles: Optional[Sequence[Optional[str]]] = None, **options: Any) -> np.ndarray:
    """:func:`panel` of every image, padded with white on the right and below to the largest.

    Args:
        images: ``(N, H, W[, C])`` inputs.
        attributions: ``(N, H, W[, C])`` attributions.
        counterfactuals: ``(N, H, W[, C])`` (one per input), ``(N, R, H, W[, C])`` (averaged over
            the R references), or ``None``.
        titles: N titles, or ``None``.
        **options: :func:`panel`'s settings.

    Returns:
        ``(N, H', W', 3)`` uint8.
    """
    images, attributions = np.asarray(images), np.asarray(attributions)
    if images.ndim not in (3, 4) or len(attributions) != len(images):
        raise ValueError(f"`images` (N, H, W[, C]) and `attributions` must hold the same number of items. Received: "
                         f"shapes {images.shape} and {attributions.shape}")
    if counterfactuals is not None:
        counterfactuals = np.asarray(counterfactuals)
        if counterfactuals.ndim == images.ndim + 1:
            counterfactuals = counterfactuals.mean(axis=1)
        if counterfactuals.shape != images.shape:
            raise ValueError(f"`counterfactuals` must be shaped like `images` {images.shape} (or have a reference "
                             f"axis after the first). Received: shape {counterfactuals.shape}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"`titles` must hold one title per image. Received: {len(titles)} titles for "
                         f"{len(images)} images")
    drawn = [panel(images[index], attributions[index], None if counterfactuals is None else counterfactuals[index],
                   title=None if titles is None else titles[index], **options) for index in range(len(images))]
    height, width = max(p.shape[0] for p in drawn), max(p.shape[1] for p in drawn)
    return np.stack([np.pad(p, ((0, height - p.shape[0]), (0, width - p.shape[1]), (0, 0)),
                            constant_values=_BACKGROUND) for p in drawn])


def explanation_panels(explanation: Any, inputs: Any, *, class_names: Optional[Sequence[str]] = None,
                       max_items: Optional[int] = None, **options: Any) -> np.ndarray:
    """The panels of an image explanation, titled with the class, scores and completeness gap.

    The function for the command line and the demo: pass what ``explain`` was given and returned.

    Args:
        explanation: An :class:`~tf_ig2.Explanation` of ``(N, H, W[, C])`` images.
        inputs: The ``(N, H, W[, C])`` explained images.
        class_names: Names of the classes, indexed by target.
        max_items: Draw only the first ``max_items`` inputs; ``None`` for all.
        **options: :func:`panel`'s settings (``magnitude``, ``percentile``, ``colormap``, ``alpha``,
            ``value_range``, ``min_size``).

    Returns:
        ``(n, H', W', 3)`` uint8 panels, one per input.
    """
    require_one_target(explanation, "explanation_panels")
    attributions = _single(explanation.attributions, "The attributions")
    counterfactuals = _single(explanation.counterfactuals, "The counterfactuals")
    inputs = np.asarray(_single(inputs, "The inputs"))
    if inputs.shape[0] != attributions.shape[0]:
        raise ValueError(f"`inputs` must be the {attributions.shape[0]} explained inputs. Received: shape "
                         f"{inputs.shape}")
    count = len(inputs) if max_items is None else min(len(inputs), validation.positive_int("max_items", max_items))
    titles = ["\n".join(markup.caption(explanation, index, class_names)) for index in range(count)]
    references = counterfactuals.shape[1] if counterfactuals.ndim == inputs.ndim + 1 else 1
    label = markup.end_column_label(explanation.method, references)
    return panels(inputs[:count], attributions[:count], counterfactuals[:count], titles=titles,
                  counterfactual_label=label, **options)
