"""The command line's words for the Python API's messages: ``name='value'`` becomes ``--name value``.

Warnings and errors raised by the library name its keyword arguments; :func:`command_line_wording`
rewrites them in the options of ``tf-ig2`` and adds, to a value-range refusal, the ``--scale`` that
brings values given in other common units inside.
"""

from __future__ import annotations

import re

from tf_ig2.methods.registry import METHODS


def _flag_names() -> str:
    """A regex alternation of every setting with a command-line flag, longest first."""
    names = {field.name for entry in METHODS.values() for field in entry.settings.fields()
             if field.metadata.get("command_line", False)}
    return "|".join(sorted(names | {"batch_size", "top_k"}, key=len, reverse=True))


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scale_hint(text: str) -> str:
    """For values above a range starting at 0, the ``--scale`` that brings them inside, e.g. ``--scale 1/16``."""
    found = re.search(r"`value_range` \[(\S+), (\S+)\]\. Received: values from (\S+) to (\S+)$", text)
    if not found:
        return ""
    try:
        low, high, _, largest = (float(value) for value in found.groups())
    except ValueError:
        return ""
    if low != 0.0 or high <= 0.0 or largest <= high:
        return ""
    ratio = largest / high
    # Values in other common units: digits of 0 to 16, percentages, 8-bit and 16-bit pixels.
    units = [unit for unit in (16, 100, 255, 65535) if unit / 2 < ratio <= unit]
    if not units:
        return ""
    scale = f"1/{units[0]}" if high == 1.0 else f"{high / units[0]:.6g}"
    return f". If the inputs are in other units (here 0 to {largest:g}), pass --scale {scale}."


def command_line_wording(text: str) -> str:
    """Messages of the Python API name keyword arguments; the command line names its options.

    ``name='value'`` becomes ``--name value``, ``overwrite=True`` ``--overwrite``, ``batch_size=1``
    ``--batch-size 1`` (``top_k=5`` ``--top-k 5``), "more steps" "more --steps", and ``explanation.relative_delta`` the
    ``relative_delta`` of ``summary.json``; a value-range refusal suggests a ``--scale``.
    """
    text = str(text)
    text += _scale_hint(text)
    text = re.sub(r"\boverwrite=True\b", "--overwrite", text)
    text = re.sub(r"\b([a-z_]+)='([^']*)'", lambda match: f"{_option(match.group(1))} {match.group(2)}", text)
    flags = _flag_names()
    text = re.sub(rf"\b({flags})=(-?\d+(?:\.\d+)?)\b",
                  lambda match: f"{_option(match.group(1))} {match.group(2)}", text)
    text = re.sub(rf"\b(more|a larger|a smaller) ({flags})\b",
                  lambda match: f"{match.group(1)} {_option(match.group(2))}", text)
    text = text.replace("input_layer=", "--input-layer").replace("`value_range`", "--value-range")
    text = text.replace("`top_k`", "--top-k")
    return text.replace("explanation.relative_delta", "relative_delta in summary.json")
