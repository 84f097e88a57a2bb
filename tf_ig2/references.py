"""References chosen for the user: the pools, pickers and baselines that ``explain`` takes.

Every explanation starts from an answer to "which references?". This module gives the usual ones,
each in a layout ``explain`` accepts (inputs ``(N, *S)``):

- :func:`other_class`: ``count`` items of a pool (e.g. training images) whose class differs from
  the explained one, drawn at random: the references of the IG² paper (Zhuo & Ge, TPAMI 2024).
  Per input: ``(N, count, *S)``.
- :func:`relevant_class`: one pool item of each of the classes the model ranks 2nd, 3rd, ...
  for the input, the trick of the authors' ImageNet notebook (its ImageNet results apply it).
  Per input: ``(N, count, *S)``.
- :func:`blurred`, :func:`constant`, :func:`pool_mean`: the usual baselines of Integrated Gradients
  (a blurred copy of the input, a constant such as black, the data's mean). Per input
  ``(N, 1, *S)`` for the first two, shared ``(1, *S)`` for the mean.

Models with several inputs take a dict (keyed like ``explain``'s inputs) or a list of arrays, one
per input; the pickers then pick the same pool rows for every input of a row, and return the
pool's structure. A list or tuple whose entries are arrays (or tensors) is read as several inputs:
pass one input's pool as one array (``np.stack`` a list of items first). Token ids (integer pools)
keep their dtype.

Everything but :func:`relevant_class` (which scores the inputs with the model) and :func:`blurred`
(which reuses :func:`tf_ig2.metrics.gaussian_blur`) is plain numpy: importing this module does not
import TensorFlow.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from tf_ig2 import defaults, validation

#: A pool, inputs or references: one array, or a list or dict of arrays (one per model input).
Arrays = Union[np.ndarray, Sequence[np.ndarray], Dict[str, np.ndarray]]
#: A seed: a non-negative int, or a numpy Generator to draw from (advanced by the draw).
Seed = Union[int, np.random.Generator]

__all__ = ["other_class", "relevant_class", "blurred", "constant", "pool_mean"]


# -- arguments ---------------------------------------------------------------------------------------

def _split(name: str, value: Any) -> Tuple[List[np.ndarray], List[str], Callable[[List[Any]], Any]]:
    """``(arrays, labels, pack)``: the checked arrays of ``value`` (one per model input), their names in
    messages, and the function rebuilding ``value``'s structure (array, list, tuple or dict) from arrays.

    Raises:
        TypeError, ValueError: As :func:`tf_ig2.validation.model_input_array`, or if the arrays do not
            hold the same number of rows.
    """
    if isinstance(value, dict):
        if not value:
            raise ValueError(f"`{name}` as a dict must hold one array per model input. Received: an empty dict")
        keys = sorted(value)
        labels = [f"{name}[{key!r}]" for key in keys]
        raw = [value[key] for key in keys]

        def pack(parts: List[Any]) -> Any:
            return dict(zip(keys, parts))
    elif isinstance(value, (list, tuple)) and value and all(hasattr(entry, "shape") for entry in value):
        labels = [f"{name}[{index}]" for index in range(len(value))]
        raw, kind = list(value), type(value)

        def pack(parts: List[Any]) -> Any:
            return kind(parts)
    else:
        labels, raw = [name], [value]

        def pack(parts: List[Any]) -> Any:
            return parts[0]
    arrays = [validation.model_input_array(label, entry) for label, entry in zip(labels, raw)]
    rows = [len(array) for array in arrays]
    if len(set(rows)) > 1:
        raise ValueError(f"`{name}` must hold the same number of rows for every input. "
                         f"Received: {dict(zip(labels, rows))}")
    return arrays, labels, pack


def _classes(name: str, value: Any, rows: Optional[int], *, what: str) -> np.ndarray:
    """``(rows,)`` int64 class indices from ``(M,)`` indices or ``(M, C)`` one-hot rows (their argmax).

    Args:
        name: The argument's name, for messages.
        value: The labels; an int too when ``rows`` is known (one class for every row).
        rows: The number of labels expected, or ``None`` (any).
        what: What the labels label, for messages ("pool row", "input").

    Raises:
        TypeError: If ``value`` is not numeric.
        ValueError: On another rank, negative or fractional indices, or a count other than ``rows``.
    """
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    array = np.asarray(value)
    numeric = array.dtype != np.bool_ and (np.issubdtype(array.dtype, np.integer)
                                           or np.issubdtype(array.dtype, np.floating))
    if not numeric:
        raise TypeError(f"`{name}` must hold class indices (ints) or one-hot rows (numbers), one per {what}. "
                        f"Received: {validation.describe(array)}")
    if array.ndim == 0 and rows is not None:
        array = np.full((rows,), array)
    if array.ndim == 2:
        if array.shape[1] < 2:
            raise ValueError(f"`{name}` given as one-hot rows (M, C) needs C >= 2 classes. "
                             f"Received: shape {array.shape}")
        indices = np.argmax(array, axis=1)
    elif array.ndim == 1:
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.mod(array, 1) == 0):
            raise ValueError(f"`{name}` as (M,) class indices must hold whole numbers. "
                             f"Received: {validation.describe(array)} with fractional or non-finite values")
        if array.size and array.min() < 0:
            raise ValueError(f"`{name}` class indices must be >= 0. Received: minimum {array.min()}")
        indices = array
    else:
        raise ValueError(f"`{name}` must be (M,) class indices or (M, C) one-hot rows, one per {what}. "
                         f"Received: shape {array.shape}")
    if rows is not None and len(indices) != rows:
        raise ValueError(f"`{name}` must hold one label per {what}: {rows} of them. "
                         f"Received: {len(indices)} (shape {array.shape})")
    if len(indices) == 0:
        raise ValueError(f"`{name}` must not be empty. Received: shape {array.shape}")
    return indices.astype(np.int64)


def _generator(seed: Any) -> np.random.Generator:
    """A numpy Generator for ``seed`` (a non-negative int, or a Generator used as it is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be a non-negative int or a numpy.random.Generator. "
                        f"Received: seed={seed!r} of type {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"`seed` must be a non-negative int or a numpy.random.Generator. Received: seed={seed!r}")
    return np.random.default_rng(int(seed))


def _pool(pool: Any, pool_labels: Any) -> Tuple[List[np.ndarray], Callable[[List[Any]], Any], np.ndarray]:
    """The pool's arrays, its packing function and its ``(M,)`` labels."""
    arrays, _, pack = _split("pool", pool)
    return arrays, pack, _classes("pool_labels", pool_labels, len(arrays[0]), what="pool row")


def _take(arrays: List[np.ndarray], pack: Callable[[List[Any]], Any], rows: np.ndarray) -> Any:
    """``pack`` of every array's rows ``rows`` ``(N, R)``: ``(N, R, *S_i)`` per input, dtypes kept."""
    return pack([array[rows] for array in arrays])


# -- pickers ---------------------------------------------------------------------------------------

def other_class(pool: Arrays, pool_labels: Any, targets: Any, count: int,
                seed: Seed = defaults.REFERENCES_SEED) -> Any:
    """For each explained input, ``count`` pool items of other classes: the IG² paper's references.

    Each input's items are drawn at random, without replacement, from the pool rows whose label
    differs from the input's target; the draws depend only on ``seed`` (inputs in order).

    Args:
        pool: ``(M, *S)`` candidate references, e.g. training images (a list or dict of arrays for
            several inputs; integer token ids keep their dtype).
        pool_labels: The pool's classes: ``(M,)`` class indices or ``(M, C)`` one-hot rows.
        targets: The classes explained: ``(N,)`` class indices or ``(N, C)`` one-hot rows, one per
            explained input (usually the predicted or true classes).
        count: R, the references per input, >= 1.
        seed: A non-negative int, or a ``numpy.random.Generator`` to draw from.

    Returns:
        Per-input references ``(N, count, *S)`` in the pool's structure and dtype.

    Raises:
        TypeError: If ``count`` or ``seed`` is not an int, or an array is not numeric.
        ValueError: If ``count`` < 1, the labels do not fit the pool, or an input's class has fewer
            than ``count`` pool items outside it.
    """
    count = validation.positive_int("count", count)
    rng = _generator(seed)
    arrays, pack, labels = _pool(pool, pool_labels)
    explained = _classes("targets", targets, None, what="explained input")
    rows = np.empty((len(explained), count), np.int64)
    for index, target in enumerate(explained):
        candidates = np.flatnonzero(labels != target)
        if len(candidates) < count:
            raise ValueError(f"`count`={count} references of other classes are needed per input, but input {index} "
                             f"is explained for class {target} and `pool` has only {len(candidates)} item(s) of "
                             f"other classes (of {len(labels)}). Received: count={count}; pass a lower count or a "
                             f"larger pool")
        rows[index] = rng.choice(candidates, size=count, replace=False)
    return _take(arrays, pack, rows)


#: relevant_class's compiled models, one per (model, input_layer, output): made on first use, with the
#: engine's cache (TensorFlow is imported then).
_COMPILED: List[Any] = []


def _logits(model: Any, inputs: Any, input_layer: Any, output: Any, batch_size: Optional[int]) -> np.ndarray:
    """``(N, C)`` target scores of ``inputs`` as the explainers score them (logits where possible)."""
    from tf_ig2.engine.compiled_model import CompiledModel, ModelCache, value_key
    from tf_ig2.engine.model_view import num_classes

    if not _COMPILED:
        _COMPILED.append(ModelCache(defaults.REFERENCES_CACHE_SIZE))
    compiled = _COMPILED[0].get(model, (value_key(input_layer), value_key(output), batch_size),
                                lambda: CompiledModel(model, input_layer=input_layer, output=output,
                                                      batch_size=batch_size))
    outputs = compiled.outputs(compiled.check_inputs(inputs))
    compiled.view.warn_if_probabilities(outputs)
    classes = num_classes(outputs)
    if classes is None or classes < 2:
        raise ValueError(f"`relevant_class` ranks the classes of a model output of shape (N, C), C >= 2. Received: "
                         f"an output {getattr(outputs, 'shape', type(outputs).__name__)}; for a model with several "
                         f"outputs, pass `output`")
    return np.asarray(outputs).reshape(-1, classes)


def _ranked_rows(ranking: np.ndarray, explained: int, members: Dict[int, np.ndarray], count: int,
                 rng: np.random.Generator, index: int) -> List[int]:
    """One random pool row of each of the first ``count`` ranked classes that have pool items, the
    explained class skipped."""
    rows: List[int] = []
    missing: List[int] = []
    for label in ranking:
        label = int(label)
        if label == explained:
            continue
        if label not in members:
            missing.append(label)
            continue
        rows.append(int(rng.choice(members[label])))
        if len(rows) == count:
            return rows
    raise ValueError(f"`count`={count} relevant classes are needed per input, but input {index} (explained for class "
                     f"{explained}) has only {len(rows)} ranked class(es) other than it with items in `pool`; "
                     f"classes {missing} have none. Received: count={count}; pass a lower count or a pool holding "
                     f"more classes")


def relevant_class(model: Any, pool: Arrays, pool_labels: Any, inputs: Arrays, count: int,
                   seed: Seed = defaults.REFERENCES_SEED, targets: Any = None, *, input_layer: Any = None,
                   output: Any = None, batch_size: Optional[int] = None) -> Any:
    """For each input, one pool item of each class the model ranks next: the authors' ImageNet trick.

    The model scores each input on its logits, as the explainers do (a final softmax or sigmoid is
    run as the identity). The classes are ranked by decreasing logit; the explained class (the
    top one, or ``targets`` when given) is skipped, and of each of the next ``count`` classes one
    pool item is drawn at random. With ``targets=None`` these are the classes ranked 2nd to
    ``count + 1``-th; with a target other than the top class, the top class comes first. A ranked
    class with no pool item is passed over for the next one that has items.

    Args:
        model: A Keras 3 or tf_keras model ending in ``(N, C)`` outputs.
        pool: ``(M, *S)`` candidate references (a list or dict of arrays for several inputs; token
            ids keep their dtype).
        pool_labels: The pool's classes: ``(M,)`` class indices or ``(M, C)`` one-hot rows.
        inputs: ``(N, *S)`` the inputs to be explained, in ``pool``'s structure.
        count: R, the references (classes) per input, >= 1.
        seed: A non-negative int, or a ``numpy.random.Generator`` to draw from.
        targets: ``None`` (the predicted class), an int, ``(N,)`` class indices or ``(N, C)`` one-hot rows.
        input_layer, output, batch_size: As for the explainers (token ids need their embedding as
            ``input_layer`` to be scored).

    Returns:
        Per-input references ``(N, count, *S)`` in the pool's structure and dtype; row ``r`` of input
        ``n`` is an item of its ``r``-th ranked class (the explained class left out).

    Raises:
        TypeError: If ``count`` or ``seed`` is not an int, or an array is not numeric.
        ValueError: If ``count`` < 1, the labels or targets do not fit, the model has no ``(N, C)``
            output, or an input has fewer than ``count`` ranked classes (besides its own) in the pool.
    """
    count = validation.positive_int("count", count)
    rng = _generator(seed)
    arrays, pack, labels = _pool(pool, pool_labels)
    logits = _logits(model, inputs, input_layer, output, batch_size)
    if targets is None:
        explained = np.argmax(logits, axis=1)
    else:
        explained = _classes("targets", targets, len(logits), what="input")
        if explained.max() >= logits.shape[1]:
            raise ValueError(f"`targets` must be class indices in [0, {logits.shape[1] - 1}] for a model with "
                             f"{logits.shape[1]} outputs. Received: maximum {explained.max()}")
    ranking = np.argsort(-logits, axis=1, kind="stable")
    members = {int(label): np.flatnonzero(labels == label) for label in np.unique(labels)}
    rows = np.asarray([_ranked_rows(ranking[index], int(explained[index]), members, count, rng, index)
                       for index in range(len(logits))], np.int64)
    return _take(arrays, pack, rows)


# -- baselines ---------------------------------------------------------------------------------------

def _float_only(label: str, array: np.ndarray, what: str) -> None:
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"`{label}` must hold floating-point values for {what}; token ids have none (use "
                        f"`constant` with the padding id, or `other_class`). Received: {validation.describe(array)}")


