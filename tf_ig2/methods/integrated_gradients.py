"""Integrated Gradients on the straight line (Sundararajan et al., ICML 2017, Eq. 1).

``A(x) = (x - b) * integral_0^1 grad f_c(b + alpha (x - b)) d alpha``, approximated by a quadrature
rule over ``steps`` points, and averaged over the baselines b when several are given:

- ``"trapezoid"`` (default): ``steps`` equally spaced points including both ends, end weights
  halved; exact when the gradient is linear along the line (a quadratic model);
- ``"midpoint"``: the centres of ``steps`` equal intervals;
- ``"uniform"``: ``steps`` equally spaced points including both ends, all weighted ``1/steps``
  (PAIR saliency's rule).
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults
from tf_ig2.engine.compiled_model import as_list
from tf_ig2.engine.model_view import ModelView, score_gradients, target_scores
from tf_ig2.methods import registry, settings
from tf_ig2.methods.base import BaselineExplainer

RULES = settings.IG_RULES


def quadrature(steps: int, rule: str = defaults.IG_RULE) -> Tuple[np.ndarray, np.ndarray]:
    """Returns ``(alphas, weights)``, two ``(steps,)`` float32 arrays whose weights sum to 1."""
    if rule == "trapezoid" and steps < 2:
        raise ValueError(f"`steps` must be >= 2 for the trapezoid rule. Received: steps={steps}")
    if rule == "midpoint":
        alphas = (np.arange(steps) + 0.5) / steps
        weights = np.full(steps, 1.0 / steps)
    elif rule == "uniform":
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / steps)
    elif rule == "trapezoid":
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] *= 0.5
    else:
        raise ValueError(f"`rule` must be one of {RULES}. Received: rule={rule!r}")
    return alphas.astype(np.float32), weights.astype(np.float32)


def score_gradient(view: ModelView, points: Any, targets: Any, model_inputs: Any = None) -> Tuple[tf.Tensor, Any]:
    """``(scores (P,), gradients)`` of the target score at ``points``.

    ``points`` is a ``(P, *S)`` tensor or a list of them (one per model input); the gradients
    have the same structure. For T targets per point (``(P, T)`` class indices or a callable
    returning ``(P, T)`` scores) the scores are ``(P, T)`` and each gradient ``(P, T, *S)``, from
    one forward pass and T backward passes.
    """
    with tf.GradientTape(persistent=True) as tape:  # T targets take T gradients (traced once, no runtime cost)
        tape.watch(points)
        scores = target_scores(view(points, model_inputs=model_inputs, representation=False)[1], targets)
    return scores, score_gradients(tape, scores, points)


def endpoint_scores(view: ModelView, inputs: List[tf.Tensor], baselines: List[tf.Tensor], targets: Any,
                    model_inputs: Any = None) -> Tuple[tf.Tensor, tf.Tensor]:
    """``(f_c(inputs), f_c(baselines))``, two ``(P,)`` (or ``(P, T)``) tensors from one forward pass."""
    both = targets if callable(targets) else tf.concat([targets, targets], 0)
    points = [tf.concat([start, end], 0) for start, end in zip(inputs, baselines)]
    raw = None if model_inputs is None else [None if value is None else tf.concat([value, value], 0)
                                             for value in model_inputs]
    scores = target_scores(view(points, model_inputs=raw, representation=False)[1], both)
    return tuple(tf.split(scores, 2))


def integrate_straight(view: ModelView, inputs: Any, baselines: Any, targets: Any, *,
                       steps: int, rule: str = defaults.IG_RULE, model_inputs: Any = None) -> dict:
    r"""Integrated Gradients of each (input, baseline) pair; a pure tensor function.

    Args:
        view: The model's score (:class:`~tf_ig2.engine.model_view.ModelView`).
        inputs: ``(P, *S)`` float32, or a list with one ``(P, *S_i)`` tensor per model input.
        baselines: Like ``inputs``.
        targets: ``(P,)`` int32 class indices or a callable; for T targets per pair, ``(P, T)``
            class indices or a callable returning ``(P, T)`` scores (one line per pair, T
            gradients at each of its points).
        steps: Number of quadrature points.
        rule: ``"trapezoid"``, ``"midpoint"`` or ``"uniform"``.
        model_inputs: With ``input_layer``\ s, the raw model inputs (one entry or ``None`` per input).

    Returns:
        ``attributions`` (like ``inputs``; ``(P, T, *S)`` per input for T targets),
        ``counterfactuals`` (the baselines), ``target_scores`` and ``counterfactual_scores``
        ``(P,)`` (or ``(P, T)``).
    """
    single = not isinstance(inputs, (list, tuple))
    inputs, baselines = as_list(inputs), as_list(baselines)
    alphas, weights = (tf.constant(values) for values in quadrature(steps, rule))
    differences = [end - start for end, start in zip(inputs, baselines)]
    input_scores, baseline_scores = endpoint_scores(view, inputs, baselines, targets, model_inputs)
    width = None if len(input_scores.shape) == 1 else int(input_scores.shape[1])
    zeros = [tf.zeros_like(x) if width is None else tf.zeros_like(tf.repeat(tf.expand_dims(x, 1), width, axis=1))
             for x in inputs]

    def step(m, totals):
        points = [start + alphas[m] * difference for start, difference in zip(baselines, differences)]
        _, gradients = score_gradient(view, points, targets, model_inputs)
        return m + 1, [total + weights[m] * gradient for total, gradient in zip(totals, gradients)]

    _, totals = tf.while_loop(lambda m, _: m < steps, step, (tf.constant(0), zeros), parallel_iterations=1)
    if width is not None:  # (P, 1, *S): one line for the T targets
        differences = [tf.expand_dims(difference, 1) for difference in differences]
    attributions = [difference * total for difference, total in zip(differences, totals)]
    return {"attributions": attributions[0] if single else attributions,
            "counterfactuals": baselines[0] if single else baselines,
            "target_scores": input_scores, "counterfactual_scores": baseline_scores}


class IntegratedGradients(BaselineExplainer):
    """Straight-line Integrated Gradients with the same targets, batching and result as IG².

    Args:
        model: A Keras model.
        steps: Number of quadrature points (default :data:`tf_ig2.defaults.IG_STEPS`).
        rule: ``"trapezoid"`` (default), ``"midpoint"`` or ``"uniform"``.
        batch_size: The most (input, baseline) pairs processed at once; ``None`` for all.
        output: For a model with several outputs, the one to explain (a name or an index).
        input_layer: For token ids, the embedding layer whose output space the straight line
            lives in (as for :class:`~tf_ig2.IG2`); attributions are summed per token.
        padding_id: With ``input_layer``, the id of padding positions, which get zero attribution.
    """

    method = "ig"

    def __init__(self, model: Any, steps: int = defaults.IG_STEPS, *, rule: str = defaults.IG_RULE,
                 batch_size: Optional[int] = None, output: Union[None, str, int] = None,
                 input_layer: Any = None, padding_id: Optional[int] = defaults.PADDING_ID):
        self.settings = registry.IGSettings(steps=steps, rule=rule, batch_size=batch_size, output=output,
                                            input_layer=input_layer, padding_id=padding_id)
        self.steps, self.rule = self.settings.steps, self.settings.rule
        super().__init__(model, batch_size=self.settings.batch_size, output=output, input_layer=input_layer,
                         padding_id=self.settings.padding_id)

    def _completeness_advice(self) -> str:
        order = "1/steps^2" if self.rule in ("trapezoid", "midpoint") else "1/steps"
        return (f"The {self.rule!r} rule's error falls as {order} on smooth models; try more steps, or check "
                f"the model for gradients that jump (ReLU networks need many steps).")

    def _integrate(self, inputs, baselines, targets, model_inputs):
        return integrate_straight(self.view, inputs, baselines, targets, steps=self.steps, rule=self.rule,
                                  model_inputs=model_inputs)

