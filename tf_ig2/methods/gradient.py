"""The plain gradient, or "saliency" (Simonyan, Vedaldi and Zisserman, ICLR 2014 workshop, Eq. 2 without
the absolute value)::

    A(x) = ∇f_c(x)

One forward and one backward pass per input (T backward passes for T targets), no path and no
baseline. The gradient says how the target score changes for a small change of each feature, not how
much each feature contributed to the score, so completeness (``sum A = f_c(x) - f_c(x')``) does not
apply: ``Explanation.delta`` is NaN, the counterfactual is the input itself (a path that ends where it
starts: ``counterfactual_scores == target_scores``) and no completeness or score-gap warning is given.

Every registered method takes its references through one keyword so that
:func:`~tf_ig2.explain_dataset`, the training callbacks and ``tf-ig2 explain`` can run any of them; the
methods whose result depends on the input alone (this one, Blur IG) share
:class:`ReferenceFreeExplainer`, which accepts ``baselines``, checks them as every method checks its
baselines, and does not use them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Union

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, diagnostics
from tf_ig2.engine.compiled_model import Batch, as_list
from tf_ig2.engine.model_view import ModelView
from tf_ig2.explanation import Explanation
from tf_ig2.methods import registry
from tf_ig2.methods.base import BaselineExplainer
from tf_ig2.methods.integrated_gradients import score_gradient


def input_gradients(view: ModelView, inputs: Any, targets: Any, *, model_inputs: Any = None,
                    padding_id: Optional[int] = None) -> Dict[str, Any]:
    r"""The gradient of the target score at each input; a pure tensor function.

    Args:
        view: The model's score (:class:`~tf_ig2.engine.model_view.ModelView`).
        inputs: ``(P, *S)`` float32, or a list with one ``(P, *S_i)`` tensor per model input (for an
            input with an ``input_layer``, its embedding ``(P, *T, D)``).
        targets: ``(P,)`` int32 class indices or a callable; for T targets per input, ``(P, T)``
            class indices or a callable returning ``(P, T)`` scores (T backward passes from one
            forward pass).
        model_inputs: With ``input_layer``\ s, the raw model inputs (one entry or ``None`` per input).
        padding_id: With ``input_layer``\ s, the token id whose positions get a zero gradient.

    Returns:
        ``attributions`` (like ``inputs``; ``(P, T, *S)`` per input for T targets), the gradient;
        ``counterfactuals`` (the inputs themselves); ``target_scores`` and
        ``counterfactual_scores`` (both ``f_c(x)``, ``(P,)`` or ``(P, T)``).
    """
    single = not isinstance(inputs, (list, tuple))
    inputs = as_list(inputs)
    scores, gradients = score_gradient(view, inputs, targets, model_inputs)
    gradients = as_list(gradients)
    several = len(scores.shape) == 2
    for index, raw in enumerate(model_inputs or []):
        if raw is not None and padding_id is not None:  # padding gets no attribution, as in every method
            kept = tf.cast(tf.not_equal(raw, tf.cast(padding_id, raw.dtype)), gradients[index].dtype)[..., None]
            gradients[index] = gradients[index] * (tf.expand_dims(kept, 1) if several else kept)
    return {"attributions": gradients[0] if single else gradients,
            "counterfactuals": inputs[0] if single else inputs,
            "target_scores": scores, "counterfactual_scores": scores}


class ReferenceFreeExplainer(BaselineExplainer):
    """Base of the methods whose result depends on the input alone (:class:`Gradient`, Blur IG).

    :meth:`explain` takes ``baselines`` like every baseline method, so that the same call works for
    each registered method (:func:`~tf_ig2.explain_dataset`, the callbacks and the command line pass
    references to all of them): given, they are checked like any method's baselines (their
    structure, shape and values) and then not used. Each input is then one pair, ``(x, x)``: no work
    is repeated per baseline, and the per-pair function (:meth:`_integrate`) sees the input as its own
    baseline. ``counterfactuals`` are ``(N, 1, *S)``: where the method's path ends (the input itself
    for the gradient, the blurred input for Blur IG).
    """

    def _check_method_inputs(self, inputs: Any) -> None:
        """Checks what the method needs of the raw inputs, before anything else (nothing here)."""

    def explain(self, inputs: Any, baselines: Any = None, targets: Any = None, *,
                top_k: Optional[int] = None) -> Explanation:
        """Explains ``inputs``; ``baselines`` are checked and not used.

        Args:
            inputs: ``(N, *S)`` float array or tensor; for a model with several inputs, a list or
                dict with one ``(N, *S_i)`` array per input; token ids ``(N, T)`` with an
                ``input_layer``.
            baselines: ``None`` (default), or any baselines another method would take (a scalar,
                ``S``, ``(R, *S)`` or ``(N, R, *S)`` in the structure of ``inputs``): checked like
                theirs, then not used, since the result depends on the input alone.
            targets: As for :meth:`tf_ig2.IntegratedGradients.explain`: ``None`` (the predicted
                class), an int, ``(N,)`` ints or a callable; ``(N, T)`` ints, ``"top-K"`` or a
                callable returning ``(N, T)`` scores for T targets per input.
            top_k: K, to explain the K highest logits of each input, highest first (T = K).

        Returns:
            An :class:`~tf_ig2.Explanation` with ``attributions`` shaped like ``inputs`` (``(N, L)``
            per token with an ``input_layer``), or ``(N, T, *S)`` for T targets per input, and
            ``counterfactuals`` ``(N, 1, *S)``.

        Raises:
            TypeError, ValueError: On malformed inputs, baselines or targets; ValueError when a
                score or gradient is not finite.
        """
        self._check_method_inputs(inputs)
        if baselines is None:  # the inputs themselves, one per input: (N, 1, *S)
            baselines = self.view.inputs.pack([array[:, None] for array in as_list(self.check_inputs(inputs))])
        given = self._prepare(inputs, baselines, allow_scalar=True)
        batch = Batch(points=given.points, references=[points[:, None] for points in given.points],
                      raw=given.raw, reference_raw=[None if raw is None else raw[:, None] for raw in given.raw],
                      movable=given.movable)
        class_indices, score = self._batch_targets(targets, batch, top_k)
        function = self._function(self._signature(batch), (), score, class_indices)
        results = self._run_pairs(function, batch, class_indices)
        return self._explanation(results, class_indices, batch)


class Gradient(ReferenceFreeExplainer):
    """The plain gradient ``∇f_c(x)`` ("saliency"), with the same targets, batching and result as IG².

    Args:
        model: A Keras model.
        batch_size: The most inputs processed at once; ``None`` for all.
        output: For a model with several outputs, the one to explain (a name or an index).
        input_layer: For token ids, the embedding layer whose output space the gradient is taken
            in (as for :class:`~tf_ig2.IntegratedGradients`); the gradient is summed over the
            embedding axis, one value per token.
        padding_id: With ``input_layer``, the id of padding positions, which get zero attribution.

    ``explain(inputs, baselines=None, targets=None, *, top_k=None)``: see
    :meth:`ReferenceFreeExplainer.explain`; ``baselines`` are checked and not used.
    ``Explanation.delta`` and ``relative_delta`` are NaN (completeness does not apply to a
    gradient), ``counterfactuals`` are the inputs ``(N, 1, *S)`` and ``counterfactual_scores``
    equal ``target_scores``. The only diagnostic given is :class:`~tf_ig2.DegenerateWarning` when
    the gradient is exactly zero for every explained input of a model input (no gradient reaches
    it).

    Example:
        >>> explanation = tf_ig2.Gradient(model).explain(images)
        >>> explanation.attributions.shape == images.shape
    """

    method = "gradient"

    def __init__(self, model: Any, *, batch_size: Optional[int] = None, output: Union[None, str, int] = None,
                 input_layer: Any = None, padding_id: Optional[int] = defaults.PADDING_ID):
        self.settings = registry.GradientSettings(batch_size=batch_size, output=output, input_layer=input_layer,
                                                  padding_id=padding_id)
        super().__init__(model, batch_size=self.settings.batch_size, output=output, input_layer=input_layer,
                         padding_id=self.settings.padding_id)

    def _integrate(self, inputs, baselines, targets, model_inputs):
        del baselines  # the inputs themselves
        return input_gradients(self.view, inputs, targets, model_inputs=model_inputs, padding_id=self.padding_id)

    def _diagnose(self, explanation: Explanation, attributions: List[np.ndarray], counterfactuals: List[np.ndarray],
                  batch: Batch) -> None:
        """Warns when no gradient reaches a model input; the score-gap and completeness checks do not apply."""
        level = 5  # warn_* -> _diagnose -> base _explanation -> _explanation -> explain -> the caller
        if "disconnected" not in self._warned and diagnostics.warn_if_disconnected(
                attributions, [True] * len(attributions), self.view.inputs.names, stacklevel=level + 1):
            self._warned.add("disconnected")

    def _explanation(self, results: Dict[str, Any], targets: Optional[np.ndarray], batch: Batch,
                     **extra: Any) -> Explanation:
        explanation = super()._explanation(results, targets, batch, **extra)
        # Completeness does not apply: a NaN delta, rather than sum(A) - 0, says so.
        return dataclasses.replace(explanation, delta=np.full_like(explanation.delta, np.nan))
