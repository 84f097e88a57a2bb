"""The method registry: every attribution method declares what it is, in one place.

A method is its name, its explainer class, the keyword its references go by in ``explain``
(``references`` for IG², ``baselines`` for methods integrating from a baseline), whether a scalar
reference is allowed, the extra outputs its :class:`~tf_ig2.Explanation` carries, and its frozen
settings dataclass (declared here, beside its entry, from the pieces of :mod:`tf_ig2.methods.settings`),
which validates options without a model. The callback, :func:`~tf_ig2.explain_dataset`, the metrics'
contract and the command line read this registry: adding a method is one module plus one entry here
(its settings and its :class:`Method`). No TensorFlow here: checking options is cheap.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import numbers
from typing import Any, Dict, Optional, Tuple, Union

from tf_ig2 import defaults, validation
from tf_ig2.methods.settings import (
    IG_RULES,
    INTEGRATIONS,
    Settings,
    batch_size_option,
    checked_padding_id,
    input_layer_option,
    option,
    output_option,
    padding_id_option,
    steps_option,
)


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
        title: What the method is called in help texts (``"Guided IG"``).
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
    title: str = ""

    @property
    def description(self) -> str:
        """``"name (title)"`` for help texts, e.g. ``"ig (straight-line Integrated Gradients)"``."""
        return f"{self.name} ({self.title})" if self.title else self.name

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


# -- the settings of each method (see each explainer for their meaning) -------------------------
def _momentum(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`momentum` must be a number in [0, 1). Received: momentum={value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True, eq=False)
class IG2Settings(Settings):
    """IG²'s settings (see :class:`tf_ig2.IG2` for their meaning)."""

    representation_layer: Any = option(
        None, "layer whose output GradPath measures distances in; 'output' for the model output", metavar="NAME",
        default_text="the input of the last layer; for a SavedModel: 'output', or the name of another signature "
                     "output")
    steps: int = steps_option(defaults.IG2_STEPS)
    step_size: Union[str, float] = option(
        defaults.AUTO, f"length of each step, or 'auto' for {defaults.AUTO_STEP_FACTOR:g} * ||x - x_r|| / steps",
        kind="step_size", metavar="S|auto")
    value_range: Any = option(
        None, "clip every path point to [LO, HI]; inputs and references must lie inside", kind="number_pair",
        metavar="LO HI", default_text="no clipping",
        command_line_note="in the units of the values after --scale; values within float32 round-off of a bound "
                          "(e.g. a white pixel at 1.0000002 after --scale 1/255 and resizing) are clipped to it; "
                          "with several inputs it applies to every float input (token ids are clipped to their "
                          "embedding table's range)")
    batch_size: Optional[int] = batch_size_option()
    input_layer: Any = input_layer_option()
    padding_id: Optional[int] = padding_id_option()
    output: Union[None, str, int] = output_option()
    integration: str = option(
        defaults.IG2_INTEGRATION, "how the gradient is integrated along the path ('left' is the published rule; "
                                  "'rescaled' makes every segment add up)", kind="choice", choices=INTEGRATIONS)
    segment_points: int = option(
        defaults.IG2_SEGMENT_POINTS, "gradients per path segment for integration 'midpoint'", kind="positive_int",
        metavar="M")
    momentum: float = option(
        defaults.IG2_MOMENTUM, "momentum of the path direction in [0, 1); 0 is the published GradPath",
        kind="number", metavar="BETA")
    step_schedule: str = option(
        defaults.IG2_STEP_SCHEDULE, "how the step length changes along the path: 'constant' (the published "
                                    "GradPath) or 'shrink' (a pair's step length is multiplied by the shrink factor "
                                    "each time its representation distance rises after a step)", kind="choice",
        choices=("constant", "shrink"), older_records="constant")
    shrink_factor: float = option(
        defaults.IG2_SHRINK_FACTOR, "with step schedule 'shrink': what a pair's step length is multiplied by at each "
                                    "rise of its distance, in (0, 1)", kind="number", metavar="F",
        older_records=defaults.IG2_SHRINK_FACTOR)

    def __post_init__(self) -> None:
        self.check_shared()
        object.__setattr__(self, "step_size", validation.step_size(self.step_size))
        self.check_choice("step_schedule")
        factor = self.shrink_factor
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
            raise TypeError(f"`shrink_factor` must be a number in (0, 1). Received: shrink_factor={factor!r}")
        if not 0.0 < float(factor) < 1.0:
            raise ValueError(f"`shrink_factor` must be in (0, 1). Received: shrink_factor={factor!r}")
        object.__setattr__(self, "shrink_factor", float(factor))
        if self.integration not in INTEGRATIONS:
            raise ValueError(f"`integration` must be one of {INTEGRATIONS}. "
                             f"Received: integration={self.integration!r}")
        object.__setattr__(self, "segment_points", validation.positive_int("segment_points", self.segment_points))
        object.__setattr__(self, "momentum", _momentum(self.momentum))
        if self.value_range is not None and not isinstance(self.value_range, (list, dict)):
            validation.value_range(self.value_range)
        elif isinstance(self.value_range, list) and len(self.value_range) != 2:
            validation.value_ranges(self.value_range, [str(index) for index in range(len(self.value_range))])


