"""Deletion and insertion curves, their areas and DiffID (Petsiuk et al., RISE, BMVC 2018).

See :mod:`tf_ig2.metrics` for the definitions; every perturbed input is scored in compiled, batched
forward passes cached per model.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, validation
from tf_ig2.engine.compiled_model import CompiledFunction, CompiledModel, ModelCache, compiled
from tf_ig2.engine.model_view import Targets, target_scores
from tf_ig2.explanation import Explanation
from tf_ig2.metrics.blur import checked_sigma, gaussian_blur

#: The fills a removed feature can be replaced by.
FILLS = ("zero", "mean", "blur", "reference")

_MODES = ("deletion", "insertion")


# -- compiled scoring, cached per model ----------------------------------------------------------

class _CurveScorer:
    """A model's compiled core plus the compiled functions that score perturbed inputs."""

    def __init__(self, model: Any):
        self.compiled = CompiledModel(model)

    @property
    def model(self) -> Any:
        return self.compiled.model

    @property
    def batch_size(self) -> Optional[int]:
        return self.compiled.batch_size

    @batch_size.setter
    def batch_size(self, value: Optional[int]) -> None:
        self.compiled.batch_size = value

    @property
    def tracing_count(self) -> int:
        return self.compiled.tracing_count

    def _scores_function(self, sample_shape: Tuple[int, ...], mode: str, grouped: bool, score: Any,
                         width: Optional[int]) -> Any:
        view = self.compiled.view
        unit_shape = list(sample_shape[:-1] if grouped else sample_shape)
        units = int(np.prod(unit_shape))
        spec = tf.TensorSpec([None, *sample_shape], tf.float32)
        index_spec = tf.TensorSpec([None], tf.int32)

        @compiled([spec, spec, tf.TensorSpec([None, units], tf.int32), index_spec,
                   index_spec, index_spec, index_spec])
        def perturbed_scores(inputs, fills, ranks, owners, sources, counts, targets):
            # One evaluation per entry: row ``owners[p]`` (a ranking and a target) of input
            # ``sources[p]``, with its ``counts[p]`` top features moved.
            moved = tf.gather(ranks, owners) < counts[:, None]
            moved = tf.reshape(moved, [-1, *unit_shape] + ([1] if grouped else []))
            originals, replacements = tf.gather(inputs, sources), tf.gather(fills, sources)
            if mode == "deletion":
                points = tf.where(moved, replacements, originals)
            else:
                points = tf.where(moved, originals, replacements)
            outputs = view(points, representation=False)[1]
            if not callable(score):
                return target_scores(outputs, tf.gather(targets, owners))
            scores = target_scores(outputs, score)
            if width is None:
                return scores
            if len(scores.shape) != 2 or scores.shape[1] != width:
                raise ValueError(f"A callable `targets` must return (N, T) scores with T = {width}, the attributions' "
                                 f"target axis. Received: scores of shape {tuple(scores.shape)}")
            # the row's target is a column of the callable's scores
            return tf.gather(scores, tf.gather(targets, owners), axis=1, batch_dims=1)

        return perturbed_scores

    def blurred(self, inputs: np.ndarray, sigma: float) -> np.ndarray:
        """``(N, *S)`` Gaussian-blurred inputs, in chunks of ``batch_size``."""
        spec = tf.TensorSpec([None, *inputs.shape[1:]], tf.float32)
        function = self.compiled.function(
            ("blur", tuple(inputs.shape[1:]), sigma),
            lambda: CompiledFunction(lambda images: gaussian_blur(images, sigma), [spec]))
        size = self.batch_size or len(inputs)
        return np.concatenate([function(tf.constant(inputs[start:start + size])).numpy()
                               for start in range(0, len(inputs), size)])

    def curves(self, mode: str, grouped: bool, inputs: np.ndarray, fills: np.ndarray, ranks: np.ndarray,
               counts: np.ndarray, class_indices: Optional[np.ndarray], score: Any,
               width: Optional[int] = None) -> np.ndarray:
        """``(N * T, K)`` scores of every row at every count, ``batch_size`` evaluations at a time.

        Args:
            inputs, fills: ``(N, *S)``, stored once per input.
            ranks: ``(N * T, U)``, one row per (input, target), input-major (``T = 1`` for one target).
            counts: ``(K,)`` features moved at each curve point.
            class_indices: ``(N * T,)`` class indices, or ``None`` for a callable ``score``.
            score: ``"index"`` or a callable.
            width: T for several targets (a callable's column ``t`` scores row ``n * T + t``), else ``None``.
        """
        n, k = len(inputs), len(counts)
        rows = len(ranks)
        per_input = rows // n
        sample_shape = tuple(inputs.shape[1:])
        columns = width if callable(score) else None  # only a callable's scores need the target axis
        function = self.compiled.function(
            ("curve", sample_shape, mode, grouped, columns),
            lambda: self._scores_function(sample_shape, mode, grouped, score, columns), score)
        if class_indices is not None:
            targets = class_indices.astype(np.int32)
        elif columns is not None:
            targets = np.tile(np.arange(columns, dtype=np.int32), n)
        else:
            targets = np.zeros((rows,), np.int32)
        total = rows * k
        size = self.batch_size or total
        scores = np.empty((total,), np.float32)
        for start in range(0, total, size):
            evaluations = np.arange(start, min(start + size, total))
            owners = evaluations // k
            sources = owners // per_input
            first, last = int(owners[0]), int(owners[-1]) + 1
            first_input, last_input = int(sources[0]), int(sources[-1]) + 1
            scores[start:start + len(evaluations)] = function(
                tf.constant(inputs[first_input:last_input]),
                tf.constant(fills[first_input:last_input]),
                tf.constant(ranks[first:last]),
                tf.constant((owners - first).astype(np.int32)),
                tf.constant((sources - first_input).astype(np.int32)),
                tf.constant(counts[evaluations % k]),
                tf.constant(targets[first:last]),
            ).numpy()
        return scores.reshape(rows, k)


