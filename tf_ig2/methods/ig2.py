"""IG²: GradPath search fused with path integration (Zhuo & Ge, TPAMI 2024, Eqs. 7-10).

For an input x, a reference x_r, a representation phi, a target score f_c, k steps of length eta
and bounds [lo, hi]::

    gamma_0     = x
    g_j         = grad_z ||phi(z) - phi(x_r)||^2  at z = gamma_j
    gamma_{j+1} = clip(gamma_j - eta * g_j / ||g_j||_2, lo, hi)          (GradPath; a zero g_j: no move)
    GradCF_r    = gamma_k                                                   (the counterfactual baseline)
    A(x)        = mean_r sum_{j<k} (gamma_j - gamma_{j+1}) * grad f_c(gamma_j)   (IG² attribution)

``step_schedule="shrink"`` replaces eta by a per-pair length that is multiplied by ``shrink_factor``
each time the pair's distance ``||phi(gamma_j) - phi(x_r)||`` rises after a step (no step is undone).

Completeness: ``sum A(x) = f_c(x) - mean_r f_c(GradCF_r)`` up to the discretisation error that
:class:`~tf_ig2.Explanation` reports as ``delta``. Each step costs one forward pass and two
gradients, and runs inside one compiled ``tf.while_loop`` over a batch of pairs: there is no host
round trip per step and the path is not stored unless asked for.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, diagnostics, validation
from tf_ig2.engine.compiled_model import ModelCache, as_list, compiled, value_key
from tf_ig2.engine.model_view import LayerSpec, ModelView, Targets, score_gradients, target_scores
from tf_ig2.explanation import Explanation
from tf_ig2.methods import registry, settings
from tf_ig2.methods.base import PairExplainer
from tf_ig2.methods.integration_rules import RULES, per_pair

INTEGRATIONS = settings.INTEGRATIONS

#: How the GradPath's step length changes along the path (see :func:`integrate_gradpath`).
STEP_SCHEDULES = registry.IG2Settings.choices("step_schedule")


def _pair_norm(values: List[tf.Tensor]) -> tf.Tensor:
    """``(P,)`` L2 norm over all non-batch axes of all entries together."""
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.reshape(tf.square(value), [tf.shape(value)[0], -1]), axis=1)
                             for value in values]))


def _squared_distance(representation: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
    difference = tf.cast(representation, tf.float32) - reference
    return tf.reduce_sum(tf.reshape(tf.square(difference), [tf.shape(difference)[0], -1]), axis=1)


class TargetLayout:
    """How the T targets of each pair meet the integration rules: as ``P * T`` rows, pair-major.

    The path is target-free (it follows the representation distance), so it is searched once
    per pair; each rule then integrates T score gradients along it. The rules work on rows: the
    step ``d_j`` of pair p is repeated for its T targets, and row ``p * T + t`` holds target t's
    gradient and score. With one target (``(P,)`` scores) every method is the identity.

    Args:
        scores: ``(P,)`` scores (one target) or ``(P, T)`` scores (T static).
    """

    def __init__(self, scores: tf.Tensor):
        self.width = None if len(scores.shape) == 1 else int(scores.shape[1])

    def spread(self, values: List[tf.Tensor]) -> List[tf.Tensor]:
        """``(P, *S)`` per input repeated to ``(P * T, *S)``."""
        return values if self.width is None else [tf.repeat(value, self.width, axis=0) for value in values]

    def merge(self, values: List[tf.Tensor]) -> List[tf.Tensor]:
        """``(P, T, *S)`` per input as ``(P * T, *S)`` rows."""
        if self.width is None:
            return values
        return [tf.reshape(value, [-1, *value.shape[2:]] if value.shape[2:].is_fully_defined()
                           else tf.concat([[-1], tf.shape(value)[2:]], 0)) for value in values]

    def rows(self, scores: tf.Tensor) -> tf.Tensor:
        """``(P, T)`` scores as ``(P * T,)`` rows."""
        return scores if self.width is None else tf.reshape(scores, [-1])

    def split(self, values: List[tf.Tensor], like: List[tf.Tensor]) -> List[tf.Tensor]:
        """``(P * T, *S)`` rows back to ``(P, T, *S)`` per input (``like``: the ``(P, *S)`` inputs)."""
        if self.width is None:
            return values
        return [tf.reshape(value, [-1, self.width, *x.shape[1:]]) for value, x in zip(values, like)]


def _schedule_state(inputs: List[tf.Tensor], eta: tf.Tensor, *, momentum: float, shrink: bool) -> Dict[str, Any]:
    """The loop state of the momentum and the step schedule at the path's start."""
    state: Dict[str, Any] = {}
    if momentum > 0.0:
        state["velocity"] = [tf.zeros_like(x) for x in inputs]
    if shrink:  # (P,) each pair's step length, and its distance before the last step (none at the start)
        pairs = tf.shape(inputs[0])[0]
        state["length"] = eta * tf.ones([pairs], tf.float32)
        state["last_distance"] = tf.fill([pairs], tf.constant(np.inf, tf.float32))
    return state


