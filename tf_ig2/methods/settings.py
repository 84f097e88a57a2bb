"""How a method's settings are declared: frozen dataclasses that check their values without a model.

Each method's settings dataclass lives beside its entry in :mod:`tf_ig2.methods.registry`, built from
the pieces here. Every option is declared once, as a field made by :func:`option`: its default (from
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
from typing import Any, Dict, Optional, Tuple

from tf_ig2 import defaults, validation

#: IG²'s integration rules along the GradPath (see :func:`tf_ig2.methods.ig2.integrate_gradpath`).
INTEGRATIONS = ("left", "trapezoid", "midpoint", "rescaled")

#: Quadrature rules of straight-line Integrated Gradients.
IG_RULES = ("trapezoid", "midpoint", "uniform")


#: ``option(older_records=...)`` when every recorded run had the option (the default).
NOT_RECORDED = object()

#: How the command line reads each kind of option (:mod:`tf_ig2.cli.command` maps them to parsers).
OPTION_KINDS = ("text", "positive_int", "seed", "number", "step_size", "number_pair", "token_id", "choice")


def option(default: Any, help: str, *, kind: str = "text", metavar: Optional[str] = None,
           choices: Optional[Tuple[str, ...]] = None, default_text: Optional[str] = None,
           command_line: bool = True, command_line_note: str = "", older_records: Any = NOT_RECORDED) -> Any:
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
        older_records: For an option added after results folders recorded their settings: the value
            that the runs recorded without it had (``"constant"`` for a schedule that did not exist),
            so that resuming such a folder compares like with like.
    """
    if kind not in OPTION_KINDS:
        raise ValueError(f"`kind` must be one of {OPTION_KINDS}. Received: kind={kind!r}")
    return dataclasses.field(default=default, metadata={
        "help": help, "kind": kind, "metavar": metavar, "choices": choices, "default_text": default_text,
        "command_line": command_line, "command_line_note": command_line_note, "older_records": older_records})


def steps_option(default: int) -> Any:
    return option(default, "number of path steps", kind="positive_int", metavar="K")


def batch_size_option() -> Any:
    return option(None, "the most (input, reference) pairs computed at once; also sets how often the progress bar "
                        "moves", kind="positive_int", metavar="B", default_text="all")


def output_option() -> Any:
    return option(None, "for a model with several outputs, the output to explain (a name or an index)",
                  command_line=False)


def input_layer_option() -> Any:
    return option(None, "for a text model: the layer (an Embedding) whose output space the path lives in; that "
                        "input gets one attribution per token", metavar="NAME", default_text="none",
                  command_line_note="the input it reads is read as integer token ids from a .npy/.npz array (not "
                                    "scaled, resized or clipped), references too")


def padding_id_option() -> Any:
    return option(defaults.PADDING_ID, "with an input layer: the token id of padding positions, which never move "
                                       "and get no attribution; 'none' for no padding", kind="token_id",
                  metavar="ID|none")


def checked_padding_id(value: Any) -> Optional[int]:
    """``padding_id`` as an int (or ``None``); a ``TypeError`` naming it otherwise."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise TypeError(f"`padding_id` must be None or an int. Received: padding_id={value!r}")
    return None if value is None else int(value)


class Settings:
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
    def from_options(cls, options: Dict[str, Any], owner: str) -> "Settings":
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

    @classmethod
    def older_record_values(cls) -> Dict[str, Any]:
        """The values of options that older results folders did not record, by name (see :func:`option`)."""
        return {field.name: field.metadata["older_records"] for field in dataclasses.fields(cls)
                if field.metadata.get("older_records", NOT_RECORDED) is not NOT_RECORDED}

    @classmethod
    def choices(cls, name: str) -> Tuple[str, ...]:
        """The values the ``"choice"`` setting ``name`` takes, as its field declares them."""
        return next(field.metadata["choices"] for field in dataclasses.fields(cls) if field.name == name)

    def check_choice(self, name: str) -> None:
        """Checks that the ``"choice"`` setting ``name`` is one of its declared values.

        Raises:
            ValueError: Naming the setting, its values and the value received.
        """
        allowed = self.choices(name)
        if getattr(self, name) not in allowed:
            raise ValueError(f"`{name}` must be one of {allowed}. Received: {name}={getattr(self, name)!r}")

    def check_shared(self) -> None:
        """Checks (and normalises) the settings every method has: steps, batch size, padding id."""
        object.__setattr__(self, "steps", validation.positive_int("steps", self.steps))
        object.__setattr__(self, "batch_size", validation.optional_positive_int("batch_size", self.batch_size))
        object.__setattr__(self, "padding_id", checked_padding_id(self.padding_id))

    def as_dict(self) -> Dict[str, Any]:
        """The settings as keyword options (``Explainer(model, **settings.as_dict())``)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
