"""Faithfulness metrics for attributions: deletion, insertion, DiffID, completeness and stability.

- Deletion and insertion curves (Petsiuk et al., "RISE", BMVC 2018): features are ranked by
  decreasing attribution; the deletion curve scores the target as the top-ranked features of the
  input are replaced by a fill, the insertion curve as they are put back into the fill. With
  ``U`` features and ``K = steps`` the curve is sampled at ``k = 0 .. K``, after moving
  ``round(k U / K)`` features::

      deletion_k  = f_c(where(rank < n_k, fill, x))
      insertion_k = f_c(where(rank < n_k, x, fill))

  For images ``(N, H, W, C)`` a pixel is one feature, ranked by its attribution summed over the
  channels, so its channels move together.
- The area under a curve is the trapezoid rule over ``[0, 1]``; a faithful attribution has a
  small deletion area and a large insertion area, and ``DiffID = insertion - deletion``
  (the difference of the two areas, as reported in the IG² paper, Zhuo & Ge 2024).
- Completeness error: ``|sum A(x) - (f_c(x) - f_c(x'))|`` (Sundararajan et al., 2017).
- Stability: the relative L2 change of the attributions under small Gaussian input noise,
  ``||A(x + e) - A(x)||_2 / ||A(x)||_2``, reduced over noisy copies by max (max-sensitivity,
  Yeh et al., NeurIPS 2019) or mean.

Scores are the explainers' target scores: the logit of the class when the model ends in a
softmax (:class:`~tf_ig2.engine.model_view.ModelView`), or a callable's output. Every perturbed input is
scored in compiled, batched forward passes; the compiled functions are cached per model, so
repeated calls with inputs of the same shape do not retrace.

Several targets per input: attributions ``(N, T, *S)`` (as ``explain(..., targets=(N, T))`` or
``top_k`` returns them) with ``(N, T)`` targets are scored per target, each with its own ranking:
curves become ``(N, T, steps + 1)``, areas and DiffID ``(N, T)``, equal to scoring each target's
``(N, *S)`` attributions separately. The T targets of an input are extra rows of the same compiled
batches (the input and its fill are stored once).
"""

from tf_ig2.metrics.blur import gaussian_blur
from tf_ig2.metrics.curves import (
    FILLS,
    area_under_curve,
    deletion_curve,
    deletion_score,
    diffid,
    feature_counts,
    insertion_curve,
    insertion_score,
)
from tf_ig2.metrics.stability import STABILITY_REDUCTIONS, completeness_error, stability

__all__ = [
    "FILLS",
    "STABILITY_REDUCTIONS",
    "area_under_curve",
    "completeness_error",
    "deletion_curve",
    "deletion_score",
    "diffid",
    "feature_counts",
    "gaussian_blur",
    "insertion_curve",
    "insertion_score",
    "stability",
]
