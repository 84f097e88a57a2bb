"""Gradient × input (Shrikumar et al., "Not Just a Black Box", arXiv:1605.01713, 2016; Ancona et al.,
"Towards better understanding of gradient-based attribution methods", ICLR 2018)::

    A(x) = (x − b) ⊙ ∇f_c(x)            (b = 0 by default: A(x) = x ⊙ ∇f_c(x))

averaged over the baselines b when several are given. It is the first-order Taylor term of
``f_c(x) − f_c(b)`` around x, and one step of the left Riemann sum on the straight line walked from x
to b (IG² walks its paths from the input and integrates with the left rule; one step of it on the
straight line is this), i.e. straight-line IG with a single gradient, taken at the input end
(``α = 1``)::

    (x − b) ⊙ ∫_0^1 ∇f_c(b + α(x − b)) dα  ≈  (x − b) ⊙ ∇f_c(x)

Completeness holds exactly when ``f_c`` is affine between b and x; otherwise
``delta = Σ A − (f_c(x) − f_c(b))`` is the Taylor remainder
``f_c(b) − f_c(x) − ∇f_c(x) · (b − x)`` (``Σ_i w_i (x_i − b_i)²`` for ``f_c = Σ_i w_i x_i²``). It is
reported in ``Explanation.delta``, but not warned about: the method claims no completeness and
more steps do not exist. Nor is a negligible score gap (its attributions need not vanish then); a
model input that no gradient reaches is named, as for every method.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, diagnostics
from tf_ig2.engine.compiled_model import Batch, as_list
from tf_ig2.engine.model_view import ModelView, target_scores
from tf_ig2.explanation import Explanation
from tf_ig2.methods import registry
from tf_ig2.methods.base import BaselineExplainer
from tf_ig2.methods.integrated_gradients import score_gradient


def gradient_times_input(view: ModelView, inputs: Any, baselines: Any, targets: Any, *,
                         model_inputs: Any = None) -> Dict[str, Any]:
    r"""``(x − b) ⊙ ∇f_c(x)`` of each (input, baseline) pair; a pure tensor function.

    Args:
        view: The model's score (:class:`~tf_ig2.engine.model_view.ModelView`).
        inputs: ``(P, *S)`` float32, or a list with one ``(P, *S_i)`` tensor per model input.
        baselines: Like ``inputs``.
        targets: ``(P,)`` int32 class indices or a callable; for T targets per pair, ``(P, T)``
            class indices or a callable returning ``(P, T)`` scores (T backward passes from one
            forward pass).
        model_inputs: With ``input_layer``\ s, the raw model inputs (one entry or ``None`` per input).

    Returns:
        ``attributions`` (like ``inputs``; ``(P, T, *S)`` per input for T targets),
        ``counterfactuals`` (the baselines), ``target_scores`` ``f_c(x)`` and
        ``counterfactual_scores`` ``f_c(b)``, ``(P,)`` (or ``(P, T)``).
    """
    single = not isinstance(inputs, (list, tuple))
    inputs, baselines = as_list(inputs), as_list(baselines)
    scores, gradients = score_gradient(view, inputs, targets, model_inputs)
    baseline_scores = target_scores(view(baselines, model_inputs=model_inputs, representation=False)[1], targets)
    differences = [x - b for x, b in zip(inputs, baselines)]
    if len(scores.shape) == 2:  # (P, 1, *S): one difference for the T targets
        differences = [tf.expand_dims(difference, 1) for difference in differences]
    attributions = [difference * gradient for difference, gradient in zip(differences, as_list(gradients))]
    return {"attributions": attributions[0] if single else attributions,
            "counterfactuals": baselines[0] if single else baselines,
            "target_scores": scores, "counterfactual_scores": baseline_scores}


class GradientInput(BaselineExplainer):
    """Gradient × input ``(x − b) ⊙ ∇f_c(x)``, with the same targets, batching and result as IG².

    Args:
        model: A Keras model.
        batch_size: The most (input, baseline) pairs processed at once; ``None`` for all.
        output: For a model with several outputs, the one to explain (a name or an index).
        input_layer: For token ids, the embedding layer whose output space x, b and the gradient
            live in (as for :class:`~tf_ig2.IntegratedGradients`); attributions are summed per
            token.
        padding_id: With ``input_layer``, the id of padding positions, which get zero attribution.

    ``explain(inputs, baselines=0.0, targets=None, *, top_k=None)`` as for
    :meth:`tf_ig2.IntegratedGradients.explain`: ``baselines`` a scalar, ``S``, ``(R, *S)``
    (averaged) or ``(N, R, *S)``. One forward and backward pass per (input, baseline) pair, and one
    forward pass for the baseline's score. ``delta`` is the Taylor remainder (zero for a model
    affine between b and x), reported and not warned about.

    Example:
        >>> explanation = tf_ig2.GradientInput(model).explain(images)  # x * grad f_c(x)
    """

    method = "gradient_input"

    def __init__(self, model: Any, *, batch_size: Optional[int] = None, output: Union[None, str, int] = None,
                 input_layer: Any = None, padding_id: Optional[int] = defaults.PADDING_ID):
        self.settings = registry.GradientInputSettings(batch_size=batch_size, output=output,
                                                       input_layer=input_layer, padding_id=padding_id)
        super().__init__(model, batch_size=self.settings.batch_size, output=output, input_layer=input_layer,
                         padding_id=self.settings.padding_id)

    def _integrate(self, inputs, baselines, targets, model_inputs):
        return gradient_times_input(self.view, inputs, baselines, targets, model_inputs=model_inputs)

    def _diagnose(self, explanation: Explanation, attributions: List[np.ndarray], counterfactuals: List[np.ndarray],
                  batch: Batch) -> None:
        """Warns when no gradient reaches a model input that differs from its baselines.

        The score-gap and completeness checks do not apply (see the module's docstring).
        """
        level = 4  # warn_* -> _diagnose -> _explanation -> explain -> the caller
        moved = [bool(np.any(ends != points[:, None])) for ends, points in zip(counterfactuals, batch.points)]
        if "disconnected" not in self._warned and diagnostics.warn_if_disconnected(
                attributions, moved, self.view.inputs.names, stacklevel=level + 1):
            self._warned.add("disconnected")