_SCORERS = ModelCache(defaults.METRIC_CACHE_SIZE)


def _scorer(model: Any, batch_size: Optional[int]) -> _CurveScorer:
    scorer = _SCORERS.get(model, (), lambda: _CurveScorer(model))
    scorer.batch_size = batch_size
    return scorer


# -- argument handling ---------------------------------------------------------------------------

def _attributions_and_targets(attributions: Any, targets: Targets) -> Tuple[Any, Targets]:
    if isinstance(attributions, Explanation):
        if targets is None and attributions.targets is not None:
            targets = attributions.targets
        return attributions.attributions, targets
    return attributions, targets


def _grouping(group_channels: Any, sample_shape: Tuple[int, ...]) -> bool:
    if group_channels is None:
        return len(sample_shape) == 3
    if not isinstance(group_channels, bool):
        raise TypeError(f"`group_channels` must be None or a bool. Received: group_channels={group_channels!r}")
    if group_channels and len(sample_shape) < 2:
        raise ValueError(
            "`group_channels=True` needs inputs with a trailing channel axis, (N, ..., C) with at least one "
            f"more axis. Received: input shape (N, {', '.join(map(str, sample_shape))})"
        )
    return group_channels


def _fills(scorer: _CurveScorer, fill: Any, fill_values: Any, inputs: np.ndarray, sigma: float) -> np.ndarray:
    sample_shape = tuple(inputs.shape[1:])
    if not isinstance(fill, str):
        raise TypeError(f"`fill` must be one of {FILLS}. Received: fill={fill!r}")
    if fill not in FILLS:
        raise ValueError(f"`fill` must be one of {FILLS}. Received: fill={fill!r}")
    if fill in ("zero", "blur") and fill_values is not None:
        raise ValueError(f"`fill_values` is only read by fill='mean' or fill='reference'; pass None with "
                         f"fill={fill!r}. Received: fill_values of shape {np.shape(fill_values)}")
    if fill == "zero":
        return np.zeros_like(inputs)
    if fill == "blur":
        if len(sample_shape) not in (2, 3):
            raise ValueError(
                "fill='blur' needs images of shape (N, H, W) or (N, H, W, C). Received: input shape "
                f"{inputs.shape}"
            )
        return scorer.blurred(inputs, sigma)
    if fill_values is None:
        expected = "an array broadcastable to one input" if fill == "mean" else "an (N, *input_shape) array"
        raise ValueError(f"fill={fill!r} needs `fill_values`: {expected}. Received: fill_values=None")
    if fill == "mean":
        values = validation.float_array("fill_values", fill_values, min_rank=0)
        try:
            return np.ascontiguousarray(np.broadcast_to(values, inputs.shape), dtype=np.float32)
        except ValueError as error:
            raise ValueError(
                f"`fill_values` for fill='mean' must broadcast to one input of shape {sample_shape} (e.g. the "
                f"dataset mean). Received: shape {values.shape}"
            ) from error
    values = validation.float_array("fill_values", fill_values, min_rank=1)
    if values.shape != inputs.shape:
        raise ValueError(
            f"`fill_values` for fill='reference' must hold one reference per input, shape {inputs.shape} like "
            f"`inputs`. Received: shape {values.shape}"
        )
    return values


