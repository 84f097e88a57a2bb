"""Checks on user arguments, made once at the public boundary.

Every failure raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong
value) with a message that names the argument, what was expected and what was received.
"""

from __future__ import annotations

import numbers
import re
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from tf_ig2 import defaults


def describe(value: Any) -> str:
    """A short description of a received value for messages: its type, shape and dtype."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_numpy(name: str, value: Any) -> np.ndarray:
    """``value`` as a numpy array (tensors read back); a stream of batches or a non-numeric value is refused."""
    if _is_stream(value):
        raise TypeError(f"`{name}` must be an array or tensor holding all its rows. Received: {type(value).__name__}, "
                        f"which yields them one batch at a time; to explain a tf.data.Dataset or a generator, pass "
                        f"it to tf_ig2.explain_dataset(explainer, dataset, references, output_dir), or collect it "
                        f"first with np.concatenate(list(...)).")
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    try:
        array = np.asarray(value)
    except Exception as error:  # noqa: BLE001 - re-raised with the argument's name
        raise TypeError(
            f"`{name}` must be an array-like of numbers. Received: {describe(value)}"
        ) from error
    return array


def _is_stream(value: Any) -> bool:
    """Whether ``value`` yields its rows lazily: a ``tf.data.Dataset``, a generator or an iterator."""
    if isinstance(value, (np.ndarray, str, bytes, list, tuple, dict)):
        return False
    kind = type(value)
    return (any(base.__name__ == "DatasetV2" for base in kind.__mro__)
            or (hasattr(value, "__next__") and hasattr(value, "__iter__")))


def float_array(name: str, value: Any, *, min_rank: int = 2, allow_integer: bool = False) -> np.ndarray:
    """Returns ``value`` as a finite float32 numpy array of rank at least ``min_rank``.

    Args:
        name: The argument's name, used in error messages.
        value: A numpy array, a tensor or nested lists of floats.
        min_rank: The smallest rank accepted (2 for a batch of vectors).
        allow_integer: Also accept integer values (for bounds, not for inputs).

    Returns:
        The array, float32, same shape as ``value``.

    Raises:
        TypeError: If ``value`` is not of a floating-point type.
        ValueError: If its rank is too small, it is empty or it holds NaN or inf.
    """
    array = as_numpy(name, value)
    numeric = np.issubdtype(array.dtype, np.floating) or (
        allow_integer and np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_)
    if array.dtype == object or not numeric:
        raise TypeError(
            f"`{name}` must hold floating-point values (cast integer data such as uint8 images "
            f"with `.astype('float32')`, or explain token ids through an embedding). "
            f"Received: {describe(array)}"
        )
    if array.ndim < min_rank:
        raise ValueError(
            f"`{name}` must be batch-first with rank >= {min_rank} (a batch of inputs). "
            f"Received: shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(f"`{name}` must not be empty. Received: shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"`{name}` must hold finite values only. Received: {bad} NaN or inf value(s) in an "
            f"array of shape {array.shape}"
        )
    return array.astype(np.float32, copy=False)


def fits_model_input(name: str, shape: Sequence[int], expected: Optional[Sequence[Optional[int]]]) -> None:
    """Checks an array's shape against the model's expected input shape ``(None, *S)``, if known."""
    if expected is None:
        return
    expected = tuple(expected)
    fits = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected[1:], shape[1:]))
    if not fits:
        wanted = ", ".join("?" if e is None else str(e) for e in expected[1:])
        raise ValueError(
            f"`{name}` does not fit the model, which expects inputs of shape (N, {wanted}). "
            f"Received: shape {tuple(shape)}"
        )


def model_input_array(name: str, value: Any, *, min_rank: int = 2) -> np.ndarray:
    """Returns raw model inputs (e.g. integer token ids) as a numpy array of rank >= ``min_rank``.

    Raises:
        TypeError: If ``value`` is not numeric.
        ValueError: If its rank is too small, it is empty or (for floats) not finite.
    """
    array = as_numpy(name, value)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"`{name}` must hold numbers (e.g. integer token ids). Received: {describe(array)}")
    if np.issubdtype(array.dtype, np.floating):
        return float_array(name, array, min_rank=min_rank)
    if array.ndim < min_rank:
        raise ValueError(
            f"`{name}` must be batch-first with rank >= {min_rank} (a batch of inputs). Received: shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(f"`{name}` must not be empty. Received: shape {array.shape}")
    return array


def keras_archive(name: str, path: str) -> None:
    """Checks that the ``.keras`` file at ``path`` is a zip archive, as every ``.keras`` model is.

    Raises:
        ValueError: If it is not (truncated, still being written, or another kind of file).
    """
    import os
    import zipfile

    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise ValueError(
            f"`{name}` is not a readable .keras file: a .keras model is a zip archive and this file is not one "
            f"(it may be truncated, still being written, or another kind of file; save the model again). "
            f"Received: {name}={path!r} ({os.path.getsize(path)} bytes)")


def token_ids(name: str, array: np.ndarray, vocabulary_size: Optional[int] = None,
              layer_name: Optional[str] = None) -> np.ndarray:
    """Checks that ``array`` holds whole, non-negative token ids below ``vocabulary_size``.

    Raises:
        ValueError: On fractional, negative or too large ids (an embedding would read a negative
            id from the end of its table, truncate a fraction, or fail deep inside TensorFlow).
    """
    if np.issubdtype(array.dtype, np.floating) and np.any(np.mod(array, 1) != 0):
        raise ValueError(f"`{name}` must hold whole token ids (integers, or floats without a fraction). "
                         f"Received: {describe(array)} with fractional values")
    if np.any(array < 0):
        raise ValueError(f"`{name}` token ids must be >= 0. Received: minimum {array.min()}")
    if vocabulary_size is not None and np.any(array >= vocabulary_size):
        layer = f" of the embedding layer '{layer_name}'" if layer_name else ""
        raise ValueError(f"`{name}` token ids must be below the vocabulary size{layer} ({vocabulary_size}). "
                         f"Received: maximum {array.max()}")
    return array


def references_array(
    name: str, value: Any, inputs_shape: Sequence[int], *, allow_scalar: bool = False,
    integer: bool = False,
) -> np.ndarray:
    """Returns references (or baselines) laid out as ``(N or 1, R, *S)``.

    Accepted layouts, with inputs of shape ``(N, *S)``:

    - ``(R, *S)``: the same R references for every input;
    - ``(N, R, *S)``: R references per input;
    - ``S``-shaped (one reference for all) or a scalar, when ``allow_scalar``.

    With ``integer=True`` the references are raw model inputs such as token ids.

    Raises:
        TypeError: If ``value`` is not floating-point.
        ValueError: If its shape fits none of the layouts, it is empty or not finite.
    """
    n, sample_shape = int(inputs_shape[0]), tuple(int(d) for d in inputs_shape[1:])
    if allow_scalar and isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = np.full(sample_shape, float(value), dtype=np.float32)
    if integer:
        array = model_input_array(name, value, min_rank=len(sample_shape) + 1)
    else:
        array = float_array(name, value, min_rank=0 if allow_scalar else len(sample_shape) + 1)
    if allow_scalar and array.ndim == 0:
        array = np.full(sample_shape, float(array), dtype=np.float32)
    if allow_scalar and array.shape == sample_shape:
        return array[None, None]
    if array.ndim == len(sample_shape) + 1 and array.shape[1:] == sample_shape:
        return array[None]
    if array.ndim == len(sample_shape) + 2 and array.shape[2:] == sample_shape:
        if array.shape[0] != n:
            raise ValueError(
                f"`{name}` given per input as (N, R, *input_shape) must have N={n} rows like "
                f"`inputs`. Received: shape {array.shape}"
            )
        if array.shape[1] == 0:
            raise ValueError(f"`{name}` must hold at least one reference. Received: shape {array.shape}")
        return array
    layouts = f"(R, {', '.join(map(str, sample_shape))}) or (N, R, {', '.join(map(str, sample_shape))})"
    if allow_scalar:
        layouts = f"a scalar, shape {sample_shape}, " + layouts
    raise ValueError(
        f"`{name}` must match the shape of one input {sample_shape}: expected {layouts}. "
        f"Received: shape {array.shape} for inputs of shape {tuple(inputs_shape)}"
    )


def positive_int(name: str, value: Any) -> int:
    """Returns ``value`` if it is an integer >= 1, else raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    return int(value)


