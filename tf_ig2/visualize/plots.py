"""Matplotlib figures of explanations (optional: ``pip install "tf-ig2[plot]"``).

:func:`plot` draws one row per explained input (one row per target of each input, for an explanation
of several targets per input), titled with its class, ``f(x)``, the counterfactual's score, ``delta``
and the relative delta:

- images ``(N, H, W[, C])``: the input; GradCF averaged over the references (the baseline for IG
  and Guided IG); the signed attribution ``sum_c A`` in a red-white-blue map whose colour limits are
  symmetric about zero (``+-`` the per-image ``percentile`` of ``|sum_c A|``), with a colour bar;
  the magnitude map over the grey input;
- tabular rows ``(N, F)``: horizontal bars of the features sorted by ``|attribution|``;
- token ids ``(N, T)``: the tokens (through ``vocabulary``) on backgrounds coloured by attribution.

:func:`plot_path` draws the GradPath of one input and one reference as a film strip.

The figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global state): a notebook
shows the returned figure, ``figure.savefig(path)`` writes it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from tf_ig2 import defaults, validation
from tf_ig2.explanation import require_one_target
from tf_ig2.visualize import maps, markup
from tf_ig2.visualize import tokens as token_pictures
from tf_ig2.visualize.panel_layout import _joint_display, _single

#: The diverging colour map of signed attributions (blue, white, red: the same as the panels).
SIGNED_CMAP = "bwr"

#: Figure size per cell, in inches, and the resolution.
CELL_INCHES, DPI = 2.2, 100

Vocabulary = Union[None, Sequence[str], Mapping[int, str]]


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError('tf_ig2.plot and tf_ig2.plot_path draw with matplotlib, which is not installed; '
                          'install the extra: pip install "tf-ig2[plot]"') from error
    return Figure


def _kind(inputs: np.ndarray, input_kind: Optional[str], vocabulary: Vocabulary) -> str:
    if input_kind is not None:
        if input_kind not in ("images", "tabular", "tokens"):
            raise ValueError("`input_kind` must be None, 'images', 'tabular' or 'tokens'. "
                             f"Received: input_kind={input_kind!r}")
        return input_kind
    if inputs.ndim in (3, 4):
        return "images"
    if inputs.ndim == 2:
        integer = np.issubdtype(inputs.dtype, np.integer)
        return "tokens" if vocabulary is not None or integer else "tabular"
    raise ValueError("`inputs` must be images (N, H, W[, C]), tabular rows (N, F) or token ids (N, T). "
                     f"Received: shape {inputs.shape}")


def _rows(count: int, max_rows: Any) -> int:
    return min(count, validation.positive_int("max_rows", max_rows))


def plot(explanation: Any, inputs: Any, *, class_names: Optional[Sequence[Any]] = None,
         max_rows: int = defaults.PLOT_MAX_ROWS, input_kind: Optional[str] = None,
         feature_names: Optional[Sequence[str]] = None, top: Optional[int] = None,
         vocabulary: Vocabulary = None, padding_id: Optional[int] = defaults.PADDING_ID,
         percentile: float = defaults.HEATMAP_PERCENTILE, colormap: str = defaults.HEATMAP_COLORMAP,
         alpha: float = defaults.OVERLAY_ALPHA, value_range: Any = None,
         min_size: int = defaults.PANEL_MIN_SIZE) -> Any:
    """A matplotlib figure of an explanation, one row per input, or one row per target of each input.

    An explanation of T targets per input (``explain(..., targets=(N, T))`` or ``top_k``) is drawn
    with T rows per input, in the order of its targets, each titled ``#n target t/T: class c``.

    Args:
        explanation: The :class:`~tf_ig2.Explanation` of ``inputs`` (one model input; one or
            several targets per input).
        inputs: What was explained: ``(N, H, W[, C])`` images, ``(N, F)`` rows or ``(N, T)`` ids.
        class_names: Names of the classes, indexed by target, for the row titles.
        max_rows: The most inputs drawn (the first ones; each with all its targets).
        input_kind: ``"images"``, ``"tabular"`` or ``"tokens"``; ``None`` infers it from the rank
            (rank 2: tokens for integer ids or with a ``vocabulary``, else tabular).
        feature_names: Tabular: F names (``None``: ``x0``, ``x1``, ...).
        top: Tabular: only the ``top`` features of largest ``|attribution|``.
        vocabulary: Tokens: ``vocabulary[id]`` is the token (a sequence or ``{id: token}``).
        padding_id: Tokens: ids not drawn (``None`` draws all).
        percentile: Images: the per-image percentile of ``|sum_c A|`` at the colour limits.
        colormap: Images: the magnitude's colour map (``"inferno"``, ``"viridis"`` or ``"jet"``).
        alpha: Images: weight of the magnitude over the grey input.
        value_range: Images: ``(low, high)`` of the input values, for the input and GradCF
            columns; ``None`` for their joint minimum and maximum.
        min_size: Images: the smallest displayed side in pixels (at 100 dpi).

    Returns:
        A ``matplotlib.figure.Figure`` with one subfigure per row (its ``suptitle`` is the row title).

    Raises:
        ImportError: Without matplotlib (``pip install "tf-ig2[plot]"``).
        TypeError, ValueError: On a malformed argument.
    """
    figure_class = _figure_class()
    attributions = _single(explanation.attributions, "The attributions")
    inputs = validation.as_numpy("inputs", _single(inputs, "The inputs"))
    if inputs.shape[0] != attributions.shape[0]:
        raise ValueError(f"`inputs` must be the {attributions.shape[0]} explained inputs. Received: shape "
                         f"{inputs.shape}")
    kind = _kind(inputs, input_kind, vocabulary)
    explanation, inputs, attributions, titles = _drawn_rows(explanation, inputs, attributions,
                                                            _rows(len(inputs), max_rows), class_names)
    draw = {"images": _image_rows, "tabular": _tabular_rows, "tokens": _token_rows}[kind]
    options = {"images": dict(percentile=percentile, colormap=colormap, alpha=alpha, value_range=value_range,
                              min_size=min_size),
               "tabular": dict(feature_names=feature_names, top=top),
               "tokens": dict(vocabulary=vocabulary, padding_id=padding_id)}[kind]
    return draw(figure_class, explanation, inputs, attributions, titles, **options)


def _drawn_rows(explanation: Any, inputs: np.ndarray, attributions: np.ndarray, count: int,
                class_names: Any) -> Tuple[Any, np.ndarray, np.ndarray, List[str]]:
    """What the rows show: ``(explanation, inputs, attributions, titles)`` with one entry per row.

    One target per input: the first ``count`` inputs as they are. T targets per input: T rows per
    input, input-major, each with that target's attributions and scores (one target's shapes) and
    its input and counterfactuals repeated.
    """
    targets = explanation.target_count
    if targets is None:
        titles = ["\n".join(markup.caption(explanation, index, class_names)) for index in range(count)]
        return explanation, inputs, attributions, titles
    owners, columns = np.repeat(np.arange(count), targets), np.tile(np.arange(targets), count)

    def pick(values: Any) -> Any:
        return None if values is None else np.asarray(values)[owners, columns]

    def repeat(values: Any) -> Any:
        return None if values is None else np.asarray(values)[owners]

    rows = dataclasses.replace(
        explanation, attributions=pick(attributions),
        counterfactuals=repeat(_single(explanation.counterfactuals, "The counterfactuals")),
        target_scores=pick(explanation.target_scores), counterfactual_scores=pick(explanation.counterfactual_scores),
        delta=pick(explanation.delta), targets=pick(explanation.targets),
        representation_distance=repeat(explanation.representation_distance), path=None)
    titles = ["\n".join(markup.caption(rows, row, class_names, label=f"#{owner} target {column + 1}/{targets}:"))
              for row, (owner, column) in enumerate(zip(owners, columns))]
    return rows, inputs[owners], rows.attributions, titles


def _titled_rows(figure: Any, titles: Sequence[str]) -> List[Any]:
    subfigures = figure.subfigures(len(titles), 1, squeeze=False)[:, 0]
    for subfigure, title in zip(subfigures, titles):
        subfigure.suptitle(title, fontsize=9)
    return list(subfigures)


def _image_rows(figure_class: Any, explanation: Any, inputs: np.ndarray, attributions: np.ndarray,
                titles: Sequence[str], *, percentile: float, colormap: str, alpha: float, value_range: Any,
                min_size: int) -> Any:
    if inputs.ndim not in (3, 4) or attributions.shape[1:3] != inputs.shape[1:3]:
        raise ValueError("Image plots need inputs (N, H, W[, C]) and attributions covering the same pixels. "
                         f"Received: shapes {inputs.shape} and {attributions.shape}")
    percentile = maps.check_percentile(percentile)
    min_size = validation.positive_int("min_size", min_size)
    counterfactuals = np.asarray(_single(explanation.counterfactuals, "The counterfactuals"))
    references = counterfactuals.shape[1] if counterfactuals.ndim == inputs.ndim + 1 else 1
    if counterfactuals.ndim == inputs.ndim + 1:
        counterfactuals = counterfactuals.mean(axis=1)
    cell = max(CELL_INCHES, 1.6 * min_size / DPI)
    figure = figure_class(figsize=(4.6 * cell, len(titles) * (cell + 0.7)), dpi=DPI, layout="constrained")
    end = markup.end_label(explanation.method)
    for index, subfigure in enumerate(_titled_rows(figure, titles)):
        image = inputs[index][..., None] if inputs.ndim == 3 else inputs[index]
        other = counterfactuals[index][..., None] if inputs.ndim == 3 else counterfactuals[index]
        shown, shown_end = _joint_display(image.astype(np.float64), other.astype(np.float64), value_range)
        axes = subfigure.subplots(1, 4)
        axes[0].imshow(shown, interpolation="nearest")
        axes[0].set_title("input", fontsize=9)
        axes[1].imshow(shown_end, interpolation="nearest")
        axes[1].set_title(end if references == 1 else f"{end} (mean of {references})", fontsize=9)
        signed = maps._channel_sum("attributions", attributions[index:index + 1], absolute=False)[0]
        _, scales = maps._signed(attributions[index:index + 1], percentile)
        limit = float(scales[0]) or 1.0
        signed_image = axes[2].imshow(signed, cmap=SIGNED_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
        axes[2].set_title("attribution", fontsize=9)
        subfigure.colorbar(signed_image, ax=axes[2], shrink=0.8)
        blended = maps._overlay(image[None], attributions[index:index + 1], alpha, percentile,
                                colormap, grey=True)[0]
        axes[3].imshow(np.clip(blended, 0.0, 1.0), interpolation="nearest")
        axes[3].set_title("|attribution| on grey", fontsize=9)
        for axis in axes:
            axis.set_xticks([])
            axis.set_yticks([])
    return figure


def _tabular_rows(figure_class: Any, explanation: Any, inputs: np.ndarray, attributions: np.ndarray,
                  titles: Sequence[str], *, feature_names: Optional[Sequence[str]], top: Optional[int]) -> Any:
    if attributions.ndim != 2:
        raise ValueError(f"Tabular plots need attributions (N, F). Received: shape {attributions.shape}")
    count = attributions.shape[1]
    names = [f"x{index}" for index in range(count)] if feature_names is None else [str(n) for n in feature_names]
    if len(names) != count:
        raise ValueError(f"`feature_names` must name each of the {count} features. Received: {len(names)} names")
    shown = min(count, validation.optional_positive_int("top", top) or count)
    figure = figure_class(figsize=(7.0, len(titles) * (0.9 + 0.22 * shown)), dpi=DPI, layout="constrained")
    for index, subfigure in enumerate(_titled_rows(figure, titles)):
        values = attributions[index].astype(np.float64)
        order = np.argsort(-np.abs(values), kind="stable")[:shown]
        axis = subfigure.subplots()
        colours = ["#d93333" if values[feature] >= 0 else "#3359d9" for feature in order]
        axis.barh(np.arange(shown), values[order], color=colours)
        axis.set_yticks(np.arange(shown), [names[feature] for feature in order], fontsize=8)
        axis.invert_yaxis()
        axis.axvline(0.0, color="#4d4d4d", linewidth=0.8)
        axis.set_xlabel("attribution", fontsize=8)
    return figure


def _token_rows(figure_class: Any, explanation: Any, inputs: np.ndarray, attributions: np.ndarray,
                titles: Sequence[str], *, vocabulary: Vocabulary, padding_id: Optional[int]) -> Any:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if attributions.ndim == 3:
        attributions = attributions.sum(axis=-1)  # per embedding dimension -> per token
    if attributions.shape != inputs.shape:
        raise ValueError(f"Token plots need attributions (N, T) like the ids. Received: shapes {inputs.shape} "
                         f"and {attributions.shape}")
    table = token_pictures.check_vocabulary(vocabulary)
    per_line = 64  # characters per line of tokens
    lines = []
    rows = len(titles)
    for index in range(rows):
        words, positions = token_pictures.token_texts(inputs[index], table, padding_id, index)
        lines.append((words, attributions[index][positions]))
    heights = [1 + sum(len(word) + 1 for word in words) // per_line for words, _ in lines]
    figure = figure_class(figsize=(9.0, sum(0.9 + 0.3 * height for height in heights)), dpi=DPI,
                          layout="constrained")
    subfigures = figure.subfigures(rows, 1, squeeze=False, height_ratios=[0.9 + 0.3 * h for h in heights])[:, 0]
    for index, (subfigure, (words, values)) in enumerate(zip(subfigures, lines)):
        subfigure.suptitle(titles[index], fontsize=9)
        axis = subfigure.subplots()
        axis.set_xlim(0, per_line)
        axis.set_ylim(heights[index] - 0.5, -0.5)
        axis.axis("off")
        colours = token_pictures._signed_colours(values)
        column, line = 0, 0
        for word, colour in zip(words, colours):
            if column and column + len(word) > per_line:
                column, line = 0, line + 1
            axis.text(column, line, word, family="monospace", fontsize=9, va="center", ha="left",
                      bbox=dict(facecolor=tuple(colour), edgecolor="none", pad=1.5))
            column += len(word) + 1
        limit = float(np.max(np.abs(values))) if len(values) else 0.0
        mappable = ScalarMappable(norm=Normalize(-(limit or 1.0), limit or 1.0), cmap=SIGNED_CMAP)
        subfigure.colorbar(mappable, ax=axis, shrink=0.8, aspect=10)
    return figure


# -- the GradPath film strip ------------------------------------------------------------------------
def path_frames(explanation: Any, index: int = 0, reference: int = 0,
                fractions: Sequence[float] = defaults.PATH_FRACTIONS) -> Tuple[np.ndarray, np.ndarray]:
    """Points of one path at fractions of its steps: the first is the input, the last the end point.

    Args:
        explanation: An explanation with ``path`` ``(N, R, steps + 1, *S)`` (``return_path=True``).
        index: The explained input.
        reference: The reference (its path).
        fractions: Values in [0, 1]; step ``round(fraction * steps)`` is taken for each.

    Returns:
        ``(steps_taken (k,) int, frames (k, *S))``.

    Raises:
        ValueError: Without a path, or with an index, reference or fraction out of range.
    """
    if explanation.path is None:
        raise ValueError("The explanation has no path; explain with `return_path=True`, e.g. "
                         "tf_ig2.IG2(model, ...).explain(x, references, return_path=True). Received: path=None")
    path = np.asarray(_single(explanation.path, "The path"))
    count, references, points = path.shape[:3]
    for name, value, size in (("index", index, count), ("reference", reference, references)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < size:
            raise ValueError(f"`{name}` must be an int in [0, {size}). Received: {name}={value!r}")
    fractions = np.asarray(fractions, np.float64).reshape(-1)
    if not len(fractions) or np.any(~np.isfinite(fractions)) or np.any((fractions < 0) | (fractions > 1)):
        raise ValueError(f"`fractions` must be values in [0, 1]. Received: fractions={fractions.tolist()!r}")
    steps = np.round(fractions * (points - 1)).astype(np.int64)
    return steps, path[index, reference, steps]


def _path_scores(model: Any, frames: np.ndarray, target: Optional[int]) -> Optional[np.ndarray]:
    if model is None or target is None:
        return None
    import tensorflow as tf

    from tf_ig2.engine.model_view import ModelView, target_scores

    view = ModelView(model, need_representation=False)
    _, outputs = view(tf.constant(frames, tf.float32), representation=False)
    return target_scores(outputs, tf.fill([len(frames)], int(target))).numpy()


def plot_path(explanation: Any, inputs: Any, *, index: int = 0, reference: int = 0, model: Any = None,
              fractions: Sequence[float] = defaults.PATH_FRACTIONS, class_names: Optional[Sequence[Any]] = None,
              value_range: Any = None, min_size: int = defaults.PANEL_MIN_SIZE) -> Any:
    """The GradPath of one input towards one reference as a film strip (images).

    Frames at 0, 25, 50, 75 and 100% of the steps (``fractions``): the first is the input, the last
    GradCF for this reference. Below each frame, the change from the input (``frame - x`` summed
    over channels, red up, blue down, one symmetric scale for the strip). Titles give the step and,
    where known, the explained score ``f``: ``f(x)`` for the first frame, ``f(GradCF)`` for the last
    when there is one reference; every frame when ``model`` is given (scored in inference mode, the
    final softmax removed as the explainers do).

    Args:
        explanation: From ``IG2(...).explain(..., return_path=True)``.
        inputs: The ``(N, H, W[, C])`` explained images.
        index: Which input.
        reference: Which reference's path.
        model: Optional Keras model to score the intermediate frames.
        fractions: Where along the path the frames are taken, in [0, 1].
        class_names: Names of the classes, indexed by target.
        value_range: ``(low, high)`` of the input values; ``None`` for the strip's joint range.
        min_size: The smallest displayed side in pixels (at 100 dpi).

    Returns:
        A ``matplotlib.figure.Figure``: row 1 the frames, row 2 their change from the input.

    Raises:
        ImportError: Without matplotlib. ValueError: Without a path, or on malformed arguments.
    """
    require_one_target(explanation, "tf_ig2.plot_path")
    figure_class = _figure_class()
    steps, frames = path_frames(explanation, index, reference, fractions)
    inputs = np.asarray(_single(inputs, "The inputs"))
    if inputs.ndim not in (3, 4) or inputs.shape[1:] != frames.shape[1:]:
        raise ValueError(f"plot_path draws image paths: `inputs` must be (N, H, W[, C]) like the path's points "
                         f"{frames.shape[1:]}. Received: shape {inputs.shape}")
    target = None if explanation.targets is None else int(explanation.targets[index])
    scores = _path_scores(model, frames, target)
    known = {0: float(explanation.target_scores[index])}
    if np.shape(_single(explanation.counterfactuals, "The counterfactuals"))[1] == 1:
        known[int(np.asarray(explanation.path).shape[2] - 1)] = float(explanation.counterfactual_scores[index])
    cell = max(CELL_INCHES, 1.6 * validation.positive_int("min_size", min_size) / DPI)
    figure = figure_class(figsize=(len(frames) * cell + 1.0, 2 * cell + 1.0), dpi=DPI, layout="constrained")
    end = markup.end_label(explanation.method)
    figure.suptitle(f"Path of input {index} (class {markup.class_label(target, class_names)}) to its {end}, "
                    f"reference {reference}; {int(np.asarray(explanation.path).shape[2] - 1)} steps", fontsize=10)
    stack = frames if frames.ndim == 4 else frames[..., None]
    low_high = _joint_display(stack.reshape(-1, *stack.shape[2:]).astype(np.float64), None, value_range)[0]
    shown = low_high.reshape(len(frames), *stack.shape[1:3], 3)
    change = (stack - stack[:1]).sum(axis=-1)
    limit = float(np.max(np.abs(change))) or 1.0
    axes = figure.subplots(2, len(frames), squeeze=False)
    for column, (step, frame) in enumerate(zip(steps, shown)):
        title = f"step {int(step)} ({round(100 * int(step) / max(np.asarray(explanation.path).shape[2] - 1, 1))}%)"
        score = scores[column] if scores is not None else known.get(int(step))
        if score is not None:
            title += f"\nf = {float(score):.3g}"
        axes[0, column].imshow(frame, interpolation="nearest")
        axes[0, column].set_title(title, fontsize=9)
        moved = axes[1, column].imshow(change[column], cmap=SIGNED_CMAP, vmin=-limit, vmax=limit,
                                       interpolation="nearest")
        for axis in axes[:, column]:
            axis.set_xticks([])
            axis.set_yticks([])
    axes[1, 0].set_ylabel("change from x", fontsize=9)
    figure.colorbar(moved, ax=axes[1, :], shrink=0.8)
    return figure
