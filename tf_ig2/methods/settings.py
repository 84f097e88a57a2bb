"""Each method's settings: frozen dataclasses that check their values without a model.

Every option is declared once, as a field made by :func:`option`: its default (from
:mod:`tf_ig2.defaults`), its one-line help, and how the command line reads it. The command line's
flags and help, :func:`tf_ig2.ig2`'s keywords, the callback's and the dataset runner's
pass-through and ``summary.json`` are all derived from these fields; the values are checked once,
in ``__post_init__``, and the tensor functions trust them.

An explainer holds one of these; the callback, the command line and :func:`tf_ig2.ig2` build
them to validate options early (before a model exists), and :mod:`tf_ig2.methods` names them.
No TensorFlow here: checking settings is cheap.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Dict, Optional, Tuple, Union

from tf_ig2 import defaults, validation

#: IG²'s integration rules along the GradPath (see :func:`tf_ig2.methods.ig2.integrate_gradpath`).
INTEGRATIONS = ("left", "trapezoid", "midpoint", "rescaled")

#: Quadrature rules of straight-line Integrated Gradients.
IG_RULES = ("trapezoid", "midpoint", "uniform")


#: How the command line reads each kind of option (:mod:`tf_ig2.cli.command` maps them to parsers).
OPTION_KINDS = ("text", "positive_int", "number", "step_size", "number_pair", "token_id", "choice")


def option(default: Any, help: str, *, kind: str = "text", metavar: Optional[str] = None,
           choices: Optional[Tuple[str, ...]] = None, default_text: Optional[str] = None,
           command_line: bool = True, command_line_note: str = "") -> Any:
    """A settings field: its default and what the command line and the docs say of it.

    Args:
        default: The default value (a constant of :mod:`tf_ig2.defaults`).
        help: One line saying what the option does, for ``tf-ig2 explain --help``.
        kind: How the command line parses it, one of :data:`OPTION_KINDS`.
        metavar: The placeholder shown in the help (``"K"``).
        choices: The values a ``"choice"`` takes.
        default_text: The default as the help says it, when ``default`` alone does not say it.
        command_line: Whether ``tf-ig2 explain`` has a flag for it.
        command_line_note: Words only the command line's help adds (e.g. how files are read).
    """
    if kind not in OPTION_KINDS:
        raise ValueError(f"`kind` must be one of {OPTION_KINDS}. Received: kind={kind!r}")
    return dataclasses.field(default=default, metadata={
        "help": help, "kind": kind, "metavar": metavar, "choices": choices, "default_text": default_text,
        "command_line": command_line, "command_line_note": command_line_note})


def _steps(default: int) -> Any:
    return option(default, "number of path steps", kind="positive_int", metavar="K")


def _batch_size() -> Any:
    return option(None, "the most (input, reference) pairs computed at once; also sets how often the progress bar "
                        "moves", kind="positive_int", metavar="B", default_text="all")


def _output() -> Any:
    return option(None, "for a model with several outputs, the output to explain (a name or an index)",
                  command_line=False)


def _input_layer() -> Any:
    return option(None, "for a text model: the layer (an Embedding) whose output space the path lives in; that "
                        "input gets one attribution per token", metavar="NAME", default_text="none",
                  command_line_note="the input it reads is read as integer token ids from a .npy/.npz array (not "
                                    "scaled, resized or clipped), references too")


def _padding_id_option() -> Any:
    return option(defaults.PADDING_ID, "with an input layer: the token id of padding positions, which never move "
                                       "and get no attribution; 'none' for no padding", kind="token_id",
                  metavar="ID|none")


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
    def fields(cls) -> Tuple[dataclasses.Field, ...]:
        """The settings' fields, in declaration order (each with its :func:`option` metadata)."""
        return dataclasses.fields(cls)

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

    representation_layer: Any = option(
        None, "layer whose output GradPath measures distances in; 'output' for the model output", metavar="NAME",
        default_text="the input of the last layer; for a SavedModel: 'output', or the name of another signature "
                     "output")
    steps: int = _steps(defaults.IG2_STEPS)
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
    batch_size: Optional[int] = _batch_size()
    input_layer: Any = _input_layer()
    padding_id: Optional[int] = _padding_id_option()
    output: Union[None, str, int] = _output()
    integration: str = option(
        defaults.IG2_INTEGRATION, "how the gradient is integrated along the path ('left' is the published rule; "
                                  "'rescaled' makes every segment add up)", kind="choice", choices=INTEGRATIONS)
    segment_points: int = option(defaults.IG2_SEGMENT_POINTS, "gradients per path segment for integration "
                                                              "'midpoint'", kind="positive_int", metavar="M")
    momentum: float = option(defaults.IG2_MOMENTUM, "momentum of the path direction in [0, 1); 0 is the published "
                                                    "GradPath", kind="number", metavar="BETA")

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

    steps: int = _steps(defaults.IG_STEPS)
    rule: str = option(defaults.IG_RULE, "quadrature rule along the straight line", kind="choice", choices=IG_RULES)
    batch_size: Optional[int] = _batch_size()
    output: Union[None, str, int] = _output()
    input_layer: Any = _input_layer()
    padding_id: Optional[int] = _padding_id_option()

    def __post_init__(self) -> None:
        self._check_shared()
        if self.rule not in IG_RULES:
            raise ValueError(f"`rule` must be one of {IG_RULES}. Received: rule={self.rule!r}")
        if self.rule == "trapezoid" and self.steps < 2:
            raise ValueError(f"`steps` must be >= 2 for the trapezoid rule. Received: steps={self.steps}")


@dataclasses.dataclass(frozen=True, eq=False)
class GuidedIGSettings(_Settings):
    """Guided IG's settings (see :class:`tf_ig2.GuidedIG`)."""

    steps: int = _steps(defaults.GUIDED_IG_STEPS)
    fraction: float = option(defaults.GUIDED_IG_FRACTION, "share of the features moved at each step, in (0, 1]",
                             kind="number", metavar="F")
    max_dist: float = option(defaults.GUIDED_IG_MAX_DIST, "largest relative distance from the straight line, in "
                                                          "[0, 1]", kind="number", metavar="D")
    batch_size: Optional[int] = _batch_size()
    output: Union[None, str, int] = _output()
    input_layer: Any = _input_layer()
    padding_id: Optional[int] = _padding_id_option()

    def __post_init__(self) -> None:
        self._check_shared()
        object.__setattr__(self, "fraction", validation.fraction("fraction", self.fraction, low_open=True))
        object.__setattr__(self, "max_dist", validation.fraction("max_dist", self.max_dist))
