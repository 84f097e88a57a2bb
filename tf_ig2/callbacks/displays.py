"""How the callbacks show each kind of input in TensorBoard: one small display class per kind.

A display is built once, in the callback's constructor (where it validates its own settings), and
turns each epoch's :class:`~tf_ig2.Explanation` into uint8 pictures ``{tag: (k, H, W, 3)}`` and
Markdown texts ``{tag: str}``; the callback writes them. The pictures come from
:mod:`tf_ig2.visualize`.

- :class:`ImageDisplay` (``(N, H, W[, C])``): ``<name>/panels``, one panel per input (input | GradCF |
  signed map with colour bar | magnitude on grey); ``<name>/overlay``, the input blended with its
  magnitude map; ``<name>/grid``, the overlays tiled; with the callback's ``path_strip``,
  ``<name>/path``, the GradPath film strip of the first input and reference;
- :class:`TabularDisplay` (``(N, F)``): ``<name>/bars``, one bar chart per row; ``<name>/grid``;
- :class:`TokenDisplay` (``(N, T)`` token ids): ``<name>/tokens``, one heat strip per sentence,
  ``<name>/grid``, and ``<name>/text``, the tokens and their values as Markdown tables.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_ig2 import defaults, validation, visualize
from tf_ig2.explanation import Explanation

#: What each tag shows, by its last component: TensorBoard's description of the summary.
DESCRIPTIONS: Dict[str, str] = {
    "panels": "One panel per logged input: the input; its GradCF (IG²) or baseline, averaged over the references; "
              "the signed attribution (red raises the explained score, blue lowers it; colour bar in attribution "
              "units); the attribution magnitude over the grey input (with its colour bar).",
    "overlay": "Each logged input blended with its attribution magnitude (sum over channels of |attribution|, "
               "brighter is larger, scaled per image to its 99th percentile).",
    "grid": "All logged inputs' pictures of this run tiled in one image, in input order (row by row).",
    "path": "The GradPath of the first input towards its first reference, at 0, 25, 50, 75 and 100% of its steps: "
            "the input becomes GradCF.",
    "bars": "One bar chart per logged row: each feature's attribution (red raises the explained score, blue "
            "lowers it).",
    "tokens": "One heat strip per logged sentence: each token's attribution (red raises the explained score, "
              "blue lowers it, on one symmetric scale per sentence).",
    "text": "The logged sentences' tokens with their attributions, as Markdown tables.",
    "completeness_delta": "Mean over the logged inputs of |sum of attributions - (f(x) - f(end of path))|.",
    "relative_completeness_delta": "Median over the logged inputs of |delta| / |f(x) - f(end of path)| (inputs "
                                   "with no score change left out; NaN when none changes); above 0.1 the "
                                   "attributions do not add up.",
    "target_score": "Mean over the logged inputs of the explained score f(x) (a logit).",
    "representation_distance": "Mean distance between the representation at GradCF and at its reference: "
                               "how close the GradPath got.",
}


#: The last component of a tag logged once per target (see tf_ig2.callbacks.targets): its kind and number.
TARGET_TAG = re.compile(r"(class|top|target)_(\d+)")


def describe(tag: str) -> str:
    """TensorBoard's description of ``tag`` (``""`` for an unknown one).

    A tag logged per target, ``<name>/<kind>/class_3``, ``.../top_2`` or ``.../target_1``, is
    described by its kind, then which target it shows.
    """
    parts = tag.split("/")
    target = TARGET_TAG.fullmatch(parts[-1]) if len(parts) > 2 else None
    if target is None:
        return DESCRIPTIONS.get(parts[-1], "")
    description = DESCRIPTIONS.get(parts[-2], "")
    if not description:
        return ""
    kind, number = target.group(1), int(target.group(2))
    which = {"class": f"class {number} of every input",
             "top": f"each input's class ranked {number} by the model at this epoch (1: the highest score)",
             "target": f"column {number} of `class_index` (a class per input)"}[kind]
    return f"{description} Explained class: {which}."


class Display:
    """Pictures of one kind of input; subclasses implement :meth:`images` (and :meth:`texts`).

    Args:
        name: The tag prefix.
        inputs: The logged inputs ``(n, ...)``.
        columns: Pictures per row of ``<name>/grid``; ``None`` for the kind's default.
    """

    kind = ""

    def __init__(self, name: str, inputs: np.ndarray, columns: Optional[int]):
        self.name, self.inputs = name, inputs
        self.columns = validation.optional_positive_int("columns", columns)

    def images(self, explanation: Explanation) -> Dict[str, np.ndarray]:
        """``{tag: (k, H, W, 3) uint8}`` for one explanation."""
        raise NotImplementedError

    def texts(self, explanation: Explanation) -> Dict[str, str]:
        """``{tag: Markdown}`` for one explanation (none by default)."""
        return {}

    def factor(self) -> int:
        """The integer enlargement of the logged pictures (1 unless they are small images)."""
        return 1

    def _grid_columns(self, count: int) -> int:
        return self.columns or math.ceil(math.sqrt(count))


class ImageDisplay(Display):
    """Images ``(n, H, W[, C])``: panels, overlays and their grid, enlarged to ``min_display_size``.

    Args:
        alpha, percentile, colormap: The overlay's weight, saturating percentile and colour map.
        min_display_size: Small images are enlarged (integer factor) until their shorter side is
            at least this many pixels.
        value_range: The inputs' ``(low, high)``, for the shared input/GradCF scale of the panels.
    """

    kind = "images"

    def __init__(self, name: str, inputs: np.ndarray, columns: Optional[int], *, alpha: float, percentile: float,
                 colormap: str, min_display_size: int, value_range: Any = None):
        super().__init__(name, inputs, columns)
        self.alpha = validation.fraction("alpha", alpha)
        self.percentile = visualize.check_percentile(percentile)
        visualize.check_colormap(colormap)
        self.colormap = colormap
        self.min_display_size = validation.positive_int("min_display_size", min_display_size)
        self.value_range = value_range

    def factor(self) -> int:
        return visualize.display_factor(self.inputs.shape[1:3], self.min_display_size)

    def images(self, explanation: Explanation) -> Dict[str, np.ndarray]:
        overlays, tiles = visualize.display_images(
            self.inputs, explanation.attributions, alpha=self.alpha, percentile=self.percentile,
            colormap=self.colormap, factor=self.factor(), columns=self.columns,
            labels=[f"#{index}" for index in range(len(self.inputs))])
        panels = visualize.explanation_panels(
            explanation, self.inputs, alpha=self.alpha, percentile=self.percentile, colormap=self.colormap,
            value_range=self.value_range, min_size=self.min_display_size)
        return {f"{self.name}/panels": panels, f"{self.name}/overlay": overlays, f"{self.name}/grid": tiles[None]}

    def path_images(self, explanation: Explanation) -> Dict[str, np.ndarray]:
        """``{"<name>/path": (1, H, W, 3) uint8}``: the film strip of input 0 and reference 0 of ``explanation``.

        Args:
            explanation: An explanation with ``path`` (``return_path=True``).
        """
        strip = visualize.path_strip(explanation, 0, 0, value_range=self.value_range, min_size=self.min_display_size)
        return {f"{self.name}/path": strip[None]}


class TabularDisplay(Display):
    """Tabular rows ``(n, F)``: one bar chart of the feature attributions per row.

    Args:
        feature_names: F names; ``None`` for ``"x0"``, ..., ``"x{F-1}"``.
        top: Show the ``top`` features of largest magnitude; ``None`` for all.
    """

    kind = "tabular"

    def __init__(self, name: str, inputs: np.ndarray, columns: Optional[int], *,
                 feature_names: Optional[Sequence[str]], top: Optional[int]):
        super().__init__(name, inputs, columns)
        self.feature_names = self._check_feature_names(feature_names, inputs.shape[1])
        self.top = validation.optional_positive_int("top", top)

    @staticmethod
    def _check_feature_names(feature_names: Any, count: int) -> List[str]:
        if feature_names is None:
            return [f"x{index}" for index in range(count)]
        if isinstance(feature_names, (str, bytes)) or not isinstance(feature_names, (Sequence, np.ndarray)):
            raise TypeError("`feature_names` must be a sequence of F names (one per column). "
                            f"Received: {validation.describe(feature_names)}")
        if len(feature_names) != count:
            raise ValueError(f"`feature_names` must name each of the {count} features of `validation_data`. "
                             f"Received: {len(feature_names)} names")
        return [str(item) for item in feature_names]

    def images(self, explanation: Explanation) -> Dict[str, np.ndarray]:
        charts = np.stack([visualize.to_uint8(visualize.feature_bars(self.feature_names, row, top=self.top))
                           for row in np.asarray(explanation.attributions)])
        return {f"{self.name}/bars": charts,
                f"{self.name}/grid": visualize.tiles.sheet(charts, self._grid_columns(len(charts)))[None]}


class TokenDisplay(Display):
    """Token ids ``(n, T)``: heat strips and Markdown tables of the per-token attributions.

    Args:
        vocabulary: ``vocabulary[id]`` is the token (a sequence or ``{id: token}``); ``None``
            shows the ids.
        padding_id: The id of padding positions, which are not shown; ``None`` shows all.

    Raises:
        TypeError: On a malformed vocabulary. ValueError: If it lacks a shown id.
    """

    kind = "tokens"

    def __init__(self, name: str, inputs: np.ndarray, columns: Optional[int], *, vocabulary: Any,
                 padding_id: Optional[int]):
        super().__init__(name, inputs, columns)
        self.vocabulary = visualize.check_vocabulary(vocabulary)
        self.padding_id = padding_id
        for row in range(len(inputs)):
            self.token_texts(row)  # every shown id has a token

    def token_texts(self, index: int) -> Tuple[List[str], np.ndarray]:
        """The shown tokens of logged sentence ``index`` and their positions (padding left out)."""
        return visualize.token_texts(self.inputs[index], self.vocabulary, self.padding_id, index)

    def token_strips(self, attributions: Any) -> np.ndarray:
        """``(n, H, W, 3)`` uint8 heat strips of the logged sentences, padded on the right with white."""
        attributions = np.asarray(attributions)
        strips = []
        for index in range(len(self.inputs)):
            tokens, positions = self.token_texts(index)
            strips.append(visualize.to_uint8(visualize.token_strip(tokens, attributions[index][positions])))
        width = max(strip.shape[1] for strip in strips)
        return np.stack([np.pad(strip, ((0, 0), (0, width - strip.shape[1]), (0, 0)), constant_values=255)
                         for strip in strips])

    def images(self, explanation: Explanation) -> Dict[str, np.ndarray]:
        strips = self.token_strips(explanation.attributions)
        return {f"{self.name}/tokens": strips,
                f"{self.name}/grid": visualize.tiles.sheet(strips, self.columns or 1)[None]}

    def texts(self, explanation: Explanation) -> Dict[str, str]:
        """One section per sentence: index, class, scores and delta, then its token table."""
        attributions = np.asarray(explanation.attributions)
        sections = []
        for index in range(len(self.inputs)):
            tokens, positions = self.token_texts(index)
            target = "" if explanation.targets is None else f"class {int(explanation.targets[index])}, "
            sections.append(
                f"**Sentence {index}**: {target}score {float(explanation.target_scores[index]):.4g}, "
                f"counterfactual score {float(explanation.counterfactual_scores[index]):.4g}, "
                f"completeness delta {float(explanation.delta[index]):+.3g}\n\n"
                + visualize.token_markdown(tokens, attributions[index][positions],
                                           emphasis=defaults.CALLBACK_TEXT_EMPHASIS))
        return {f"{self.name}/text": "\n\n".join(sections)}


def make_display(kind: str, name: str, inputs: np.ndarray, *, columns: Optional[int] = None,
                 alpha: float = defaults.OVERLAY_ALPHA, percentile: float = defaults.HEATMAP_PERCENTILE,
                 colormap: str = defaults.HEATMAP_COLORMAP,
                 min_display_size: int = defaults.CALLBACK_MIN_DISPLAY_SIZE, value_range: Any = None,
                 feature_names: Optional[Sequence[str]] = None, top: Optional[int] = None, vocabulary: Any = None,
                 padding_id: Optional[int] = defaults.PADDING_ID) -> Display:
    """The display of ``kind`` (``"images"``, ``"tabular"``, ``"tokens"``), its settings validated.

    The picture settings (``alpha``, ``percentile``, ``colormap``, ``min_display_size``) are
    checked whatever the kind, so that a wrong one raises before it matters.
    """
    validation.fraction("alpha", alpha)
    visualize.check_percentile(percentile)
    visualize.check_colormap(colormap)
    validation.positive_int("min_display_size", min_display_size)
    if kind == "images":
        return ImageDisplay(name, inputs, columns, alpha=alpha, percentile=percentile, colormap=colormap,
                            min_display_size=min_display_size, value_range=value_range)
    if kind == "tabular":
        return TabularDisplay(name, inputs, columns, feature_names=feature_names, top=top)
    if kind == "tokens":
        return TokenDisplay(name, inputs, columns, vocabulary=vocabulary, padding_id=padding_id)
    raise ValueError(f"`input_kind` must be 'images', 'tabular' or 'tokens'. Received: input_kind={kind!r}")
