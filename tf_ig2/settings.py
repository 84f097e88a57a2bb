"""Each method's settings: frozen dataclasses that check their values without a model.

An explainer holds one of these; the callback, the command line and :func:`tf_ig2.ig2` build
them to validate options early (before a model exists), and :mod:`tf_ig2.methods` names them.
No TensorFlow here: checking settings is cheap.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Dict, Optional, Tuple, Union

from . import defaults, validation

#: IG²'s integration rules along the GradPath (see :func:`tf_ig2.gradpath.integrate_gradpath`).
INTEGRATIONS = ("left", "trapezoid", "midpoint", "rescaled")

#: Quadrature rules of straight-line Integrated Gradients.
IG_RULES = ("trapezoid", "midpoint", "uniform")


def _padding_id(value: Any) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise TypeError(f"`padding_id` must be None or an int. Received: padding_id={value!r}")
    return None if value is None else int(value)


def _momentum(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`momentum` must be a number in [0, 1). Received: momentum={value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={value!r}")
    return float(value)


class _Settings:
    """Shared behaviour: construction from a dict with a clear error for unknown keys."""

    @classmethod
    def names(cls) -> Tuple[str, ...]:
        """The setting names, in declaration order."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_options(cls, options: Dict[str, Any], owner: str) -> "_Settings":
        """Builds the settings from keyword options, naming ``owner`` when one is unknown.

        Raises:
            TypeError: On an unknown option or a value of the wrong type.
            ValueError: On a value out of range.
        """
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise TypeError(f"Unknown option(s) {unknown} for {owner}; expected some of {list(cls.names())}. "
                            f"Received: {sorted(options)}")
        return cls(**options)

    def _check_shared(self) -> None:
        """Checks (and normalises) the settings every method has: steps, batch size, padding id."""
        object.__setattr__(self, "steps", validation.positive_int("steps", self.steps))
        object.__setattr__(self, "batch_size", validation.optional_positive_int("batch_size", self.batch_size))
        object.__setattr__(self, "padding_id", _padding_id(self.padding_id))

    def as_dict(self) -> Dict[str, Any]:
        """The settings as keyword options (``Explainer(model, **settings.as_dict())``)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, eq=False)
class IG2Settings(_Settings):
    """IG²'s settings (see :class:`tf_ig2.IG2` for their meaning)."""

    representation_layer: Any = None
    steps: int = defaults.IG2_STEPS
    step_size: Union[str, float] = defaults.AUTO
    value_range: Any = None
    batch_size: Optional[int] = None
    input_layer: Any = None
    padding_id: Optional[int] = defaults.PADDING_ID
    output: Union[None, str, int] = None
    integration: str = defaults.IG2_INTEGRATION
    segment_points: int = defaults.IG2_SEGMENT_POINTS
    momentum: float = defaults.IG2_MOMENTUM

    def __post_init__(self) -> None:
        self._check_shared()
        object.__setattr__(self, "step_size", validation.step_size(self.step_size))
        if self.integration not in INTEGRATIONS:
            raise ValueError(f"`integration` must be one of {INTEGRATIONS}. Received: integration={self.integration!r}")
        object.__setattr__(self, "segment_points", validation.positive_int("segment_points", self.segment_points))
        object.__setattr__(self, "momentum", _momentum(self.momentum))
        if self.value_range is not None and not isinstance(self.value_range, (list, dict)):
            validation.value_range(self.value_range)
        elif isinstance(self.value_range, list) and len(self.value_range) != 2:
            validation.value_ranges(self.value_range, [str(index) for index in range(len(self.value_range))])


@dataclasses.dataclass(frozen=True, eq=False)
class IGSettings(_Settings):
    """Straight-line Integrated Gradients' settings (see :class:`tf_ig2.IntegratedGradients`)."""

    steps: int = defaults.IG_STEPS
    rule: str = defaults.IG_RULE
    batch_size: Optional[int] = None
    output: Union[None, str, int] = None
    input_layer: Any = None
    padding_id: Optional[int] = defaults.PADDING_ID

    def __post_init__(self) -> None:
        self._check_shared()
        if self.rule not in IG_RULES:
            raise ValueError(f"`rule` must be one of {IG_RULES}. Received: rule={self.rule!r}")
        if self.rule == "trapezoid" and self.steps < 2:
            raise ValueError(f"`steps` must be >= 2 for the trapezoid rule. Received: steps={self.steps}")


@dataclasses.dataclass(frozen=True, eq=False)
class GuidedIGSettings(_Settings):
    """Guided IG's settings (see :class:`tf_ig2.GuidedIG`)."""

    steps: int = defaults.GUIDED_IG_STEPS
    fraction: float = defaults.GUIDED_IG_FRACTION
    max_dist: float = defaults.GUIDED_IG_MAX_DIST
    batch_size: Optional[int] = None
    output: Union[None, str, int] = None
    input_layer: Any = None
    padding_id: Optional[int] = defaults.PADDING_ID

    def __post_init__(self) -> None:
        self._check_shared()
        object.__setattr__(self, "fraction", validation.fraction("fraction", self.fraction, low_open=True))
        object.__setattr__(self, "max_dist", validation.fraction("max_dist", self.max_dist))