def optional_positive_int(name: str, value: Any) -> Optional[int]:
    """Like :func:`positive_int`, but ``None`` passes through."""
    return None if value is None else positive_int(name, value)


def fraction(name: str, value: Any, *, low_open: bool = False) -> float:
    """Returns ``value`` as a float in [0, 1] (or (0, 1] when ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number in [0, 1]. Received: {name}={value!r}")
    value = float(value)
    if not (0.0 <= value <= 1.0) or (low_open and value == 0.0):
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"`{name}` must be in {interval}. Received: {name}={value!r}")
    return value


def step_size(value: Any) -> Union[str, float]:
    """Returns ``"auto"`` or a positive finite float."""
    if isinstance(value, str):
        if value == defaults.AUTO:
            return value
        raise ValueError(f"`step_size` must be 'auto' or a positive number. Received: step_size={value!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`step_size` must be 'auto' or a positive number. Received: step_size={value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`step_size` must be 'auto' or a positive number. Received: step_size={value!r}")
    return float(value)


def value_range(value: Any) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Returns ``None`` or a ``(low, high)`` pair of float32 arrays with ``low <= high``."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(
            f"`value_range` must be None or a pair (low, high) of numbers or arrays. "
            f"Received: value_range={describe(value)}"
        )
    for index, bound in enumerate(value[:2] if isinstance(value, (list, tuple)) else (value[0], value[1])):
        kinds = np.asarray(bound).dtype if not isinstance(bound, (str, bytes)) else np.dtype("U1")
        if isinstance(bound, (bool, np.bool_)) or kinds == np.bool_ or kinds.kind in "USO":
            raise TypeError(f"`value_range` must be a pair (low, high) of numbers or numeric arrays, e.g. (0.0, 1.0) "
                            f"for images scaled to [0, 1] or (0.0, 255.0) for raw pixels. Received: "
                            f"value_range[{index}]={bound!r}")
    low = float_array("value_range[0]", value[0], min_rank=0, allow_integer=True)
    high = float_array("value_range[1]", value[1], min_rank=0, allow_integer=True)
    try:
        np.broadcast(low, high)
    except ValueError as error:
        raise ValueError(
            f"`value_range` bounds must broadcast together. Received: shapes {low.shape} and {high.shape}"
        ) from error
    if np.any(low > high):
        raise ValueError(
            f"`value_range` must have low <= high everywhere. Received: low={_short(low)}, high={_short(high)}"
        )
    return low, high


def value_ranges(value: Any, names: Sequence[str]) -> Optional[List[Optional[Tuple[np.ndarray, np.ndarray]]]]:
    """``value_range`` for a model with inputs ``names``: ``None`` or one checked pair (or ``None``) per input.

    Accepts ``None``, one ``(low, high)`` pair for every input, or (for several inputs) a list
    or dict with one pair or ``None`` per input.
    """
    if value is None:
        return None
    count = len(names)
    if isinstance(value, dict):
        if count < 2 or not set(value) <= set(names):
            raise ValueError(f"`value_range` as a dict must be keyed by the model's input names {list(names)}. "
                             f"Received: keys {sorted(value)}")
        value = [value.get(name) for name in names]
    elif not (count > 1 and isinstance(value, (list, tuple)) and len(value) == count and all(
            item is None or (isinstance(item, (list, tuple)) and len(item) == 2) for item in value)):
        return [value_range(value)] * count
    return [None if item is None else value_range(item) for item in value]


def _short(array: np.ndarray) -> str:
    return repr(float(array)) if array.ndim == 0 else f"array of shape {array.shape}"


def fits_value_range(
    name: str, array: np.ndarray, bounds: Optional[Tuple[np.ndarray, np.ndarray]], sample_shape: Sequence[int]
) -> None:
    """Checks that ``bounds`` broadcast to one input and that ``array`` lies within them."""
    if bounds is None:
        return
    low, high = bounds
    for bound_name, bound in (("low", low), ("high", high)):
        try:
            shape = np.broadcast_shapes(bound.shape, tuple(sample_shape))
        except ValueError:
            shape = None
        if shape != tuple(sample_shape):
            raise ValueError(
                f"`value_range` {bound_name} bound must broadcast to one input of shape {tuple(sample_shape)}. "
                f"Received: shape {bound.shape}"
            )
    if np.any(array < low) or np.any(array > high):
        raise ValueError(
            f"`{name}` must lie inside `value_range` [{_short(low)}, {_short(high)}]. "
            f"Received: values from {float(array.min())} to {float(array.max())}"
        )


def targets(value: Any, count: int, num_classes: Optional[int], *,
            several: bool = False) -> Union[None, np.ndarray, Callable]:
    """Returns ``None``, a callable, or an ``(N,)`` (or ``(N, T)``) int64 array of class indices.

    Args:
        value: ``None`` (predicted class), an int, a sequence of N ints or a callable; with
            ``several``, also an ``(N, T)`` array or nested list (T targets per input).
        count: N, the number of explained inputs.
        num_classes: C, the size of the model output's last axis, or ``None`` if unknown.
        several: Whether ``(N, T)`` class indices are accepted.
    """
    if value is None or callable(value):
        return value
    forms = "None, an int, N ints, (N, T) ints, 'top-K' or a callable" if several else \
        "None, an int, N ints or a callable"
    if isinstance(value, bool):
        raise TypeError(f"`targets` must be {forms}. Received: targets={value!r}")
    array = as_numpy("targets", value)
    if array.dtype == object or not np.issubdtype(array.dtype, np.integer):
        forms = forms.replace("N ints", f"{count} ints")
        raise TypeError(f"`targets` must be {forms}. Received: {describe(array)}")
    if array.ndim == 0:
        array = np.full((count,), int(array), dtype=np.int64)
    if several and array.ndim == 2:
        if array.shape[0] != count or array.shape[1] < 1:
            raise ValueError(f"`targets` of shape (N, T) must hold one row of T >= 1 class indices per input, "
                             f"N = {count}. Received: shape {array.shape}")
    elif array.shape != (count,):
        more = f", or ({count}, T) for T targets per input" if several else ""
        raise ValueError(
            f"`targets` must be one int or {count} ints (one per input){more}. Received: shape {array.shape}"
        )
    if num_classes is not None and (np.any(array < 0) or np.any(array >= num_classes)):
        raise ValueError(
            f"`targets` must be class indices in [0, {num_classes - 1}] for a model with {num_classes} "
            f"outputs. Received: values from {int(array.min())} to {int(array.max())}"
        )
    return array.astype(np.int64)


def top_k(targets: Any, value: Any) -> Optional[int]:
    """K from ``top_k`` or a ``"top-K"`` string ``targets``; ``None`` when neither asks for the top classes.

    Args:
        targets: The ``targets`` argument (``"top-K"`` asks for the K highest logits).
        value: The ``top_k`` argument: ``None`` or a positive int.

    Raises:
        TypeError: If ``top_k`` is not an int, or a string ``targets`` is not ``"top-K"``.
        ValueError: If both ask for targets, or K < 1.
    """
    if isinstance(targets, str):
        match = re.fullmatch(r"\s*top-(\d+)\s*", targets)
        if match is None:
            raise TypeError(f"`targets` must be None, an int, N ints, (N, T) ints, 'top-K' or a callable; the "
                            f"only string is 'top-K' (the K highest logits of each input, e.g. 'top-3'). "
                            f"Received: targets={targets!r}")
        if int(match.group(1)) < 1:
            raise ValueError(f"`targets='top-K'` needs K >= 1. Received: targets={targets!r}")
        if value is not None:
            raise ValueError(f"Pass either `targets='top-K'` or `top_k`, not both. Received: targets={targets!r}, "
                             f"top_k={value!r}")
        return int(match.group(1))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`top_k` must be None or a positive int. Received: top_k={value!r}")
    if value < 1:
        raise ValueError(f"`top_k` must be a positive int. Received: top_k={value!r}")
    if targets is not None:
        raise ValueError(f"`top_k` picks the targets itself: pass `targets=None` with it. Received: top_k={value!r} "
                         f"and targets={describe(targets)}")
    return int(value)


def one_line(message: Union[str, BaseException]) -> str:
    """``message`` on one line, its whitespace runs collapsed; an error is prefixed with its type.

    Every message the command line prints, and every error met reading a model or a file, goes
    through it: an error ``OSError("No space\\n left")`` becomes ``"OSError: No space left"``.
    """
    text = " ".join(str(message).split())
    if not isinstance(message, BaseException):
        return text
    return f"{type(message).__name__}: {text}" if text else type(message).__name__
