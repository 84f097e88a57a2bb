"""tf_ig2: IG² (Integrated Gradient on Iterative Gradient Path) attributions for Keras models.

Zhuo & Ge, "IG2: Integrated Gradient on Iterative Gradient Path for Feature Attribution",
IEEE TPAMI 2024 (arXiv:2406.10852). Straight-line Integrated Gradients and Guided IG come with it
for comparison, all returning the same :class:`Explanation`.

The public names are imported on first use, so ``import tf_ig2`` (and the ``tf-ig2`` command,
which quiets TensorFlow's start-up lines before importing it) does not import TensorFlow.
"""

from .lazy_names import lazy_names

__version__ = "0.1.0"

#: Public name -> the submodule defining it.
_PUBLIC = {
    "AttributionCallback": "callbacks",
    "IG2Callback": "callbacks",
    "IG2Explainer": "tf_explain_style",
    "CompletenessWarning": "diagnostics",
    "DegenerateWarning": "diagnostics",
    "Explanation": "explanation",
    "GuidedIG": "guided_ig",
    "IG2": "gradpath",
    "IntegratedGradients": "straight",
    "ig2": "gradpath",
    "integrate_gradpath": "gradpath",
    "integrate_guided": "guided_ig",
    "integrate_straight": "straight",
    "explain_saved_model": "saved_model",
    "load_model": "saved_model",
    "DatasetResult": "dataset",
    "explain_dataset": "dataset",
    "load_results": "dataset",
    "METHODS": "methods",
    "plot": "visualize",
    "plot_path": "visualize",
}

#: Submodules reachable as attributes (``tf_ig2.metrics``) without importing them first.
_SUBMODULES = ("callback_displays", "callback_inputs", "callbacks", "cli", "cli_explain", "cli_files", "cli_output",
               "cli_report", "cli_stream", "compiled", "dataset", "defaults", "demo", "diagnostics", "explanation",
               "folders", "gradpath", "guided_ig", "layer_hooks", "methods", "metrics", "model_graph", "model_loading",
               "model_view", "pairs", "saved_model", "settings", "straight", "tf_explain_style", "validation",
               "visualize")

__all__ = sorted(_PUBLIC) + ["callbacks", "defaults", "metrics", "visualize", "methods", "__version__"]


__getattr__, __dir__ = lazy_names(__name__, _PUBLIC, _SUBMODULES)
