"""Diagnostics users see: non-finite results, degenerate score gaps, dead inputs, completeness.

Completeness (Zhuo & Ge 2024, Eq. 10; Sundararajan et al. 2017 for straight-line IG):
``sum A(x) = f_c(x) - mean_r f_c(x'_r)``, with ``x'_r`` the end of each path (GradCF for IG², the
baseline for the other methods). The relative error ``|delta| / |f_c(x) - f_c(x')|``
(:attr:`~tf_ig2.Explanation.relative_delta`) is small on smooth models and can be large on deep
ReLU/BatchNorm networks, where the published left Riemann sum over-counts every GradPath step.
When the gap itself is negligible there is nothing to attribute: the ratio is NaN and
:class:`DegenerateWarning` says what to check. The checks take numpy arrays and only warn or raise.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional, Sequence

import numpy as np

from tf_ig2 import defaults


class CompletenessWarning(UserWarning):
    """The attributions of an explanation do not add up to the score gap."""


class DegenerateWarning(UserWarning):
    """There is nothing to attribute: the score does not change along the path, or no gradient reaches an input."""


#: What to try, by IG² integration rule, when the attributions do not add up: what worked on the
#: trained CNNs of benchmarks/realistic_cnns.py (docs/completeness.md). Options are written as
#: ``name='value'``; the command line shows them as ``--name value``.
REMEDIES = {
    "left": "integration='trapezoid' (same cost; on three trained CNNs it cut this error 1.4-25x and raised DiffID "
            "on two, though it lowered it on a MobileNetV2) or integration='rescaled' (exact sums at the same cost, "
            "though it lowered DiffID on a MobileNetV2)",
    "trapezoid": "integration='midpoint' (about 3x the time; under 1% error on smooth networks) or "
                 "integration='rescaled' (exact sums, same cost)",
    "midpoint": "a larger segment_points, or integration='rescaled' (exact sums, same cost)",
    "rescaled": "a check of the model for non-finite gradients",
}


def median_relative_delta(explanation: Any) -> float:
    """The median over inputs of ``|delta| / |f(x) - f(counterfactual)|``, NaN inputs left out.

    With T targets per input (``(N, T)`` deltas) the median is over all N·T (input, target)
    pairs. NaN when there are no inputs or every gap is negligible.
    """
    values = np.asarray(explanation.relative_delta, np.float64)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else float("nan")


def _first_bad(values: np.ndarray) -> Optional[tuple]:
    """``(input, reference)`` of the first pair of ``(N, R, ...)`` values holding a NaN or inf."""
    bad = ~np.isfinite(values.reshape(values.shape[:2] + (-1,))).all(axis=-1)
    return tuple(int(i) for i in np.argwhere(bad)[0]) if bad.any() else None


def check_finite(results: Dict[str, Any], *, end_name: str, input_names: Sequence[str]) -> None:
    """Raises a ``ValueError`` naming where a score or a gradient was NaN or infinite.

    Args:
        results: Per-pair results: ``target_scores`` and ``counterfactual_scores`` ``(N, R)``,
            ``attributions`` ``(N, R, *S)`` (a list of them for several inputs); with T targets
            per input ``(N, R, T)`` and ``(N, R, T, *S)``.
        end_name: What the end of the path is called ("GradCF" or "baseline").
        input_names: The model's input names, to name the input of a non-finite gradient.
    """
    where = _first_bad(np.asarray(results["target_scores"]))
    if where is not None:
        raise ValueError(f"The model's score of explained input {where[0]} is not finite (NaN or inf): the model "
                         f"returns non-finite outputs for this input. Check the input's values and the model "
                         f"(e.g. a division or log of zero, weights that diverged in training).")
    where = _first_bad(np.asarray(results["counterfactual_scores"]))
    if where is not None:
        raise ValueError(f"The model's score at the {end_name} of explained input {where[0]} with reference "
                         f"{where[1]} (the end of the path) is not finite (NaN or inf). Check that reference's "
                         f"values and the model's outputs there.")
    attributions = results["attributions"]
    attributions = attributions if isinstance(attributions, (list, tuple)) else [attributions]
    for index, values in enumerate(attributions):
        where = _first_bad(np.asarray(values))
        if where is not None:
            named = f" for model input {input_names[index]!r}" if len(attributions) > 1 else ""
            raise ValueError(f"A gradient of the target score{named} was not finite (NaN or inf) at some point of "
                             f"the path from explained input {where[0]} towards reference {where[1]}, although the "
                             f"scores at both ends are finite. The model's gradient overflows or is undefined "
                             f"between them (e.g. sqrt or log near zero, a very large logit).")


def warn_if_degenerate(explanation: Any, end_name: str, *, stacklevel: int = 2) -> bool:
    """Warns with :class:`DegenerateWarning` when an input's score gap is negligible.

    The gaps are ``(N,)``, or ``(N, T)`` for T targets per input (counted per (input, target)).

    Returns:
        Whether the warning was issued.
    """
    flat = np.asarray(explanation.negligible_gap)
    if not flat.any():
        return False
    counted = "(input, target) pair(s)" if flat.ndim == 2 else "input(s)"
    warnings.warn(
        f"The model's score hardly changes between the input and its {end_name} for {int(flat.sum())} of "
        f"{flat.size} {counted} (|f(x) - f({end_name})| at most {defaults.NEGLIGIBLE_GAP_RELATIVE:g} of the scores or "
        f"{defaults.NEGLIGIBLE_GAP_ABSOLUTE:g}): there is no score change to attribute, so the attributions are "
        f"all but zero and their relative_delta is NaN. Check that the model is trained (an untrained network's "
        f"logits are all but constant), that the target is the class you mean, and that the references lie in "
        f"other classes than the input's.",
        DegenerateWarning, stacklevel=stacklevel + 1)
    return True


def warn_if_disconnected(attributions: Sequence[np.ndarray], moved: Sequence[bool], input_names: Sequence[str],
                         *, stacklevel: int = 2) -> bool:
    """Warns with :class:`DegenerateWarning` when no gradient reaches an input that moved along its paths.

    Args:
        attributions: Per model input, the ``(N, ...)`` attributions.
        moved: Per model input, whether the paths changed it at all (counterfactuals differ from the inputs).
        input_names: The model's input names.

    Returns:
        Whether the warning was issued.
    """
    dead = [name for values, changed, name in zip(attributions, moved, input_names)
            if changed and not np.any(np.asarray(values))]
    if not dead:
        return False
    warnings.warn(
        f"No gradient of the target score reaches model input(s) {dead}: their attributions are exactly zero "
        f"although the path changes them. The model probably casts them to integers or otherwise stops the "
        f"gradient (e.g. an int32 Input fed floats, a lookup, a rounding); for token ids, explain through their "
        f"embedding with input_layer=.",
        DegenerateWarning, stacklevel=stacklevel + 1)
    return True


def warn_if_incomplete(explanation: Any, advice: str, end_name: str,
                       threshold: float = defaults.COMPLETENESS_WARNING_THRESHOLD, *, stacklevel: int = 2) -> bool:
    """Warns with :class:`CompletenessWarning` when the median relative delta exceeds ``threshold``.

    Args:
        explanation: The :class:`~tf_ig2.Explanation`.
        advice: Why it happens and what to try, one or two sentences (options as ``name='value'``).
        end_name: What the end of the path is called ("GradCF" or "baseline").
        threshold: The median relative delta above which to warn.

    Returns:
        Whether the warning was issued.
    """
    value = median_relative_delta(explanation)
    if not np.isfinite(value) or value <= threshold:
        return False
    warnings.warn(
        f"The attributions do not add up to the score gap: the median relative completeness error "
        f"|delta| / |f(x) - f({end_name})| is {value:.3g} (over {len(explanation)} input(s); threshold "
        f"{threshold:g}). {advice} See explanation.relative_delta and docs/completeness.md.",
        CompletenessWarning, stacklevel=stacklevel + 1)
    return True
