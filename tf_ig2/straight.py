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

from typing import Any, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from . import defaults, validation
from .explanation import Explanation
from .pairs import PairExplainer
from .targets import ModelView, Targets, target_scores

RULES = ("trapezoid", "midpoint", "uniform")


def quadrature(steps: int, rule: str = defaults.IG_RULE) -> Tuple[np.ndarray, np.ndarray]:
    """Returns ``(alphas, weights)``, two ``(steps,)`` float32 arrays whose weights sum to 1."""
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


def score_gradient(view: ModelView, points: tf.Tensor, targets: Any) -> Tuple[tf.Tensor, tf.Tensor]:
    """``(scores (P,), gradients (P, *S))`` of the target score at ``points``."""
    with tf.GradientTape() as tape:
        tape.watch(points)
        scores = target_scores(view(points, representation=False)[1], targets)
    return scores, tape.gradient(scores, points, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def integrate_straight(view: ModelView, inputs: tf.Tensor, baselines: tf.Tensor, targets: Any, *,
                       steps: int, rule: str = defaults.IG_RULE) -> dict:
    """Integrated Gradients of each (input, baseline) pair; a pure tensor function.

    Args:
        view: The model's score (:class:`~tf_ig2.targets.ModelView`).
        inputs: ``(P, *S)`` float32.
        baselines: ``(P, *S)`` float32.
        targets: ``(P,)`` int32 class indices or a callable.
        steps: Number of quadrature points.
        rule: ``"trapezoid"``, ``"midpoint"`` or ``"uniform"``.

    Returns:
        ``attributions`` ``(P, *S)``, ``counterfactuals`` (the baselines), ``target_scores`` and
        ``counterfactual_scores`` ``(P,)``.
    """
    alphas, weights = (tf.constant(values) for values in quadrature(steps, rule))
    difference = inputs - baselines

    def step(m, total):
        _, gradient = score_gradient(view, baselines + alphas[m] * difference, targets)
        return m + 1, total + weights[m] * gradient

    _, total = tf.while_loop(lambda m, _: m < steps, step, (tf.constant(0), tf.zeros_like(inputs)),
                             parallel_iterations=1)
    both = targets if callable(targets) else tf.concat([targets, targets], 0)
    scores = target_scores(view(tf.concat([inputs, baselines], 0), representation=False)[1], both)
    start, end = tf.split(scores, 2)
    return {"attributions": difference * total, "counterfactuals": baselines,
            "target_scores": start, "counterfactual_scores": end}


class IntegratedGradients(PairExplainer):
    """Straight-line Integrated Gradients with the same targets, batching and result as IG².

    Args:
        model: A Keras model.
        steps: Number of quadrature points (default :data:`tf_ig2.defaults.IG_STEPS`).
        rule: ``"trapezoid"`` (default), ``"midpoint"`` or ``"uniform"``.
        batch_size: The most (input, baseline) pairs processed at once; ``None`` for all.
        output: For a model with several outputs, the one to explain (a name or an index).
    """

    method = "ig"

    def __init__(self, model: Any, steps: int = defaults.IG_STEPS, *, rule: str = defaults.IG_RULE,
                 batch_size: Optional[int] = None, output: Union[None, str, int] = None):
        self.steps = validation.positive_int("steps", steps)
        if rule not in RULES:
            raise ValueError(f"`rule` must be one of {RULES}. Received: rule={rule!r}")
        if rule == "trapezoid" and self.steps < 2:
            raise ValueError(f"`steps` must be >= 2 for the trapezoid rule. Received: steps={steps}")
        self.rule = rule
        super().__init__(model, batch_size=batch_size, output=output)

    def _build(self, sample_shape, options, score):
        view, steps, rule = self._view, self.steps, self.rule
        spec = tf.TensorSpec([None, *sample_shape], tf.float32)

        @tf.function(input_signature=[spec, spec, tf.TensorSpec([None], tf.int32)])
        def integrate(inputs, baselines, targets):
            return integrate_straight(view, inputs, baselines, score if callable(score) else targets,
                                      steps=steps, rule=rule)

        return integrate

    def explain(self, inputs: Any, baselines: Any = 0.0, targets: Targets = None) -> Explanation:
        """Explains ``inputs`` against ``baselines``.

        Args:
            inputs: ``(N, *S)`` float array or tensor.
            baselines: A scalar or an ``S``-shaped array (one baseline for all), ``(R, *S)``
                (R baselines shared by all inputs, attributions averaged over them) or
                ``(N, R, *S)`` (per input). A single per-input baseline is ``(N, 1, *S)``.
            targets: ``None`` (the predicted class), an int, ``(N,)`` ints or a callable.

        Returns:
            An :class:`~tf_ig2.Explanation`; ``counterfactuals`` holds the baselines
            ``(N, R, *S)``.
        """
        inputs = self._check_inputs(inputs)
        baselines = validation.references_array("baselines", baselines, inputs.shape, allow_scalar=True)
        class_indices, score = self._resolve_targets(targets, inputs)
        function = self._function(tuple(inputs.shape[1:]), (), score)
        results = self._run_pairs(function, inputs, baselines, class_indices)
        return self._explanation(results, class_indices)
