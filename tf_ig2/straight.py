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
from .pairs import BaselineExplainer
from .targets import ModelView, target_scores

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


class IntegratedGradients(BaselineExplainer):
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

    def _integrate(self, inputs, baselines, targets):
        return integrate_straight(self._view, inputs, baselines, targets, steps=self.steps, rule=self.rule)