def _next_point(state: Dict[str, Any], distance: tf.Tensor, distance_gradient: List[tf.Tensor], bounds: Any, *,
                eta: tf.Tensor, momentum: float, shrink_factor: Optional[float],
                per_pair_eta: bool) -> Tuple[Dict[str, Any], List[tf.Tensor]]:
    """``(state, next point)``: one GradPath step from ``state["point"]`` down the distance gradient.

    With momentum the step follows the heavy-ball unit velocity; with a ``shrink_factor`` (step
    schedule ``"shrink"``) a pair whose distance rose with the last step takes shorter steps from here
    on; otherwise every step is ``eta`` long.
    """
    norm = _pair_norm(distance_gradient)
    if momentum > 0.0:  # heavy ball on the unit directions; the step follows the unit velocity
        velocity = [momentum * value + tf.math.divide_no_nan(part, per_pair(norm, part))
                    for value, part in zip(state["velocity"], distance_gradient)]
        state = dict(state, velocity=velocity)
        distance_gradient, norm = velocity, _pair_norm(velocity)
    if shrink_factor is not None:
        length = tf.where(distance > state["last_distance"], shrink_factor * state["length"], state["length"])
        state = dict(state, length=length, last_distance=distance)
        return state, _move(state["point"], distance_gradient, norm, length, bounds, per_pair_eta=True)
    return state, _move(state["point"], distance_gradient, norm, eta, bounds, per_pair_eta=per_pair_eta)