def blurred(inputs: Arrays, sigma: float) -> Any:
    """Each input blurred with a Gaussian over its spatial axes: the blur baseline of IG.

    Reuses :func:`tf_ig2.metrics.gaussian_blur` (separable, edge-normalised: a constant image stays
    constant), so this imports TensorFlow.

    Args:
        inputs: ``(N, H, W)`` or ``(N, H, W, C)`` float images (a list or dict for several inputs).
        sigma: The kernel's standard deviation in pixels, > 0 (the larger, the less of the input is left).

    Returns:
        Per-input references ``(N, 1, *S)`` float32, in the inputs' structure.

    Raises:
        TypeError: If an input is not floating-point, or ``sigma`` is not a number.
        ValueError: If an input is not ``(N, H, W)`` or ``(N, H, W, C)``, or ``sigma`` <= 0.
    """
    from tf_ig2.metrics import gaussian_blur

    arrays, labels, pack = _split("inputs", inputs)
    parts = []
    for label, array in zip(labels, arrays):
        _float_only(label, array, "a blur")
        if array.ndim not in (3, 4):
            raise ValueError(f"`{label}` must be images of shape (N, H, W) or (N, H, W, C) to be blurred. "
                             f"Received: shape {array.shape}")
        parts.append(np.asarray(gaussian_blur(array, sigma))[:, None])
    return pack(parts)


