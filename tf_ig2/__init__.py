"""tf_ig2: IG² (Integrated Gradient on Iterative Gradient Path) attributions for Keras models.

Zhuo & Ge, "IG2: Integrated Gradient on Iterative Gradient Path for Feature Attribution",
IEEE TPAMI 2024 (arXiv:2406.10852). Straight-line Integrated Gradients, Guided IG, Blur IG, Expected
Gradients, the plain gradient and gradient × input come with it for comparison, all returning the same
:class:`Explanation`; :func:`smooth` puts any of them behind a noise tunnel (SmoothGrad, its square, VarGrad).

The public names are imported on first use, so ``import tf_ig2`` (and the ``tf-ig2`` command,
which quiets TensorFlow's start-up lines before importing it) does not import TensorFlow.
"""

from tf_ig2._lazy import lazy_names
from tf_ig2.methods.registry import METHODS as _METHODS

__version__ = "0.3.0"

#: Public name -> the submodule defining it.
_PUBLIC = {
    "AttributionCallback": "callbacks.callback",
    "IG2Callback": "callbacks.callback",
    "TfExplainIG2": "callbacks.tf_explain",
    "CompletenessWarning": "diagnostics",
    "DegenerateWarning": "diagnostics",
    "Explanation": "explanation",
    "ig2": "methods.ig2",
    "integrate_gradpath": "methods.ig2",
    "integrate_guided": "methods.guided_ig",
    "integrate_straight": "methods.integrated_gradients",
    "explain_saved_model": "saved_model.explain",
    "load_model": "saved_model.loading",
    "DatasetResult": "dataset",
    "explain_dataset": "dataset",
    "load_results": "dataset",
    "METHODS": "methods.registry",
    "plot": "visualize",
    "plot_path": "visualize",
    "smooth": "methods.noise_tunnel",
    # every registered method's explainer class (tf_ig2.IG2, tf_ig2.BlurIG, ...), from its registry entry
    **{entry.explainer_path.split(":")[1]: entry.explainer_path.split(":")[0][len("tf_ig2."):]
       for entry in _METHODS.values()},
}

#: The documented subpackages and modules, reachable as attributes (``tf_ig2.metrics``) without
#: importing them first. Everything else is internal.
_SUBMODULES = ("callbacks", "cli", "dataset", "defaults", "diagnostics", "explanation", "methods", "metrics",
               "references", "saved_model", "visualize")

__all__ = sorted(_PUBLIC) + list(_SUBMODULES) + ["__version__"]


__getattr__, __dir__ = lazy_names(__name__, _PUBLIC, _SUBMODULES)
