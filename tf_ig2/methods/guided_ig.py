"""Guided Integrated Gradients (Kapishnikov et al., "Guided Integrated Gradients: An Adaptive Path
Method for Removing Noise", CVPR 2021, Algorithm 1).

The path gamma runs from the baseline b to the input x in ``steps`` steps. With
``alpha_k = k / steps``, step k must bring the L1 distance to the input down to
``||x - b||_1 (1 - alpha_k)``. It does so by moving the features of smallest ``|grad f_c|`` first
(those at or below the ``fraction`` quantile, numpy's ``"lower"`` rule) towards
``b + alpha_max (x - b)``, while every feature keeps its own progress within
``[alpha_min, alpha_max] = [alpha_k - max_dist, alpha_k + max_dist]`` (clipped to [0, 1])::

    A(x) = sum_k (gamma_{k+1} - gamma_k) * grad f_c(gamma_k)

``max_dist=0`` is straight-line IG with a left Riemann sum; ``max_dist=1`` leaves the path free in
the box spanned by b and x. All pairs of a chunk walk their paths together inside one compiled
graph: one batched gradient per step, and the inner "move the selected features" loop is a
``tf.while_loop`` that runs while any pair has not reached its step's L1 target, leaving finished
pairs untouched. The path bookkeeping is float64 (the model sees float32), as in PAIR saliency.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults
from tf_ig2.engine.compiled_model import as_list
from tf_ig2.engine.model_view import ModelView, target_scores
from tf_ig2.methods import registry
from tf_ig2.methods.base import BaselineExplainer
from tf_ig2.methods.integrated_gradients import endpoint_scores, score_gradient

#: Relative and absolute tolerance at which a step's L1 distance counts as reached.
_L1_TOLERANCE = 1e-9


def _l1(values: tf.Tensor) -> tf.Tensor:
    """``(P,)`` L1 norm of ``(P, F)`` values."""
    return tf.reduce_sum(tf.abs(values), axis=1)


def _is_close(first: tf.Tensor, second: tf.Tensor) -> tf.Tensor:
    """Element-wise ``math.isclose`` with relative and absolute tolerance ``_L1_TOLERANCE``."""
    scale = tf.maximum(tf.abs(first), tf.abs(second))
    return tf.abs(first - second) <= tf.maximum(_L1_TOLERANCE * scale, _L1_TOLERANCE)


def integrate_guided(view: ModelView, inputs: Any, baselines: Any, targets: Any, *,
                     steps: int, fraction: float, max_dist: float, model_inputs: Any = None) -> Dict[str, Any]:
    r"""Guided IG of each (input, baseline) pair; a pure tensor function.

    Run it eagerly, or inside ``tf.function`` as :class:`GuidedIG` does. A pair whose input
    equals its baseline gets zero attribution. The path is chosen from the target's gradient, so
    T targets per pair (``(P, T)`` class indices, or a callable returning ``(P, T)`` scores) walk
    T paths: a ``tf.while_loop`` over the targets runs one target's paths for all pairs at a time
    (memory as for one target, time about T times one target's).

    Args:
        view: The model's score (:class:`~tf_ig2.engine.model_view.ModelView`).
        inputs: ``(P, *S)`` float32, with ``S`` known, or a list with one ``(P, *S_i)`` tensor per
            model input: their features are ranked and moved together, as one vector.
        baselines: Like ``inputs``.
        targets: ``(P,)`` int32 class indices or a callable mapping outputs to ``(P,)`` scores; for
            T targets, ``(P, T)`` class indices or a callable returning ``(P, T)`` scores.
        steps: Number of path steps (one gradient each).
        fraction: Share of the features, in (0, 1], moved first at every step (the ones with the
            smallest absolute gradient).
        max_dist: How far, in [0, 1] units of the straight line's alpha, a feature may run ahead
            of or fall behind the straight-line path.
        model_inputs: With ``input_layer``\ s, the raw model inputs (one entry or ``None`` per input).

    Returns:
        ``attributions`` ``(P, *S)`` float32 (``(P, T, *S)`` for T targets), ``counterfactuals``
        (the baselines) ``(P, *S)``, ``target_scores`` ``(P,)`` (or ``(P, T)``) f_c(x) and
        ``counterfactual_scores`` likewise f_c(b).
    """
    options = dict(steps=steps, fraction=fraction, max_dist=max_dist, model_inputs=model_inputs)
    several = len(targets.shape) == 2 if not callable(targets) else None
    if several is None:  # a callable: its scores' shape says
        points = as_list(inputs)
        several = len(target_scores(view(points, model_inputs=model_inputs, representation=False)[1],
                                    targets).shape) == 2
    if not several:
        return _integrate_one_target(view, inputs, baselines, targets, **options)
    single = not isinstance(inputs, (list, tuple))
    inputs, baselines = as_list(inputs), as_list(baselines)
    input_scores, baseline_scores = endpoint_scores(view, inputs, baselines, targets, model_inputs)
    width = int(input_scores.shape[1])

    def one_target(t, arrays):
        column = ((lambda outputs: tf.gather(target_scores(outputs, targets), t, axis=1)) if callable(targets)
                  else targets[:, t])
        result = _integrate_one_target(view, inputs, baselines, column, **options)
        return t + 1, [array.write(t, value) for array, value in zip(arrays, result["attributions"])]

    arrays = [tf.TensorArray(tf.float32, size=width, element_shape=x.shape) for x in inputs]
    _, arrays = tf.while_loop(lambda t, _: t < width, one_target, (tf.constant(0), arrays), parallel_iterations=1)
    attributions = [tf.transpose(array.stack(), [1, 0] + list(range(2, len(x.shape) + 1)))
                    for array, x in zip(arrays, inputs)]
    return {"attributions": attributions[0] if single else attributions,
            "counterfactuals": baselines[0] if single else baselines,
            "target_scores": input_scores,
            "counterfactual_scores": baseline_scores}


def _flatten(values: List[tf.Tensor], sizes: List[int]) -> tf.Tensor:
    """``(P, F)`` float64: every input's ``(P, *S_i)`` features side by side."""
    return tf.concat([tf.reshape(tf.cast(value, tf.float64), [-1, size]) for value, size in zip(values, sizes)], 1)


def _unflatten(values: tf.Tensor, sizes: List[int], shapes: List[List[int]], dtype: tf.DType) -> List[tf.Tensor]:
    """:func:`_flatten` undone: one ``(P, *S_i)`` tensor of ``dtype`` per input."""
    return [tf.reshape(tf.cast(part, dtype), [-1, *shape])
            for part, shape in zip(tf.split(values, sizes, axis=1), shapes)]


def _integrate_one_target(view: ModelView, inputs: Any, baselines: Any, targets: Any, *, steps: int,
                          fraction: float, max_dist: float, model_inputs: Any = None) -> Dict[str, Any]:
    """:func:`integrate_guided` for ``(P,)`` targets."""
    single = not isinstance(inputs, (list, tuple))
    inputs, baselines = as_list(inputs), as_list(baselines)
    shapes = [[int(size) for size in value.shape[1:]] for value in inputs]
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
    features = sum(sizes)

    # np.quantile(values, fraction, method="lower") is the sorted values' element floor(fraction (F - 1)).
    threshold_index = int(np.floor((features - 1) * float(fraction)))
    iteration_limit = features + 2  # each unfinished iteration pins at least one more feature at point_max
    steps_total = tf.constant(float(steps), tf.float64)
    max_dist = tf.constant(float(max_dist), tf.float64)
    infinity = tf.constant(np.inf, tf.float64)
    excluded = tf.constant(np.inf, tf.float32)  # the rank of features already at point_max

    end = _flatten(inputs, sizes)
    start = _flatten(baselines, sizes)
    difference = end - start
    moving = tf.not_equal(difference, 0.0)
    safe_difference = tf.where(moving, difference, tf.ones_like(difference))
    l1_total = _l1(difference)
    pairs = tf.shape(end)[0]

    def outer_step(step, point, attributions):
        _, gradient = score_gradient(view, _unflatten(point, sizes, shapes, tf.float32), targets, model_inputs)
        # Ranked in the model's float32, like the reference; accumulated in float64.
        ranking = tf.cast(_flatten(gradient, sizes), tf.float32)
        gradient = tf.cast(ranking, tf.float64)
        alpha = tf.cast(step + 1, tf.float64) / steps_total
        alpha_min = tf.maximum(alpha - max_dist, 0.0)
        alpha_max = tf.minimum(alpha + max_dist, 1.0)
        point_min = start + difference * alpha_min
        point_max = start + difference * alpha_max
        l1_target = l1_total * (1.0 - alpha)

        def inner_step(iteration, point, attributions, ranking, active):
            old = point
            # Features without a straight line (input == baseline) count as already at alpha_max.
            progress = tf.where(moving, (point - start) / safe_difference, alpha_max)
            point = tf.where(progress < alpha_min, point_min, point)
            l1_current = _l1(point - end)
            reached = _is_close(l1_target, l1_current)
            ranking = tf.where(tf.equal(point, point_max), excluded, ranking)
            magnitude = tf.abs(ranking)
            threshold = tf.gather(tf.sort(magnitude, axis=1), threshold_index, axis=1)
            selected = (magnitude <= threshold[:, None]) & tf.not_equal(ranking, excluded) & ~reached[:, None]
            l1_selected = tf.reduce_sum(tf.where(selected, tf.abs(point - point_max), 0.0), axis=1)
            has_room = l1_selected > 0.0
            safe_selected = tf.where(has_room, l1_selected, 1.0)
            gamma = tf.where(has_room, (l1_current - l1_target) / safe_selected, infinity)
            beyond = (gamma > 1.0)[:, None]
            partial = point + (point_max - point) * tf.where(beyond, tf.zeros_like(point), gamma[:, None])
            point = tf.where(selected, tf.where(beyond, point_max, partial), point)
            update = active[:, None]
            return (iteration + 1,
                    tf.where(update, point, old),
                    tf.where(update, attributions + (point - old) * gradient, attributions),
                    ranking,
                    # A pair with nothing left to select cannot move further (the reference spins).
                    active & ~reached & (gamma > 1.0) & has_room)

        _, point, attributions, _, _ = tf.while_loop(
            lambda iteration, *state: (iteration < iteration_limit) & tf.reduce_any(state[-1]),
            inner_step,
            (tf.constant(0), point, attributions, ranking, tf.ones([pairs], tf.bool)),
        )
        return step + 1, point, attributions

    _, _, attributions = tf.while_loop(
        lambda step, *_: step < steps,
        outer_step,
        (tf.constant(0), start, tf.zeros_like(start)),
        parallel_iterations=1,
    )
    attributions = tf.where((l1_total > 0.0)[:, None], attributions, 0.0)
    input_scores, baseline_scores = endpoint_scores(view, inputs, baselines, targets, model_inputs)
    attributions = _unflatten(attributions, sizes, shapes, tf.float32)
    return {"attributions": attributions[0] if single else attributions,
            "counterfactuals": baselines[0] if single else baselines,
            "target_scores": input_scores,
            "counterfactual_scores": baseline_scores}


class GuidedIG(BaselineExplainer):
    """Guided Integrated Gradients with the same targets, batching and result as IG².

    Args:
        model: A Keras model.
        steps: Number of path steps, one gradient each (default
            :data:`tf_ig2.defaults.GUIDED_IG_STEPS`).
        fraction: Share of the features, in (0, 1], moved first at each step (default
            :data:`tf_ig2.defaults.GUIDED_IG_FRACTION`).
        max_dist: Largest deviation from the straight line, in [0, 1] units of its alpha; 0 is
            straight-line IG, 1 is unbounded (default :data:`tf_ig2.defaults.GUIDED_IG_MAX_DIST`).
        batch_size: The most (input, baseline) pairs processed at once; ``None`` for all.
        output: For a model with several outputs, the one to explain (a name or an index).
        input_layer: For token ids, the embedding layer whose output space the path lives in
            (as for :class:`~tf_ig2.IG2`); attributions are summed per token.
        padding_id: With ``input_layer``, the id of padding positions, which get zero attribution.

    Example:
        >>> explanation = tf_ig2.GuidedIG(model).explain(images, baselines=0.0)
        >>> explanation.attributions.shape == images.shape
    """

    method = "guided_ig"

    def __init__(self, model: Any, steps: int = defaults.GUIDED_IG_STEPS,
                 fraction: float = defaults.GUIDED_IG_FRACTION, max_dist: float = defaults.GUIDED_IG_MAX_DIST,
                 *, batch_size: Optional[int] = None, output: Union[None, str, int] = None,
                 input_layer: Any = None, padding_id: Optional[int] = defaults.PADDING_ID):
        self.settings = registry.GuidedIGSettings(steps=steps, fraction=fraction, max_dist=max_dist,
                                                  batch_size=batch_size, output=output, input_layer=input_layer,
                                                  padding_id=padding_id)
        self.steps, self.fraction, self.max_dist = self.settings.steps, self.settings.fraction, self.settings.max_dist
        super().__init__(model, batch_size=self.settings.batch_size, output=output, input_layer=input_layer,
                         padding_id=self.settings.padding_id)

    def _integrate(self, inputs, baselines, targets, model_inputs):
        return integrate_guided(self.view, inputs, baselines, targets, steps=self.steps, fraction=self.fraction,
                                max_dist=self.max_dist, model_inputs=model_inputs)