def constant(inputs: Arrays, value: float = defaults.REFERENCE_CONSTANT) -> Any:
    """A reference of one value everywhere, shaped like each input: black or all-zero by default.

    Args:
        inputs: ``(N, *S)`` (a list or dict for several inputs; for token ids ``value`` is a token id,
            e.g. the padding id, and the dtype is kept).
        value: The reference's value: a finite number (a whole, non-negative one for token ids).

    Returns:
        Per-input references ``(N, 1, *S)`` (float32, or the token ids' dtype), in the inputs' structure.

    Raises:
        TypeError: If ``value`` is not a number.
        ValueError: If ``value`` is not finite, or not a token id for integer inputs.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`value` must be a number. Received: value={value!r} of type {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"`value` must be a finite number. Received: value={value!r}")
    arrays, labels, pack = _split("inputs", inputs)
    parts = []
    for label, array in zip(labels, arrays):
        if np.issubdtype(array.dtype, np.integer) and (value < 0 or value != int(value)):
            raise ValueError(f"`value` must be a token id (a whole number >= 0) for the integer `{label}`. "
                             f"Received: value={value!r}")
        parts.append(np.full((len(array), 1) + array.shape[1:], value, dtype=array.dtype))
    return pack(parts)


def pool_mean(pool: Arrays) -> Any:
    """The pool's mean item, shared by every input: the dataset-mean baseline of IG.

    Args:
        pool: ``(M, *S)`` float items, e.g. training images (a list or dict for several inputs).

    Returns:
        Shared references ``(1, *S)`` float32 (``explain``'s ``(R, *S)`` layout with R = 1), in the
        pool's structure.

    Raises:
        TypeError: If an entry is not floating-point (the mean of token ids is no token id).
    """
    arrays, labels, pack = _split("pool", pool)
    for label, array in zip(labels, arrays):
        _float_only(label, array, "a mean")
    return pack([array.mean(axis=0, dtype=np.float64).astype(np.float32)[None] for array in arrays])