@dataclasses.dataclass(frozen=True, eq=False)
class IGSettings(Settings):
    """Straight-line Integrated Gradients' settings (see :class:`tf_ig2.IntegratedGradients`)."""

    steps: int = steps_option(defaults.IG_STEPS)
    rule: str = option(defaults.IG_RULE, "quadrature rule along the straight line", kind="choice",
                       choices=IG_RULES)
    batch_size: Optional[int] = batch_size_option()
    output: Union[None, str, int] = output_option()
    input_layer: Any = input_layer_option()
    padding_id: Optional[int] = padding_id_option()

    def __post_init__(self) -> None:
        self.check_shared()
        if self.rule not in IG_RULES:
            raise ValueError(f"`rule` must be one of {IG_RULES}. Received: rule={self.rule!r}")
        if self.rule == "trapezoid" and self.steps < 2:
            raise ValueError(f"`steps` must be >= 2 for the trapezoid rule. Received: steps={self.steps}")


@dataclasses.dataclass(frozen=True, eq=False)
class GuidedIGSettings(Settings):
    """Guided IG's settings (see :class:`tf_ig2.GuidedIG`)."""

    steps: int = steps_option(defaults.GUIDED_IG_STEPS)
    fraction: float = option(defaults.GUIDED_IG_FRACTION, "share of the features moved at each step, in (0, 1]",
                             kind="number", metavar="F")
    max_dist: float = option(defaults.GUIDED_IG_MAX_DIST, "largest relative distance from the straight line, in [0, 1]",
                             kind="number", metavar="D")
    batch_size: Optional[int] = batch_size_option()
    output: Union[None, str, int] = output_option()
    input_layer: Any = input_layer_option()
    padding_id: Optional[int] = padding_id_option()

    def __post_init__(self) -> None:
        self.check_shared()
        object.__setattr__(self, "fraction", validation.fraction("fraction", self.fraction, low_open=True))
        object.__setattr__(self, "max_dist", validation.fraction("max_dist", self.max_dist))


@dataclasses.dataclass(frozen=True, eq=False)
class GradientSettings(Settings):
    """The plain gradient's settings (see :class:`tf_ig2.Gradient`): no path, so no steps."""

    batch_size: Optional[int] = batch_size_option()
    output: Union[None, str, int] = output_option()
    input_layer: Any = input_layer_option()
    padding_id: Optional[int] = padding_id_option()

    def __post_init__(self) -> None:
        # Settings.check_shared without `steps`, which a method without a path does not have.
        object.__setattr__(self, "batch_size", validation.optional_positive_int("batch_size", self.batch_size))
        object.__setattr__(self, "padding_id", checked_padding_id(self.padding_id))


