"""IG²'s integration rules along the GradPath, one small object each (Zhuo & Ge 2024, Eq. 9 and variants).

With ``d_j = gamma_j - gamma_{j+1}`` the step the GradPath took and ``g = grad f_c``:

- ``"left"`` (published): ``A = sum_j d_j * g(gamma_j)``;
- ``"trapezoid"``: ``A = sum_j d_j * (g(gamma_j) + g(gamma_{j+1})) / 2`` (one gradient more per path);
- ``"midpoint"``: ``A = sum_j d_j * mean_i g(gamma_j - (i + 1/2) / m * d_j)``, ``m = segment_points``;
- ``"rescaled"``: the left rule with each segment made to add up to ``f_c(gamma_j) - f_c(gamma_{j+1})``
  (:func:`rescale_segment`, DeepLIFT's rescale rule per segment).

A rule is chosen by name from :data:`RULES` (like Captum's ``approximation_parameters``). It keeps
its own entries of the loop state: :meth:`Rule.start` adds them, :meth:`Rule.accumulate` adds one
segment to the running ``total`` after each GradPath step, :meth:`Rule.finish` adds what the last
point contributes. The GradPath step itself (:func:`tf_ig2.methods.ig2.integrate_gradpath`) only moves
and clips. Pure tensor functions, run inside the compiled loop.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import tensorflow as tf

from tf_ig2 import defaults

State = Dict[str, Any]


def pair_sum(values: List[tf.Tensor]) -> tf.Tensor:
    """``(P,)`` sum over all non-batch axes of all entries."""
    return tf.add_n([tf.reduce_sum(tf.reshape(value, [tf.shape(value)[0], -1]), axis=1) for value in values])


def per_pair(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """``(P,)`` values reshaped to broadcast against ``like`` ``(P, *S)``."""
    return tf.reshape(values, [-1] + [1] * (len(like.shape) - 1))


def rescale_segment(contributions: List[tf.Tensor], moved: List[tf.Tensor], change: tf.Tensor,
                    min_share: float = defaults.IG2_RESCALE_MIN_SHARE) -> List[tf.Tensor]:
    """One GradPath segment's attributions made to add up to the exact score change.

    With ``c = (gamma_j - gamma_{j+1}) * grad f_c(gamma_j)``, ``s = sum c``, ``a = sum |c|`` and
    ``df = f_c(gamma_j) - f_c(gamma_{j+1})`` (DeepLIFT's rescale rule, per segment)::

        c' = c * df / s                   if |s| > min_share * a
        c' = c + (df - s) * |c| / a       otherwise (the terms cancel; |moved| / sum |moved| if a = 0)

    so ``sum c' = df`` for every pair that moved.

    Args:
        contributions: ``(P, *S_i)`` per input, the left-rule attributions of the segment.
        moved: ``(P, *S_i)`` per input, ``gamma_j - gamma_{j+1}``.
        change: ``(P,)`` ``f_c(gamma_j) - f_c(gamma_{j+1})``.
        min_share: The smallest ``|s| / a`` at which the segment is scaled rather than shifted.

    Returns:
        The corrected ``(P, *S_i)`` per input.
    """
    total = pair_sum(contributions)
    absolute = pair_sum([tf.abs(value) for value in contributions])
    travelled = pair_sum([tf.abs(value) for value in moved])
    scale = abs(total) > min_share * absolute
    ratio = tf.math.divide_no_nan(change, total)
    residual = change - total
    corrected = []
    for contribution, step in zip(contributions, moved):
        share = tf.where(per_pair(absolute > 0, contribution),
                         tf.math.divide_no_nan(tf.abs(contribution), per_pair(absolute, contribution)),
                         tf.math.divide_no_nan(tf.abs(step), per_pair(travelled, step)))
        corrected.append(tf.where(per_pair(scale, contribution), contribution * per_pair(ratio, contribution),
                                  contribution + per_pair(residual, contribution) * share))
    return corrected


def _zeros(inputs: List[tf.Tensor]) -> List[tf.Tensor]:
    return [tf.zeros_like(x) for x in inputs]


class Rule:
    """An integration rule: its loop state, its per-step accumulation and its finish.

    Attributes:
        score_gradient: Whether the loop computes ``g(gamma_j)`` at every path point (all rules
            but ``"midpoint"``, which takes its own gradients inside each segment).
        end_gradient: Whether :meth:`finish` needs ``g`` at the path's last point.
    """

    score_gradient = True
    end_gradient = False

    def start(self, inputs: List[tf.Tensor], zeros: tf.Tensor) -> State:
        """The rule's own entries of the loop state (``zeros`` is ``(P,)``)."""
        return {}

    def accumulate(self, state: State, moved: List[tf.Tensor], gradient: Any, score: tf.Tensor, j: tf.Tensor,
                   segment_gradient: Callable[[], List[tf.Tensor]]) -> State:
        """The state after adding segment ``j`` (``gamma_j`` to ``gamma_{j+1}``, ``moved = d_j``) to ``total``.

        Args:
            state: The loop state, with ``total`` and the rule's own entries.
            moved: ``d_j`` per input.
            gradient: ``g(gamma_j)`` per input (``None`` when :attr:`score_gradient` is false).
            score: ``(P,)`` ``f_c(gamma_j)``.
            j: The step index.
            segment_gradient: Computes the mean gradient over the segment's midpoints.
        """
        raise NotImplementedError

    def finish(self, state: State, end_score: tf.Tensor, end_gradient: Any) -> List[tf.Tensor]:
        """The attributions: ``total`` plus the last point's share."""
        return state["total"]


class Left(Rule):
    """The published left Riemann sum."""

    def accumulate(self, state, moved, gradient, score, j, segment_gradient):
        return dict(state, total=[total + d * g for total, d, g in zip(state["total"], moved, gradient)])


class Trapezoid(Rule):
    """Each point's gradient weighs half of the segments before and after it."""

    end_gradient = True

    def start(self, inputs, zeros):
        return {"previous": _zeros(inputs)}

    def accumulate(self, state, moved, gradient, score, j, segment_gradient):
        total = [total + 0.5 * (d + previous) * g
                 for total, d, previous, g in zip(state["total"], moved, state["previous"], gradient)]
        return dict(state, total=total, previous=moved)

    def finish(self, state, end_score, end_gradient):
        return [value + 0.5 * previous * g for value, previous, g in zip(state["total"], state["previous"],
                                                                          end_gradient)]


class Midpoint(Rule):
    """The mean gradient over ``segment_points`` midpoints of each segment."""

    score_gradient = False

    def accumulate(self, state, moved, gradient, score, j, segment_gradient):
        return dict(state, total=[total + d * g for total, d, g in zip(state["total"], moved, segment_gradient())])


class Rescaled(Rule):
    """The left rule, each segment rescaled to its exact score change once the next score is known."""

    def start(self, inputs, zeros):
        return {"previous": _zeros(inputs), "pending": _zeros(inputs), "pending_score": zeros}

    def accumulate(self, state, moved, gradient, score, j, segment_gradient):
        corrected = rescale_segment(state["pending"], state["previous"], state["pending_score"] - score)
        started = tf.cast(j > 0, tf.float32)
        return dict(state, total=[total + started * value for total, value in zip(state["total"], corrected)],
                    pending=[d * g for d, g in zip(moved, gradient)], previous=moved, pending_score=score)

    def finish(self, state, end_score, end_gradient):
        corrected = rescale_segment(state["pending"], state["previous"], state["pending_score"] - end_score)
        return [value + correction for value, correction in zip(state["total"], corrected)]


#: The rules by name (the names are :data:`tf_ig2.methods.settings.INTEGRATIONS`).
RULES: Dict[str, Rule] = {"left": Left(), "trapezoid": Trapezoid(), "midpoint": Midpoint(), "rescaled": Rescaled()}