def _ranks(attributions: np.ndarray, grouped: bool) -> np.ndarray:
    """``(N, U)`` int32: each feature's position in the order of decreasing attribution."""
    units = attributions.sum(axis=-1, dtype=np.float64) if grouped else attributions.astype(np.float64)
    units = units.reshape(len(units), -1)
    order = np.argsort(-units, axis=1, kind="stable")
    ranks = np.empty(order.shape, np.int32)
    np.put_along_axis(ranks, order, np.arange(units.shape[1], dtype=np.int32)[None], axis=1)
    return ranks


def feature_counts(units: int, steps: int) -> np.ndarray:
    """``(steps + 1,)`` int32: how many of ``units`` features are moved at each curve point.

    ``n_k = round(k * units / steps)`` (halves rounded up), from 0 to ``units``.
    """
    units = validation.positive_int("units", units)
    steps = validation.positive_int("steps", steps)
    k = np.arange(steps + 1, dtype=np.int64)
    return ((2 * k * units + steps) // (2 * steps)).astype(np.int32)


def _target_axis(attributions: np.ndarray, inputs: np.ndarray) -> Optional[int]:
    """T for ``(N, T, *S)`` attributions of ``(N, *S)`` inputs, ``None`` for ``(N, *S)``.

    Raises:
        ValueError: For attributions of any other shape.
    """
    if attributions.shape == inputs.shape:
        return None
    if attributions.ndim == inputs.ndim + 1 and attributions.shape[0] == inputs.shape[0] \
            and attributions.shape[2:] == inputs.shape[1:]:
        return int(attributions.shape[1])
    raise ValueError(
        f"`attributions` must have the shape of `inputs` {inputs.shape}, or (N, T, *S) for T targets per input. "
        f"Received: shape {attributions.shape}"
    )


def _several_targets(scorer: _CurveScorer, targets: Targets, inputs: np.ndarray,
                     width: int) -> Tuple[Optional[np.ndarray], Any]:
    """``(N * T,)`` class indices (or ``None``) and the score spec, for ``(N, T, *S)`` attributions."""
    if targets is None:
        raise ValueError(f"Attributions of several targets per input (N, T, *S) need their targets: (N, T) class "
                         f"indices (e.g. the explanation's `targets`), 'top-{width}', or a callable returning (N, T) "
                         "scores. Received: targets=None")
    class_indices, score = scorer.compiled.resolve_targets(targets, inputs, several=True)
    if class_indices is None:
        return None, score
    if class_indices.shape != (len(inputs), width):
        raise ValueError(f"`targets` must hold the (N, T) = {(len(inputs), width)} targets of the attributions "
                         f"(N, T, *S). Received: targets of shape {class_indices.shape}")
    return class_indices.reshape(-1), score


def _curve(mode: str, model: Any, inputs: Any, attributions: Any, targets: Targets, fill: Any,
           fill_values: Any, steps: Any, sigma: Any, group_channels: Any, batch_size: Any) -> np.ndarray:
    attributions, targets = _attributions_and_targets(attributions, targets)
    batch_size = validation.optional_positive_int("batch_size", batch_size)
    scorer = _scorer(model, batch_size)
    inputs = scorer.compiled.check_inputs(inputs)
    attributions = validation.float_array("attributions", attributions)
    width = _target_axis(attributions, inputs)
    steps = validation.positive_int("steps", steps)
    sigma = checked_sigma(sigma)
    grouped = _grouping(group_channels, tuple(inputs.shape[1:]))
    fills = _fills(scorer, fill, fill_values, inputs, sigma)
    if width is None:
        class_indices, score = scorer.compiled.resolve_targets(targets, inputs)
    else:
        class_indices, score = _several_targets(scorer, targets, inputs, width)
        attributions = attributions.reshape((-1,) + inputs.shape[1:])  # one row per (input, target)
    ranks = _ranks(attributions, grouped)
    counts = feature_counts(ranks.shape[1], steps)
    curves = scorer.curves(mode, grouped, inputs, fills, ranks, counts, class_indices, score, width)
    return curves if width is None else curves.reshape(len(inputs), width, -1)


# -- public curves and areas ---------------------------------------------------------------------

def deletion_curve(
    model: Any,
    inputs: Any,
    attributions: Any,
    targets: Targets = None,
    *,
    fill: str = defaults.METRIC_FILL,
    fill_values: Any = None,
    steps: int = defaults.METRIC_CURVE_STEPS,
    sigma: float = defaults.METRIC_BLUR_SIGMA,
    group_channels: Optional[bool] = None,
    batch_size: Optional[int] = None,
) -> np.ndarray:
    """Target scores as the most-attributed features are replaced by a fill (lower is better).

    Args:
        model: A Keras model, as given to the explainers.
        inputs: ``(N, *S)`` float array or tensor, the explained inputs.
        attributions: ``(N, *S)`` attributions, or an :class:`~tf_ig2.Explanation` (whose
            ``targets`` are used when ``targets`` is None); ``(N, T, *S)`` for T targets per input,
            each scored with its own ranking.
        targets: ``None`` (the class predicted for the original input), an int, ``(N,)`` ints or
            a callable mapping the model output to ``(N,)`` scores. For ``(N, T, *S)``
            attributions: ``(N, T)`` ints, ``"top-T"`` or a callable returning ``(N, T)`` scores.
        fill: What removed features become: ``"zero"``; ``"mean"`` (``fill_values``, e.g. the
            dataset mean, broadcastable to ``S``); ``"blur"`` (the input blurred with a Gaussian
            of standard deviation ``sigma`` pixels; images only); ``"reference"``
            (``fill_values`` of shape ``(N, *S)``, one reference per input, e.g. a counterfactual).
        fill_values: See ``fill``; must be None for ``"zero"`` and ``"blur"``.
        steps: K; the curve has ``K + 1`` points, after moving ``round(k U / K)`` of the U
            features, ``k = 0 .. K``.
        sigma: Blur standard deviation in pixels (``fill="blur"`` only).
        group_channels: Rank pixels by the attribution summed over the last (channel) axis and
            move their channels together. ``None``: only for ``(N, H, W, C)`` inputs.
        batch_size: The most perturbed inputs scored in one forward pass; ``None`` for all
            ``N (K + 1)`` at once.

    Returns:
        ``(N, steps + 1)`` float32 scores; column 0 is the score of the unchanged input.
        ``(N, T, steps + 1)`` for T targets per input.

    Raises:
        TypeError, ValueError: On malformed arguments.
    """
    return _curve("deletion", model, inputs, attributions, targets, fill, fill_values, steps, sigma,
                  group_channels, batch_size)


def insertion_curve(
    model: Any,
    inputs: Any,
    attributions: Any,
    targets: Targets = None,
    *,
    fill: str = defaults.METRIC_FILL,
    fill_values: Any = None,
    steps: int = defaults.METRIC_CURVE_STEPS,
    sigma: float = defaults.METRIC_BLUR_SIGMA,
    group_channels: Optional[bool] = None,
    batch_size: Optional[int] = None,
) -> np.ndarray:
    """Target scores as the most-attributed features are put back into the fill (higher is better).

    Starts from the fill (column 0) and ends at the unchanged input (column ``steps``). The
    arguments are those of :func:`deletion_curve`.

    Returns:
        ``(N, steps + 1)`` float32 scores (``(N, T, steps + 1)`` for T targets per input).

    Raises:
        TypeError, ValueError: On malformed arguments.
    """
    return _curve("insertion", model, inputs, attributions, targets, fill, fill_values, steps, sigma,
                  group_channels, batch_size)


def area_under_curve(curve: Any) -> np.ndarray:
    """Trapezoid-rule area of curves sampled at equally spaced points of ``[0, 1]``.

    Args:
        curve: ``(N, K + 1)`` curves (or one ``(K + 1,)`` curve, or ``(N, T, K + 1)`` per input and
            target), ``K >= 1``.

    Returns:
        ``(N,)`` float32 areas (a 0-d array for one curve, ``(N, T)`` for ``(N, T, K + 1)``).
    """
    values = validation.float_array("curve", curve, min_rank=1).astype(np.float64)
    if values.ndim > 3:
        raise ValueError(f"`curve` must have shape (N, K + 1), (N, T, K + 1) or (K + 1,). Received: shape "
                         f"{values.shape}")
    if values.shape[-1] < 2:
        raise ValueError(f"`curve` needs at least 2 points to have an area. Received: shape {values.shape}")
    intervals = values.shape[-1] - 1
    area = (values.sum(axis=-1) - 0.5 * (values[..., 0] + values[..., -1])) / intervals
    return np.asarray(area, dtype=np.float32)


def deletion_score(model: Any, inputs: Any, attributions: Any, targets: Targets = None,
                   **options: Any) -> np.ndarray:
    """``(N,)`` float32 area under the deletion curve (lower is better); ``(N, T)`` for T targets per input.

    Takes :func:`deletion_curve`'s arguments.
    """
    return area_under_curve(deletion_curve(model, inputs, attributions, targets, **options))


def insertion_score(model: Any, inputs: Any, attributions: Any, targets: Targets = None,
                    **options: Any) -> np.ndarray:
    """``(N,)`` float32 area under the insertion curve (higher is better); ``(N, T)`` for T targets per input.

    Takes :func:`insertion_curve`'s arguments.
    """
    return area_under_curve(insertion_curve(model, inputs, attributions, targets, **options))


def diffid(model: Any, inputs: Any, attributions: Any, targets: Targets = None, **options: Any) -> np.ndarray:
    """``(N,)`` float32 ``insertion_score - deletion_score`` (higher is better); ``(N, T)`` for T targets.

    Takes :func:`deletion_curve`'s arguments; both curves use the same fill and targets.
    """
    attributions, targets = _attributions_and_targets(attributions, targets)
    if targets is None and np.ndim(attributions) == np.ndim(inputs):
        # Resolve the predicted class once, so both curves explain the same class.
        scorer = _scorer(model, validation.optional_positive_int("batch_size", options.get("batch_size")))
        inputs = scorer.compiled.check_inputs(inputs)
        targets, _ = scorer.compiled.resolve_targets(None, inputs)
    return (insertion_score(model, inputs, attributions, targets, **options)
            - deletion_score(model, inputs, attributions, targets, **options))