@dataclasses.dataclass(frozen=True, eq=False)
class GradientInputSettings(GradientSettings):
    """Gradient × input's settings (see :class:`tf_ig2.GradientInput`): the plain gradient's."""


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    if not (math.isfinite(float(value)) and float(value) > 0.0):
        raise ValueError(f"`{name}` must be a finite number > 0. Received: {name}={value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True, eq=False)
class BlurIGSettings(Settings):
    """Blur IG's settings (see :class:`tf_ig2.BlurIG`): PAIR saliency's, images only (no ``input_layer``)."""

    max_sigma: float = option(defaults.BLUR_IG_MAX_SIGMA, "standard deviation, in pixels, of the Gaussian blur of the "
                                                          "path's start (the counterfactual)", kind="number",
                              metavar="SIGMA")
    steps: int = steps_option(defaults.BLUR_IG_STEPS)
    grad_step: float = option(defaults.BLUR_IG_GRAD_STEP, "sigma step of the forward difference giving the path's "
                                                          "direction d(blur)/d(sigma)", kind="number", metavar="H")
    sqrt: bool = option(defaults.BLUR_IG_SQRT, "space the blur levels as sqrt(k max_sigma / steps) (the last is then "
                                               "sqrt(max_sigma)) instead of k max_sigma / steps", command_line=False)
    batch_size: Optional[int] = batch_size_option()
    output: Union[None, str, int] = output_option()

    def __post_init__(self) -> None:
        # Settings.check_shared without `padding_id`: Blur IG explains no token ids.
        object.__setattr__(self, "steps", validation.positive_int("steps", self.steps))
        object.__setattr__(self, "batch_size", validation.optional_positive_int("batch_size", self.batch_size))
        object.__setattr__(self, "max_sigma", _positive_number("max_sigma", self.max_sigma))
        object.__setattr__(self, "grad_step", _positive_number("grad_step", self.grad_step))
        if not isinstance(self.sqrt, bool):
            raise TypeError(f"`sqrt` must be True or False. Received: sqrt={self.sqrt!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class ExpectedGradientsSettings(Settings):
    """Expected Gradients' settings (see :class:`tf_ig2.methods.expected_gradients.ExpectedGradients`)."""

    samples: int = option(defaults.EXPECTED_GRADIENTS_SAMPLES, "Monte Carlo draws of a (reference, alpha) pair per "
                          "input, one gradient each", kind="positive_int", metavar="K")
    seed: int = option(defaults.EXPECTED_GRADIENTS_SEED, "seed of the numpy generator drawing the references and "
                       "alphas", kind="seed", metavar="SEED")
    batch_size: Optional[int] = option(None, "the most (input, draw) points computed at once", kind="positive_int",
                                       metavar="B", default_text="all")
    output: Union[None, str, int] = output_option()
    input_layer: Any = input_layer_option()
    padding_id: Optional[int] = padding_id_option()

    def __post_init__(self) -> None:
        # Monte Carlo draws instead of steps: its own checks rather than check_shared().
        object.__setattr__(self, "samples", validation.positive_int("samples", self.samples))
        wrong = f"`seed` must be an int >= 0 (the seed of numpy.random.default_rng). Received: seed={self.seed!r}"
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise TypeError(wrong)
        if self.seed < 0:
            raise ValueError(wrong)
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "batch_size", validation.optional_positive_int("batch_size", self.batch_size))
        object.__setattr__(self, "padding_id", checked_padding_id(self.padding_id))


# -- the entries ---------------------------------------------------------------------------------
METHODS: Dict[str, Method] = {
    "ig2": Method("ig2", "tf_ig2.methods.ig2:IG2", "references", True, False,
                  ("representation_distance", "path", "representation"), IG2Settings,
                  end_name="GradCF", callback_steps=defaults.CALLBACK_STEPS, title="IG2, the default"),
    "ig": Method("ig", "tf_ig2.methods.integrated_gradients:IntegratedGradients", "baselines", False, True, (),
                 IGSettings, title="straight-line Integrated Gradients"),
    "guided_ig": Method("guided_ig", "tf_ig2.methods.guided_ig:GuidedIG", "baselines", False, True, (),
                        GuidedIGSettings, title="Guided IG"),
    "gradient": Method("gradient", "tf_ig2.methods.gradient:Gradient", "baselines", False, True, (),
                       GradientSettings, end_name="input", title="plain gradient"),
    "gradient_input": Method("gradient_input", "tf_ig2.methods.gradient_input:GradientInput", "baselines", False,
                             True, (), GradientInputSettings, title="gradient x input"),
    "blur_ig": Method("blur_ig", "tf_ig2.methods.blur_ig:BlurIG", "baselines", False, True, (), BlurIGSettings,
                      end_name="blurred input", title="Blur IG"),
    "eg": Method("eg", "tf_ig2.methods.expected_gradients:ExpectedGradients", "references", True, False, (),
                 ExpectedGradientsSettings, end_name="reference", title="Expected Gradients"),
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
