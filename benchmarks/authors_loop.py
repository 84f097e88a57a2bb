"""A literal eager port of the published IG² loop, the baseline of ``speed.py``.

Zhuo & Ge's reference code (built on PAIR saliency's ``CoreSaliency``) explains one input at a
time and runs two passes in numpy around framework calls (Eqs. 7-10 of the paper):

1. GradPath search, storing the whole path: at every step one forward pass to the representation
   layer, the loss ``||phi(z) - phi(x_r)||^2``, one backward pass, the gradient brought to numpy,
   divided by its per-sample L2 norm, a step of length eta and a clip to the value range;
2. integration over the stored path: the target-logit gradient at every point but the last,
   summed as ``sum_j (gamma_j - gamma_{j+1}) * grad f_c(gamma_j)``.

This port keeps that structure (per step eager calls and numpy round trips, the path kept in a
Python list) in TensorFlow. With ``batch_references=False`` (the default) every (input, reference)
pair runs alone, one sample per call; with ``True`` the R references of one input share each call,
as in the published ``GetMask``. As in the published ``normalize_by_2norm``, a zero gradient is
not guarded against (it would give NaN).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from tf_ig2 import defaults

RepresentationAndLogits = Callable[[tf.Tensor], Sequence[tf.Tensor]]


def representation_and_logits(model: Any, representation_layer: str, logits_layer: str) -> keras.Model:
    """A functional sub-model ``z -> (phi(z), logits(z))`` of a functional or Sequential model.

    Args:
        model: A built Keras model with symbolic inputs.
        representation_layer: Name of the layer whose output is the representation.
        logits_layer: Name of the layer whose output is the pre-softmax logits ``(P, C)``.

    Returns:
        A Keras model mapping ``(P, *S)`` inputs to ``[(P, ...) representation, (P, C) logits]``.
    """
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, [model.get_layer(representation_layer).output,
                                model.get_layer(logits_layer).output])


def normalize_by_2norm(values: np.ndarray) -> np.ndarray:
    """Divides each sample of ``(B, *S)`` ``values`` by its L2 norm (no zero guard, as published)."""
    norm = np.sqrt(np.sum(np.square(values).reshape(len(values), -1), axis=1))
    return values / norm.reshape((-1,) + (1,) * (values.ndim - 1))


def _distance_gradient(function: RepresentationAndLogits, points: np.ndarray,
                       reference_representation: tf.Tensor) -> np.ndarray:
    """``(B, *S)`` numpy gradient of ``||phi(z) - phi(x_r)||^2`` at ``points``."""
    points = tf.constant(points)
    with tf.GradientTape() as tape:
        tape.watch(points)
        representation = function(points)[0]
        loss = tf.reduce_sum(tf.square(representation - reference_representation))
    return tape.gradient(loss, points).numpy()


def _logit_gradient(function: RepresentationAndLogits, points: np.ndarray, target: int) -> np.ndarray:
    """``(B, *S)`` numpy gradient of the logit of class ``target`` at ``points``."""
    points = tf.constant(points)
    with tf.GradientTape() as tape:
        tape.watch(points)
        logits = function(points)[1]
        score = tf.reduce_sum(logits[:, target])
    return tape.gradient(score, points).numpy()


def gradpath(function: RepresentationAndLogits, inputs: np.ndarray, references: np.ndarray, *,
             steps: int, step_size: Union[np.ndarray, float],
             value_range: Optional[Tuple[float, float]]) -> list:
    """The first pass: the GradPath of ``B`` pairs as a list of ``steps + 1`` ``(B, *S)`` arrays.

    Args:
        function: ``z -> (phi(z), logits(z))``.
        inputs: ``(B, *S)`` float32, the explained input repeated once per reference.
        references: ``(B, *S)`` float32.
        steps: k.
        step_size: eta, a float or a ``(B, 1, ..., 1)`` array of per-pair step lengths.
        value_range: ``(low, high)`` or ``None``.
    """
    reference_representation = tf.stop_gradient(function(tf.constant(references))[0])
    delta = np.zeros_like(inputs)
    path = [inputs]
    for _ in range(steps):
        gradient = _distance_gradient(function, inputs + delta, reference_representation)
        delta = delta - normalize_by_2norm(gradient) * step_size
        if value_range is not None:
            delta = np.clip(inputs + delta, value_range[0], value_range[1]) - inputs
        path.append(inputs + delta)
    return path


def integrate(function: RepresentationAndLogits, path: list, target: int) -> np.ndarray:
    """The second pass: ``sum_j (gamma_j - gamma_{j+1}) * grad f_c(gamma_j)``, ``(B, *S)``."""
    total = np.zeros_like(path[0])
    previous = path[0]
    for point in path[1:]:
        total += (previous - point) * _logit_gradient(function, previous, target)
        previous = point
    return total


def authors_ig2(function: RepresentationAndLogits, inputs: np.ndarray, references: np.ndarray,
                targets: Sequence[int], *, steps: int = defaults.IG2_STEPS,
                step_size: Union[str, float] = defaults.AUTO,
                value_range: Optional[Tuple[float, float]] = None,
                batch_references: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """IG² attributions and GradCF by the published two-pass loop.

    Args:
        function: ``z -> (phi(z), logits(z))``, e.g. :func:`representation_and_logits`.
        inputs: ``(N, *S)`` float32.
        references: ``(R, *S)`` shared by all inputs, or ``(N, R, *S)`` per input.
        targets: ``(N,)`` class indices.
        steps: k, the number of GradPath steps.
        step_size: eta, or ``"auto"`` for ``AUTO_STEP_FACTOR * ||x - x_r||_2 / steps`` per pair
            (the rule of :class:`tf_ig2.IG2`).
        value_range: ``(low, high)`` scalars, or ``None`` for no clipping.
        batch_references: Run the R references of one input as one batch (the published
            ``GetMask``) instead of one pair at a time.

    Returns:
        ``(attributions, counterfactuals)``: ``(N, *S)`` float32 attributions averaged over the
        references and ``(N, R, *S)`` float32 GradCF, the end of every path.
    """
    inputs = np.asarray(inputs, np.float32)
    references = np.asarray(references, np.float32)
    if references.ndim == inputs.ndim:
        references = np.broadcast_to(references[None], (len(inputs),) + references.shape)
    count = references.shape[1]
    attributions = np.zeros_like(inputs)
    counterfactuals = np.zeros(references.shape, np.float32)
    groups = [np.arange(count)] if batch_references else [np.array([r]) for r in range(count)]
    for n in range(len(inputs)):
        for group in groups:
            pair_references = np.ascontiguousarray(references[n, group])
            pair_inputs = np.repeat(inputs[n:n + 1], len(group), axis=0)
            if step_size == defaults.AUTO:
                difference = (pair_inputs - pair_references).reshape(len(group), -1)
                eta = defaults.AUTO_STEP_FACTOR * np.sqrt(np.sum(np.square(difference), axis=1)) / steps
                eta = eta.astype(np.float32).reshape((-1,) + (1,) * (inputs.ndim - 1))
            else:
                eta = float(step_size)
            path = gradpath(function, pair_inputs, pair_references, steps=steps, step_size=eta,
                            value_range=value_range)
            attributions[n] += integrate(function, path, int(targets[n])).sum(axis=0) / count
            counterfactuals[n, group] = path[-1]
    return attributions, counterfactuals
