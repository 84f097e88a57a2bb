"""Completeness error (Sundararajan et al., 2017) and stability under input noise (Yeh et al., 2019).

See :mod:`tf_ig2.metrics` for the definitions.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional, Tuple

import numpy as np

from tf_ig2 import defaults, validation
from tf_ig2.explanation import Explanation

#: The reductions :func:`stability` accepts over the noisy copies.
STABILITY_REDUCTIONS = ("max", "mean")


# -- completeness and stability ------------------------------------------------------------------

def completeness_error(explanation: Explanation, *, relative: bool = False) -> np.ndarray:
    """How far the attributions are from summing to the score difference.

    Args:
        explanation: An :class:`~tf_ig2.Explanation` of N inputs (one or T targets each).
        relative: Return ``|delta| / |f_c(x) - f_c(x')|`` instead of ``|delta|``.

    Returns:
        ``(N,)`` float32: ``|sum A(x) - (f_c(x) - mean_r f_c(x'_r))|``, or its relative version;
        ``(N, T)``, per input and target, for T targets per input.
    """
    if not isinstance(explanation, Explanation):
        raise TypeError(f"`explanation` must be a tf_ig2.Explanation. Received: {type(explanation).__name__}")
    if not isinstance(relative, bool):
        raise TypeError(f"`relative` must be a bool. Received: relative={relative!r}")
    values = explanation.relative_delta if relative else np.abs(explanation.delta)
    return np.asarray(values, dtype=np.float32)


def _explained(name: str, result: Any, shape: Tuple[int, ...]) -> Tuple[np.ndarray, Optional[int]]:
    """``explainer_fn``'s attributions as ``(N, T, F)`` float64 (``T = 1`` for one target) and T (``None``)."""
    if isinstance(result, Explanation):
        result = result.attributions
    values = validation.float_array(name, result)
    several = values.ndim == len(shape) + 1 and values.shape[:1] + values.shape[2:] == shape
    if values.shape != shape and not several:
        raise ValueError(f"`explainer_fn` must return attributions of the inputs' shape {shape}, or (N, T, *S) for "
                         f"T targets per input. Received: shape {values.shape}")
    width = int(values.shape[1]) if several else None
    return values.reshape(shape[0], width or 1, -1).astype(np.float64), width


def stability(
    explainer_fn: Callable[[np.ndarray], Any],
    inputs: Any,
    *,
    noise_scale: float = defaults.METRIC_STABILITY_NOISE_SCALE,
    samples: int = defaults.METRIC_STABILITY_SAMPLES,
    seed: Optional[int] = 0,
    reduction: str = defaults.METRIC_STABILITY_REDUCTION,
    value_range: Any = None,
) -> np.ndarray:
    """Relative change of the attributions under small Gaussian input noise (lower is better).

    For every input x and noisy copy ``x + e``, ``e ~ N(0, noise_scale^2)`` per feature, the change
    is ``||A(x + e) - A(x)||_2 / ||A(x)||_2``; ``reduction="max"`` keeps the largest change over
    the ``samples`` copies (max-sensitivity), ``"mean"`` their average. ``explainer_fn`` is called
    once on the inputs and once per copy, each time on the whole ``(N, *S)`` batch; fix the
    explained class inside it (e.g. ``targets=labels``) so noise cannot change what is explained.
    When it returns ``(N, T, *S)`` attributions (T targets per input, e.g. ``targets`` of shape
    ``(N, T)``), the change is measured per target, as if each target's attributions were returned alone.

    Args:
        explainer_fn: Maps ``(N, *S)`` float32 inputs to ``(N, *S)`` (or ``(N, T, *S)``)
            attributions or an :class:`~tf_ig2.Explanation`.
        inputs: ``(N, *S)`` float array or tensor.
        noise_scale: Noise standard deviation, in input units, > 0.
        samples: Number of noisy copies per input.
        seed: Seed of the noise (``None`` for fresh noise each call).
        reduction: ``"max"`` or ``"mean"``.
        value_range: ``None``, or ``(low, high)`` bounds the noisy inputs are clipped to (e.g.
            the explainer's own ``value_range``).

    Returns:
        ``(N,)`` float32 changes (an all-zero ``A(x)`` counts as norm ``float32`` tiny); ``(N, T)``
        for T targets per input.

    Raises:
        TypeError, ValueError: On malformed arguments or attributions of the wrong shape.
    """
    if not callable(explainer_fn):
        raise TypeError(f"`explainer_fn` must be callable. Received: {type(explainer_fn).__name__}")
    inputs = validation.float_array("inputs", inputs)
    if isinstance(noise_scale, bool) or not isinstance(noise_scale, numbers.Real):
        raise TypeError(f"`noise_scale` must be a positive number. Received: noise_scale={noise_scale!r}")
    if not math.isfinite(noise_scale) or noise_scale <= 0:
        raise ValueError(f"`noise_scale` must be a positive number. Received: noise_scale={noise_scale!r}")
    samples = validation.positive_int("samples", samples)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"`seed` must be None or an int. Received: seed={seed!r}")
    if reduction not in STABILITY_REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {STABILITY_REDUCTIONS}. Received: reduction={reduction!r}")
    bounds = validation.value_range(value_range)
    validation.fits_value_range("inputs", inputs, bounds, inputs.shape[1:])
    generator = np.random.default_rng(seed)
    original, width = _explained("explainer_fn(inputs)", explainer_fn(inputs), inputs.shape)
    norms = np.maximum(np.linalg.norm(original, axis=-1), np.finfo(np.float32).tiny)
    changes = np.empty((samples,) + norms.shape, np.float64)
    for sample in range(samples):
        noisy = inputs + generator.normal(0.0, noise_scale, size=inputs.shape).astype(np.float32)
        if bounds is not None:
            noisy = np.clip(noisy, bounds[0], bounds[1]).astype(np.float32)
        moved, moved_width = _explained("explainer_fn(noisy inputs)", explainer_fn(noisy), inputs.shape)
        if moved_width != width:
            raise ValueError(f"`explainer_fn` must return attributions of one shape for the inputs and their noisy "
                             f"copies. Received: {width or 'one'} target(s) per input, then {moved_width or 'one'}")
        changes[sample] = np.linalg.norm(moved - original, axis=-1) / norms
    reduced = changes.max(axis=0) if reduction == "max" else changes.mean(axis=0)
    return reduced.astype(np.float32) if width is not None else reduced[:, 0].astype(np.float32)
