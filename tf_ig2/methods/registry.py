"""The method registry: every attribution method declares what it is, in one place.

A method is its name, its explainer class, the keyword its references go by in ``explain``
(``references`` for IG², ``baselines`` for methods integrating from a baseline), whether a scalar
reference is allowed, the extra outputs its :class:`~tf_ig2.Explanation` carries, and its frozen
settings dataclass (:mod:`tf_ig2.methods.settings`), which validates options without a model. The callback,
:func:`~tf_ig2.explain_dataset`, the metrics' contract and the command line read this registry:
adding a method is one module plus one entry here.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Dict, Optional, Tuple

from tf_ig2 import defaults
from tf_ig2.methods import settings


@dataclasses.dataclass(frozen=True)
class Method:
    """What a method declares.

    Attributes:
        name: The registry name (``"ig2"``, ``"ig"``, ``"guided_ig"``), also ``Explanation.method``.
        explainer_path: ``"module:Class"`` of the explainer, imported on first use.
        reference_keyword: ``"references"`` or ``"baselines"``, the keyword of ``explain``.
        references_required: Whether ``explain`` needs references (IG²) or has a default (``0.0``).
        scalar_reference: Whether a scalar reference (one value for every feature) is allowed.
        extra_outputs: :class:`~tf_ig2.Explanation` fields beyond the common ones it fills.
        settings: The frozen settings dataclass.
        end_name: What the end of its paths is called in messages and pictures (``"GradCF"``,
            ``"baseline"``).
        callback_steps: The steps the training callbacks use when none are given (``None``: the
            method's own default), so that logging stays cheap beside training.
    """

    name: str
    explainer_path: str
    reference_keyword: str
    references_required: bool
    scalar_reference: bool
    extra_outputs: Tuple[str, ...]
    settings: type
    end_name: str = "baseline"
    callback_steps: Optional[int] = None

    @property
    def explainer(self) -> type:
        """The explainer class."""
        module, name = self.explainer_path.split(":")
        return getattr(importlib.import_module(module), name)

    def build(self, model: Any, **options: Any) -> Any:
        """An explainer of ``model`` with ``options`` (checked against :attr:`settings` first)."""
        checked = self.settings.from_options(options, f"method {self.name!r}")
        return self.explainer(model, **checked.as_dict())

    def check_options(self, options: Dict[str, Any]) -> Any:
        """Validates ``options`` without a model; returns the settings object."""
        return self.settings.from_options(options, f"method {self.name!r}")


METHODS: Dict[str, Method] = {
    "ig2": Method("ig2", "tf_ig2.methods.ig2:IG2", "references", True, False,
                  ("representation_distance", "path", "representation"), settings.IG2Settings,
                  end_name="GradCF", callback_steps=defaults.CALLBACK_STEPS),
    "ig": Method("ig", "tf_ig2.methods.integrated_gradients:IntegratedGradients", "baselines", False, True, (),
                 settings.IGSettings),
    "guided_ig": Method("guided_ig", "tf_ig2.methods.guided_ig:GuidedIG", "baselines", False, True, (),
                        settings.GuidedIGSettings),
}


def get_method(name: Any) -> Method:
    """The registered method called ``name``.

    Raises:
        ValueError: If no method has that name.
    """
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"`method` must be one of {sorted(METHODS)}. Received: method={name!r}")
    return METHODS[name]


def end_name(name: Any) -> str:
    """What the end of method ``name``'s paths is called (``"baseline"`` for an unknown method)."""
    return METHODS[name].end_name if isinstance(name, str) and name in METHODS else "baseline"


def method_of(explainer: Any) -> Method:
    """The registered method of an explainer object, by the name it declares (``explainer.method``).

    Raises:
        ValueError: If the explainer declares no registered method.
    """
    return get_method(getattr(explainer, "method", None))
