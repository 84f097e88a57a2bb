"""Diagnostics users see: the completeness check of an explanation.

Completeness (Zhuo & Ge 2024, Eq. 10): ``sum A(x) = f_c(x) - mean_r f_c(GradCF_r)``. The relative
error ``|delta| / |f_c(x) - f_c(GradCF)|`` (:attr:`~tf_ig2.Explanation.relative_delta`) is small
on smooth models and can be large on deep ReLU/BatchNorm networks, where the published left
Riemann sum over-counts every GradPath step.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from . import defaults


class CompletenessWarning(UserWarning):
    """The attributions of an explanation do not add up to the score gap."""


#: What to try, by integration rule, when the attributions do not add up: what worked on the
#: trained CNNs of benchmarks/realistic_cnns.py (docs/completeness.md).
REMEDIES = {
    "left": "integration='trapezoid' (same cost; on trained ResNet- and ConvNeXt-style CNNs it cut this error "
            "10-23x and raised DiffID) or integration='rescaled' (exact sums at the same cost, though it lowered "
            "DiffID on a MobileNetV2)",
    "trapezoid": "integration='midpoint' (about 3x the time; under 1% error on smooth networks) or "
                 "integration='rescaled' (exact sums, same cost)",
    "midpoint": "a larger `segment_points`, or integration='rescaled' (exact sums, same cost)",
    "rescaled": "a check of the model for non-finite gradients",
}


def median_relative_delta(explanation: Any) -> float:
    """The median over inputs of ``|delta| / |f(x) - f(counterfactual)|`` (NaN for no inputs)."""
    values = np.asarray(explanation.relative_delta, np.float64)
    return float(np.median(values)) if values.size else float("nan")


def warn_if_incomplete(explanation: Any, integration: str,
                       threshold: float = defaults.COMPLETENESS_WARNING_THRESHOLD, *, stacklevel: int = 2) -> bool:
    """Warns with :class:`CompletenessWarning` when the median relative delta exceeds ``threshold``.

    Returns:
        Whether the warning was issued.
    """
    value = median_relative_delta(explanation)
    if not np.isfinite(value) or value <= threshold:
        return False
    warnings.warn(
        f"The attributions do not add up to the score gap: the median relative completeness error "
        f"|delta| / |f(x) - f(GradCF)| is {value:.3g} (over {len(explanation)} input(s); threshold {threshold:g}). "
        f"The {integration!r} rule does this on deep ReLU/BatchNorm networks, where the GradPath zig-zags; try "
        f"{REMEDIES.get(integration, 'another integration rule')}. See explanation.relative_delta and "
        f"docs/completeness.md.",
        CompletenessWarning, stacklevel=stacklevel + 1)
    return True