def integrate_gradpath(
    view: ModelView,
    inputs: Any,
    references: Any,
    targets: Any,
    *,
    steps: int,
    step_size: Union[str, float] = defaults.AUTO,
    value_range: Any = None,
    return_path: bool = False,
    model_inputs: Any = None,
    reference_model_inputs: Any = None,
    movable: Any = None,
    integration: str = defaults.IG2_INTEGRATION,
    segment_points: int = defaults.IG2_SEGMENT_POINTS,
    momentum: float = defaults.IG2_MOMENTUM,
    step_schedule: str = defaults.IG2_STEP_SCHEDULE,
    shrink_factor: float = defaults.IG2_SHRINK_FACTOR,
) -> Dict[str, Any]:
    r"""Searches the GradPath of each (input, reference) pair and integrates along it.

    With T targets per pair the path is searched once and T score gradients are integrated along
    it at every point (:class:`TargetLayout`): one forward pass, the distance gradient and T
    score gradients per step. A pure tensor function: run it eagerly, or inside ``tf.function`` as :class:`IG2` does.
    With ``d_j = gamma_j - gamma_{j+1}`` and ``g = grad f_c``, the integration rules are:

    - ``"left"`` (published): ``sum_j d_j * g(gamma_j)``;
    - ``"trapezoid"``: ``sum_j d_j * (g(gamma_j) + g(gamma_{j+1})) / 2`` (one gradient more in all);
    - ``"midpoint"``: ``sum_j d_j * mean_i g(gamma_j - (i + 1/2) / m * d_j)``, ``m = segment_points``
      gradients per segment (exact completeness as ``m`` grows);
    - ``"rescaled"``: the left rule with each segment made to add up to
      ``f_c(gamma_j) - f_c(gamma_{j+1})`` (:func:`~tf_ig2.methods.integration_rules.rescale_segment`):
      exact completeness, no extra gradient.

    Each rule is an object of :data:`tf_ig2.methods.integration_rules.RULES`; the loop here only moves.

    Args:
        view: The model's representation and score (:class:`~tf_ig2.engine.model_view.ModelView`).
        inputs: ``(P, *S)`` float32, the explained input of each pair, or a list with one
            ``(P, *S_i)`` tensor per model input (moved jointly: one L2 norm over all of them).
        references: Like ``inputs``, the reference of each pair.
        targets: ``(P,)`` int32 class indices, or a callable mapping outputs to ``(P,)`` scores;
            for T targets per pair, ``(P, T)`` class indices or a callable returning ``(P, T)``.
        steps: k, the number of path steps.
        step_size: eta, or ``"auto"`` for ``AUTO_STEP_FACTOR * ||x - x_r||_2 / steps`` per pair.
        value_range: ``None``, one ``(low, high)`` pair (arrays or tensors broadcastable to each
            input) for all inputs, or a list with one pair (or ``None``) per input.
        return_path: Also return the ``(P, steps + 1, *S)`` path.
        model_inputs: With a view that has ``input_layer``\ s (embeddings), the raw ``(P, ...)``
            model inputs of the explained side (a tensor, or one entry or ``None`` per input);
            ``inputs`` and ``references`` are then points in those layers' output spaces.
        reference_model_inputs: The raw model inputs of the references, likewise.
        movable: ``None``, or (per input) a 0/1 mask broadcastable to ``(P, *S_i)``; features
            where it is 0 never move (padding tokens), so they receive exactly zero attribution.
        integration: One of :data:`INTEGRATIONS`.
        segment_points: m, for ``integration="midpoint"``.
        momentum: beta in [0, 1). 0 is the published GradPath. Otherwise the path follows a
            heavy-ball direction ``v_j = beta v_{j-1} + g_j / ||g_j||``, ``gamma_{j+1} =
            clip(gamma_j - eta v_j / ||v_j||)``: parts of the gradient that flip sign from step to
            step (ReLU gates) cancel, and the direction that persists is kept. This changes GradCF.
        step_schedule: One of :data:`STEP_SCHEDULES`. ``"constant"`` is the published path: every
            step is eta long. ``"shrink"``: each pair keeps its own step length eta_p (starting at
            eta), multiplied by ``shrink_factor`` each time that pair's representation distance
            rises after a step (``||phi(gamma_{j+1}) - phi(x_r)|| > ||phi(gamma_j) - phi(x_r)||``;
            the steps from gamma_{j+1} on are the shorter ones). No step is undone, so the path
            still has ``steps + 1`` points and every rule integrates along it as it is. With
            several inputs one eta_p moves them all (the step is normalised over all of them
            together); it is the length before clipping to ``value_range``. This changes GradCF.
        shrink_factor: The factor in (0, 1) of ``step_schedule="shrink"``.

    Returns:
        A dict of tensors: ``attributions`` (like ``inputs``, ``(P, T, *S)`` for T targets; one
        pair's sum, not yet averaged), ``counterfactuals`` (like ``inputs``) GradCF,
        ``target_scores`` ``(P,)`` (or ``(P, T)``) f_c(x), ``counterfactual_scores`` likewise
        f_c(GradCF), ``representation_distance`` ``(P, 2)``
        Euclidean distance to phi(x_r) at the start and the end, and ``path`` when asked for.
    """
    if integration not in RULES:
        raise ValueError(f"`integration` must be one of {INTEGRATIONS}. Received: integration={integration!r}")
    rule = RULES[integration]
    if step_schedule not in STEP_SCHEDULES:
        raise ValueError(f"`step_schedule` must be one of {STEP_SCHEDULES}. Received: step_schedule={step_schedule!r}")
    single = not isinstance(inputs, (list, tuple))
    inputs, references = as_list(inputs), as_list(references)
    count = len(inputs)
    masks = [None] * count if movable is None else as_list(movable)
    bounds = _bounds(value_range, count)
    reference_representation, reference_outputs = view(references, model_inputs=reference_model_inputs)
    layout = TargetLayout(target_scores(reference_outputs, targets))  # only its static shape is used
    reference_representation = tf.stop_gradient(tf.cast(reference_representation, tf.float32))
    if step_size == defaults.AUTO:
        eta = defaults.AUTO_STEP_FACTOR * _pair_norm([x - r for x, r in zip(inputs, references)]) / steps
    else:
        eta = tf.constant(float(step_size), tf.float32)
    shrink = step_schedule == "shrink"
    score_needed = rule.score_gradient

    def distance_and_score(point: List[tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
        representation, outputs = view(point, model_inputs=model_inputs)
        return _squared_distance(representation, reference_representation), target_scores(outputs, targets)

    def step(state: Dict[str, Any]) -> Dict[str, Any]:
        point, j = state["point"], state["j"]
        with tf.GradientTape(persistent=score_needed) as tape:
            tape.watch(point)
            distance, score = distance_and_score(point)
        distance_gradient = tape.gradient(distance, point, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        gradient = layout.merge(score_gradients(tape, score, point)) if score_needed else None
        del tape
        distance_gradient = [value if mask is None else value * mask for value, mask in zip(distance_gradient, masks)]
        state, following = _next_point(state, distance, distance_gradient, bounds, eta=eta, momentum=momentum,
                                       shrink_factor=shrink_factor if shrink else None,
                                       per_pair_eta=step_size == defaults.AUTO)
        moved = [start - end for start, end in zip(point, following)]
        state = rule.accumulate(
            dict(state, j=j + 1, point=following), layout.spread(moved), gradient, layout.rows(score), j,
            lambda: layout.merge(_segment_gradient(view, point, moved, targets, model_inputs, segment_points)))
        first = tf.equal(j, 0)
        state["first_score"] = tf.where(first, score, state["first_score"])
        state["first_distance"] = tf.where(first, distance, state["first_distance"])
        if return_path:
            state["path"] = [path.write(j + 1, value) for path, value in zip(state["path"], following)]
        return state

    pairs = tf.shape(inputs[0])[0]
    zeros = tf.zeros([pairs], tf.float32)
    score_zeros = zeros if layout.width is None else tf.zeros([pairs, layout.width], tf.float32)
    state = {"j": tf.constant(0), "point": inputs, "total": [tf.zeros_like(x) for x in layout.spread(inputs)],
             "first_score": score_zeros, "first_distance": zeros}
    state.update(_schedule_state(inputs, eta, momentum=momentum, shrink=shrink))
    state.update(rule.start(layout.spread(inputs), layout.rows(score_zeros)))
    if return_path:
        state["path"] = [tf.TensorArray(tf.float32, size=steps + 1, element_shape=x.shape).write(0, x)
                         for x in inputs]
    state = tf.while_loop(lambda state: state["j"] < steps, lambda state: (step(state),), (state,),
                          parallel_iterations=1)[0]
    end = state["point"]
    with tf.GradientTape(persistent=layout.width is not None) as tape:
        tape.watch(end)
        end_distance, end_score = distance_and_score(end)
    end_gradient = layout.merge(score_gradients(tape, end_score, end)) if rule.end_gradient else None
    total = layout.split(rule.finish(state, layout.rows(end_score), end_gradient), inputs)
    results = {
        "attributions": total[0] if single else total,
        "counterfactuals": end[0] if single else end,
        "target_scores": state["first_score"],
        "counterfactual_scores": end_score,
        "representation_distance": tf.sqrt(tf.stack([state["first_distance"], end_distance], axis=1)),
    }
    if return_path:
        paths = [tf.transpose(path.stack(), [1, 0] + list(range(2, len(x.shape) + 1)))
                 for path, x in zip(state["path"], inputs)]
        results["path"] = paths[0] if single else paths
    return results


def _segment_gradient(view: ModelView, point: List[tf.Tensor], moved: List[tf.Tensor], targets: Any,
                      model_inputs: Any, segment_points: int) -> List[tf.Tensor]:
    """The mean score gradient over the ``segment_points`` midpoints of the segment from ``point`` by ``-moved``.

    ``(P, *S)`` per input, or ``(P, T, *S)`` for T targets per pair.
    """
    fractions = [(index + 0.5) / segment_points for index in range(segment_points)]
    points = [tf.concat([start - fraction * step for fraction in fractions], 0) for start, step in zip(point, moved)]
    raw = None if model_inputs is None else [None if value is None else tf.concat([value] * segment_points, 0)
                                             for value in as_list(model_inputs)]
    tiled = targets if callable(targets) else tf.concat([targets] * segment_points, 0)
    with tf.GradientTape(persistent=True) as tape:  # T targets take T gradients (traced once, no runtime cost)
        tape.watch(points)
        scores = target_scores(view(points, model_inputs=raw, representation=False)[1], tiled)
    gradients = score_gradients(tape, scores, points)
    return [tf.reduce_mean(tf.reshape(gradient, tf.concat([[segment_points, -1], tf.shape(gradient)[1:]], 0)), axis=0)
            for gradient in gradients]


def _move(point: List[tf.Tensor], gradient: List[tf.Tensor], norm: tf.Tensor, eta: tf.Tensor,
          bounds: List[Optional[Tuple[tf.Tensor, tf.Tensor]]], *, per_pair_eta: bool) -> List[tf.Tensor]:
    """One GradPath step: ``clip(gamma - eta * g / ||g||, lo, hi)`` per input (no move where ``g = 0``)."""
    following = []
    for start, gradient_part, bound in zip(point, gradient, bounds):
        direction = tf.math.divide_no_nan(gradient_part, per_pair(norm, gradient_part))
        moved_to = start - (per_pair(eta, start) if per_pair_eta else eta) * direction
        if bound is not None:
            moved_to = tf.minimum(tf.maximum(moved_to, bound[0]), bound[1])
        following.append(moved_to)
    return following


def _bounds(value_range: Any, count: int) -> List[Optional[Tuple[tf.Tensor, tf.Tensor]]]:
    """``value_range`` as one ``(low, high)`` float32 tensor pair (or ``None``) per input."""
    if value_range is None:
        return [None] * count
    if isinstance(value_range, list):
        ranges = value_range
    else:
        ranges = [value_range] * count
    return [None if pair is None else tuple(tf.convert_to_tensor(bound, tf.float32) for bound in pair)
            for pair in ranges]


class IG2(PairExplainer):
    """IG² explainer for a Keras model; holds the settings and the compiled GradPath loop.

    Args:
        model: A Keras 3 or tf_keras model (Sequential, functional or subclassed) taking float
            inputs ``(N, *S)`` (or several: a list or dict of them) and returning ``(N, C)``
            scores (or anything a callable target reads).
        representation_layer: Where GradPath measures the distance to the reference: ``None``
            for the input of the layer producing the explained output (the penultimate
            representation, found inside nested models too), a layer name, an index into
            ``model.layers``, a Keras layer, or ``"output"``.
        steps: k, the number of GradPath steps (default :data:`tf_ig2.defaults.IG2_STEPS`).
        step_size: eta, a positive float, or ``"auto"``: ``2 * ||x - x_r||_2 / steps`` per pair,
            so the path is about twice as long as the straight line to the reference.
        value_range: ``(low, high)`` scalars or arrays broadcastable to one input; every path
            point is clipped to it. ``None`` for no clipping. For several inputs, one pair for
            all, or a list or dict with one pair (or ``None``) per input.
        batch_size: The most (input, reference) pairs processed at once; ``None`` for all.
        input_layer: For inputs that cannot move along a gradient (token ids), the layer whose
            output space the path lives in, typically an ``Embedding``: a name, an index, or the
            layer (for several inputs, a list or dict with one entry or ``None`` per input).
            Inputs and references are then raw model inputs (e.g. ``(N, T)`` token ids),
            ``value_range=None`` clips to the per-dimension range of the embedding table, and
            the attribution of each token is the sum over the embedding axis.
        padding_id: With ``input_layer``, the input value of padding positions, which never move
            and get zero attribution (``None``: no padding).
        output: For a model with several outputs (a list or a dict), the output to explain: a
            name or an index.
        integration: How the gradient is integrated along the path, one of :data:`INTEGRATIONS`
            (default :data:`tf_ig2.defaults.IG2_INTEGRATION`; see :func:`integrate_gradpath`).
        segment_points: Gradients per path segment for ``integration="midpoint"``.
        momentum: The GradPath's momentum beta in [0, 1) (default
            :data:`tf_ig2.defaults.IG2_MOMENTUM`); 0 is the published path (see
            :func:`integrate_gradpath`).
        step_schedule: ``"constant"`` (default, the published path: every step ``step_size`` long)
            or ``"shrink"``: each (input, reference) pair's step length starts at ``step_size`` and
            is multiplied by ``shrink_factor`` each time the pair's representation distance rises
            after a step, so that a path that overshoots the valley floor settles instead of
            bouncing (see :func:`integrate_gradpath`).
        shrink_factor: The factor in (0, 1) of ``step_schedule="shrink"`` (default
            :data:`tf_ig2.defaults.IG2_SHRINK_FACTOR`).

    Example:
        >>> explainer = tf_ig2.IG2(model, steps=64, value_range=(0.0, 1.0))
        >>> explanation = explainer.explain(images, references)
        >>> explanation.attributions.shape == images.shape
    """

    method = "ig2"

    def __init__(self, model: Any, *, representation_layer: LayerSpec = None, steps: int = defaults.IG2_STEPS,
                 step_size: Union[str, float] = defaults.AUTO, value_range: Any = None,
                 batch_size: Optional[int] = None, input_layer: LayerSpec = None,
                 padding_id: Optional[int] = defaults.PADDING_ID, output: Union[None, str, int] = None,
                 integration: str = defaults.IG2_INTEGRATION, segment_points: int = defaults.IG2_SEGMENT_POINTS,
                 momentum: float = defaults.IG2_MOMENTUM, step_schedule: str = defaults.IG2_STEP_SCHEDULE,
                 shrink_factor: float = defaults.IG2_SHRINK_FACTOR):
        self.settings = registry.IG2Settings(
            representation_layer=representation_layer, steps=steps, step_size=step_size, value_range=value_range,
            batch_size=batch_size, input_layer=input_layer, padding_id=padding_id, output=output,
            integration=integration, segment_points=segment_points, momentum=momentum, step_schedule=step_schedule,
            shrink_factor=shrink_factor)
        self.steps, self.step_size = self.settings.steps, self.settings.step_size
        self.integration, self.segment_points = self.settings.integration, self.settings.segment_points
        self.momentum = self.settings.momentum
        self.step_schedule, self.shrink_factor = self.settings.step_schedule, self.settings.shrink_factor
        super().__init__(model, batch_size=self.settings.batch_size, representation_layer=representation_layer,
                         need_representation=True, input_layer=input_layer, padding_id=self.settings.padding_id,
                         output=output)
        self._ranges = validation.value_ranges(value_range, self.view.inputs.names)
        #: The checked ``(low, high)`` pair (``None``: no clipping); for several inputs, a list
        #: with one pair or ``None`` per input.
        self.value_range = self._ranges[0] if self._ranges is not None and len(self._ranges) == 1 else self._ranges
        #: With an embedding ``input_layer`` and no ``value_range``, the path is clipped to the
        #: per-dimension range of the embedding table, read inside the compiled graph so that it
        #: follows the table as training changes it.
        ranges = self._ranges or [None] * len(self.view.input_layers)
        self._tables = [getattr(layer, "embeddings", None) if layer is not None and bound is None else None
                        for layer, bound in zip(self.view.input_layers, ranges)]

    @property
    def representation(self) -> str:
        """A description of the representation GradPath moves in."""
        return self.view.representation_description

    def _build(self, signature, options, score, width):
        (return_path,) = options
        explainer = self
        loop_settings = dict(steps=self.steps, step_size=self.step_size, return_path=return_path,
                             integration=self.integration, segment_points=self.segment_points,
                             momentum=self.momentum, step_schedule=self.step_schedule,
                             shrink_factor=self.shrink_factor)
        ranges = self._ranges
        tables = self._tables

        @compiled(self._specs(signature, width))
        def search(inputs, references, targets, model_inputs, movable, reference_model_inputs):
            bounds = list(ranges) if ranges is not None else [None] * len(inputs)
            for index, table in enumerate(tables):
                if table is not None:
                    values = tf.cast(table, tf.float32)
                    bounds[index] = (tf.reduce_min(values, axis=0), tf.reduce_max(values, axis=0))
            masks = explainer._full_raw(movable)
            if masks is not None:
                masks = [None if mask is None else tf.reshape(mask, tf.concat([tf.shape(mask), [1]], 0))
                         for mask in masks]
            return integrate_gradpath(explainer.view, list(inputs), list(references),
                                      score if callable(score) else targets,
                                      value_range=bounds if any(bound is not None for bound in bounds) else None,
                                      model_inputs=explainer._full_raw(model_inputs),
                                      reference_model_inputs=explainer._full_raw(reference_model_inputs),
                                      movable=masks, **loop_settings)
        return search

    def explain(self, inputs: Any, references: Any, targets: Targets = None, *, top_k: Optional[int] = None,
                return_path: bool = False) -> Explanation:
        """Explains ``inputs`` against ``references``.

        Args:
            inputs: ``(N, *S)`` float array or tensor; for a model with several inputs, a list or
                dict (like ``model.inputs``) with one ``(N, *S_i)`` array per input; token ids
                ``(N, T)`` with an ``input_layer``.
            references: ``(R, *S)`` shared by all inputs, or ``(N, R, *S)`` per input, in the
                structure of ``inputs``.
            targets: One target per input: ``None`` (the predicted class), an int, ``(N,)`` ints
                (a flat list of N ints is one per input), or a callable mapping the model output to
                ``(N,)`` scores. T targets per input: ``(N, T)`` ints, ``"top-K"``, or a callable
                returning ``(N, T)`` scores; one GradPath per pair serves all T (``docs/api.md``).
            top_k: K, to explain the K highest logits of each input, highest first (T = K);
                ``targets`` must then be ``None``.
            return_path: Also return the whole ``(N, R, steps + 1, *S)`` path. Memory then grows
                with ``steps``: the peak is about 3 to 5 times the path's own size (the compiled
                loop's buffer, its stacked copy and the result); use ``batch_size`` to bound it.

        Returns:
            An :class:`~tf_ig2.Explanation` with ``attributions`` shaped like ``inputs`` (``(N, T, *S)``
            for T targets per input), ``counterfactuals`` (GradCF) ``(N, R, *S)`` (in the structure of
            ``inputs``; shared by the targets), the scores and ``delta`` (``(N,)`` or ``(N, T)``) and
            ``representation_distance`` ``(N, R, 2)``.

        Raises:
            TypeError, ValueError: On malformed inputs, references, targets or value ranges.

        Warns:
            CompletenessWarning: Once per explainer, when the median relative completeness
                error of a call exceeds :data:`tf_ig2.defaults.COMPLETENESS_WARNING_THRESHOLD`.
            DegenerateWarning: Once per explainer, when an input's score hardly changes between
                it and its GradCF, or no gradient reaches a model input.

        Raises for non-finite scores or gradients a ``ValueError`` naming the input and reference.
        """
        if not isinstance(return_path, bool):
            raise TypeError(f"`return_path` must be a bool. Received: return_path={return_path!r}")
        batch = self._prepare(inputs, references)
        several = len(batch.points) > 1
        for index, bound in enumerate(self._ranges or []):
            suffix = f"[{self.view.inputs.names[index]!r}]" if several else ""
            validation.fits_value_range(f"inputs{suffix}", batch.points[index], bound, batch.points[index].shape[1:])
            validation.fits_value_range(f"references{suffix}", batch.references[index], bound,
                                        batch.points[index].shape[1:])
        class_indices, score = self._batch_targets(targets, batch, top_k)
        function = self._function(self._signature(batch), (return_path,), score, class_indices)
        results = self._run_pairs(function, batch, class_indices)
        explanation = self._explanation(
            results, class_indices, batch,
            representation_distance=results["representation_distance"].astype(np.float32),
            representation=self.representation,
        )
        return explanation

    def _completeness_advice(self) -> str:
        remedies = diagnostics.REMEDIES[self.integration]
        if self.step_schedule == "constant":
            remedies = (f"step_schedule='shrink' (with the left rule it cut this error 3-11x on three "
                        f"trained CNNs), or {remedies}")
        return (f"The {self.integration!r} rule does this on deep ReLU/BatchNorm networks, where the GradPath "
                f"zig-zags; try {remedies}.")


#: The explainers behind :func:`ig2`, most recently used last; bounded, since each holds its model.
_EXPLAINERS = ModelCache(8)

#: The settings :func:`ig2` passes on to :class:`IG2`.
IG2_OPTIONS = registry.IG2Settings.names()


def ig2(model: Any, inputs: Any, references: Any, targets: Targets = None, *, top_k: Optional[int] = None,
        return_path: bool = False, **options: Any) -> Explanation:
    """Explains ``inputs`` with IG²; the functional form of :class:`IG2`.

    The compiled loop is cached per model and settings (compared by value), so repeated calls
    with inputs of the same shape do not retrace.

    Args:
        model: A Keras model.
        inputs: ``(N, *S)`` float array or tensor (a list or dict for several inputs).
        references: ``(R, *S)`` or ``(N, R, *S)``, in the structure of ``inputs``.
        targets: ``None``, an int, ``(N,)`` or ``(N, T)`` ints, ``"top-K"`` or a callable (see
            :meth:`IG2.explain`).
        top_k: K, to explain the K highest logits of each input.
        return_path: Also return the ``(N, R, steps + 1, *S)`` path.
        **options: Any of :class:`IG2`'s settings (:data:`IG2_OPTIONS`).

    Returns:
        An :class:`~tf_ig2.Explanation`.
    """
    unknown = set(options) - set(IG2_OPTIONS)
    if unknown:
        raise TypeError(f"ig2() got unknown option(s) {sorted(unknown)}; expected IG2's settings "
                        f"{', '.join(IG2_OPTIONS)}")
    key = tuple((name, value_key(options[name])) for name in sorted(options))
    explainer = _EXPLAINERS.get(model, key, lambda: IG2(model, **options))
    return explainer.explain(inputs, references, targets, top_k=top_k, return_path=return_path)
