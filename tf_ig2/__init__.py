"""tf_ig2: IG² (Integrated Gradient on Iterative Gradient Path) attributions for Keras 3 models.

Zhuo & Ge, "IG2: Integrated Gradient on Iterative Gradient Path for Feature Attribution",
IEEE TPAMI 2024 (arXiv:2406.10852). Straight-line Integrated Gradients and Guided IG come with it
for comparison, all returning the same :class:`Explanation`.
"""

from . import callbacks, defaults, metrics, visualize
from .callbacks import AttributionCallback, IG2Callback
from .dataset import DatasetResult, explain_dataset, load_results
from .diagnostics import CompletenessWarning
from .explanation import Explanation
from .gradpath import IG2, ig2, integrate_gradpath
from .guided_ig import GuidedIG, integrate_guided
from .saved_model import explain_saved_model, load_model
from .straight import IntegratedGradients, integrate_straight
from .tf_explain_style import IG2Explainer

__version__ = "0.1.0"

__all__ = [
    "AttributionCallback",
    "CompletenessWarning",
    "IG2Callback",
    "IG2Explainer",
    "callbacks",
    "visualize",
    "Explanation",
    "GuidedIG",
    "IG2",
    "IntegratedGradients",
    "defaults",
    "ig2",
    "integrate_gradpath",
    "integrate_guided",
    "integrate_straight",
    "explain_saved_model",
    "DatasetResult",
    "explain_dataset",
    "load_results",
    "load_model",
    "metrics",
    "__version__",
]
