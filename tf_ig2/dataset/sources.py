"""Input sources of :func:`~tf_ig2.dataset.explain_dataset`: ``tf.data``, arrays, iterables and files.

A source yields the inputs ``(B, *S)`` (and labels, when the dataset has some) a batch at a time
from any input on, knows the shape ``S`` of one input and, when it can, how many inputs there are;
:meth:`Source.head` reads the first inputs again, so that a continued run can check that its
inputs are those explained before. :func:`open_inputs` and :class:`ArrayFiles` read inputs stored
on disk with flat memory.
"""

from __future__ import annotations

import itertools
import numbers
import os
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_ig2 import validation

PathLike = Union[str, "os.PathLike[str]"]


def open_inputs(path: PathLike) -> Any:
    """Inputs stored on disk, in a form :func:`~tf_ig2.dataset.explain_dataset` streams with flat memory.

    Args:
        path: A ``.npy`` file holding ``(N, *S)`` inputs, or a folder of ``.npy`` files, each
            one input ``S`` or a batch ``(B, *S)``, read in sorted file-name order.

    Returns:
        A read-only memory map ``(N, *S)`` for a file; an :class:`ArrayFiles` for a folder.

    Raises:
        ValueError: If ``path`` is neither, or the folder holds no ``.npy`` file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return ArrayFiles(path)
    if os.path.isfile(path) and path.endswith(".npy"):
        return np.load(path, mmap_mode="r")
    raise ValueError(f"`path` must be a .npy file or a folder of .npy files. Received: path={path!r}")


class ArrayFiles:
    """A re-iterable stream of arrays read from files one at a time, in order.

    Each file gives one input ``S`` or a batch ``(B, *S)`` (or an ``(x, y)`` tuple, if ``load``
    returns one). Being re-iterable, it lets :func:`~tf_ig2.dataset.explain_dataset` check, when continuing a
    stopped run, that the inputs are those explained before.

    Args:
        files: A folder (its ``.npy`` files, sorted by name) or a sequence of file paths.
        load: Reads one path into an array; default: ``np.load(path, mmap_mode="r")``. For
            images, e.g. a function decoding and scaling one image to ``(H, W, C)`` float32.
        num_inputs: The number of inputs, if known (shown by the progress bar).

    Example:
        >>> files = ArrayFiles(sorted(glob.glob("images/*.png")), load=read_image, num_inputs=n)
        >>> tf_ig2.explain_dataset(explainer, files, references, "results")
    """

    def __init__(self, files: Union[PathLike, Sequence[PathLike]], *,
                 load: Optional[Callable[[str], Any]] = None, num_inputs: Optional[int] = None):
        if isinstance(files, (str, os.PathLike)):
            folder = os.fspath(files)
            if not os.path.isdir(folder):
                raise ValueError(f"`files` must be a folder or a sequence of paths. Received: files={folder!r}")
            self.paths = sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".npy"))
            if not self.paths:
                raise ValueError(f"`files` names a folder without .npy files. Received: files={folder!r}")
        else:
            self.paths = [os.fspath(path) for path in files]
            if not self.paths:
                raise ValueError("`files` must name at least one file. Received: an empty sequence")
        if load is not None and not callable(load):
            raise TypeError(f"`load` must be a callable or None. Received: {type(load).__name__}")
        self.load = load or (lambda path: np.load(path, mmap_mode="r"))
        self.num_inputs = validation.optional_positive_int("num_inputs", num_inputs)

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[Any]:
        for path in self.paths:
            yield self.load(path)


# -- sources -------------------------------------------------------------------------------------
class Source:
    """A stream of inputs: its sample shape, whether it has labels and how many inputs (if known)."""

    sample_shape: Tuple[int, ...] = ()
    has_labels: bool = False
    total: Optional[int] = None

    def batches(self, start: int, batch_size: int) -> Iterator[Tuple[np.ndarray, Optional[np.ndarray]]]:
        """``(inputs (B, *S), labels (B, ...) or None)`` from input ``start`` on."""
        raise NotImplementedError

    def head(self, count: int) -> Optional[np.ndarray]:
        """The first ``count`` inputs, or None when the stream cannot be read twice."""
        raise NotImplementedError


def as_array(value: Any) -> np.ndarray:
    """``value`` as a numpy array (a tensor is read; an array is returned as it is)."""
    if tf.is_tensor(value):
        return value.numpy()
    return value if isinstance(value, np.ndarray) else np.asarray(value)


def is_array(value: Any) -> bool:
    """Whether ``value`` is a numpy array (a memory map included) or a tensor."""
    return isinstance(value, np.ndarray) or tf.is_tensor(value)


def make_source(dataset: Any, model_rank: Optional[int]) -> Source:
    """The source reading ``dataset``; ``model_rank`` (``len(S)``, if known) tells inputs from batches.

    Raises:
        TypeError: If ``dataset`` is none of the accepted kinds.
    """
    if isinstance(dataset, tf.data.Dataset):
        return _DatasetSource(dataset, model_rank)
    if is_array(dataset):
        return _ArraySource(dataset, None)
    if (isinstance(dataset, tuple) and len(dataset) == 2 and is_array(dataset[0])
            and len(dataset[0].shape) >= 2 and np.ndim(dataset[1]) >= 1
            and len(dataset[1]) == dataset[0].shape[0]):
        return _ArraySource(dataset[0], dataset[1])
    if isinstance(dataset, (str, bytes, dict)) or not isinstance(dataset, Iterable):
        raise TypeError(
            "`dataset` must be a tf.data.Dataset, a numpy array (N, *S), a tuple (x, y) of arrays or an "
            f"iterable of arrays. Received: {type(dataset).__name__}"
        )
    return _IterableSource(dataset, model_rank)


class _ArraySource(Source):
    def __init__(self, inputs: Any, labels: Any):
        self.inputs = as_array(inputs) if tf.is_tensor(inputs) else inputs
        self.labels = None if labels is None else as_array(labels)
        if len(self.inputs.shape) < 2:
            raise ValueError(f"`dataset` given as an array must be batch-first (N, *S) with rank >= 2. "
                             f"Received: shape {tuple(self.inputs.shape)}")
        self.sample_shape = tuple(int(d) for d in self.inputs.shape[1:])
        self.has_labels = self.labels is not None
        self.total = int(self.inputs.shape[0])

    def batches(self, start, batch_size):
        for low in range(start, self.total, batch_size):
            high = min(low + batch_size, self.total)
            yield (np.asarray(self.inputs[low:high]),
                   None if self.labels is None else np.asarray(self.labels[low:high]))

    def head(self, count):
        return np.asarray(self.inputs[:count])


class _DatasetSource(Source):
    def __init__(self, dataset: tf.data.Dataset, model_rank: Optional[int]):
        spec = dataset.element_spec
        if isinstance(spec, tuple) and spec:
            x_spec, y_spec = spec[0], spec[1] if len(spec) > 1 else None
        else:
            x_spec, y_spec = spec, None
        if not isinstance(x_spec, tf.TensorSpec) or x_spec.shape.rank is None:
            raise TypeError(
                "`dataset` must yield a tensor `x` of known rank, or `(x, y, ...)` tuples (one input tensor: "
                f"models with several inputs are not supported). Received: element_spec={spec!r}"
            )
        self.has_labels = isinstance(y_spec, tf.TensorSpec)
        rank = x_spec.shape.rank
        if model_rank is not None:
            if rank not in (model_rank, model_rank + 1):
                raise ValueError(
                    f"`dataset` must yield inputs of rank {model_rank} (one input) or {model_rank + 1} (a batch) "
                    f"for this model. Received: element_spec {x_spec}"
                )
            self.batched = rank == model_rank + 1
        else:
            self.batched = rank >= 1 and x_spec.shape[0] is None
        select = (lambda *element: (element[0], element[1])) if self.has_labels else (
            (lambda *element: element[0]) if isinstance(spec, tuple) else None)
        elements = dataset.map(select) if select is not None else dataset
        self.elements = elements.unbatch() if self.batched else elements
        x_shape = (self.elements.element_spec[0] if self.has_labels else self.elements.element_spec).shape
        if x_shape.is_fully_defined():
            self.sample_shape = tuple(int(d) for d in x_shape)
        else:
            first = next(iter(self.elements.take(1)), None)
            if first is None:
                raise ValueError("`dataset` must not be empty. Received: a dataset without elements")
            self.sample_shape = tuple(int(d) for d in (first[0] if self.has_labels else first).shape)
        cardinality = int(self.elements.cardinality())
        self.total = cardinality if cardinality >= 0 else None

    def batches(self, start, batch_size):
        stream = self.elements.skip(start).batch(batch_size).prefetch(tf.data.AUTOTUNE)
        for element in stream.as_numpy_iterator():
            if self.has_labels:
                yield element[0], element[1]
            else:
                yield element, None

    def head(self, count):
        for element in self.elements.take(count).batch(count).as_numpy_iterator():
            return element[0] if self.has_labels else element
        return np.zeros((0,) + self.sample_shape, np.float32)


class _IterableSource(Source):
    def __init__(self, iterable: Iterable, model_rank: Optional[int]):
        self.iterable = iterable
        self.iterator = iter(iterable)
        self.reiterable = self.iterator is not iterable
        try:
            first = next(self.iterator)
        except StopIteration:
            raise ValueError("`dataset` must not be empty. Received: an iterable without items") from None
        self.first = first
        self.has_labels = isinstance(first, tuple)
        x = np.asarray(first[0] if self.has_labels else first)
        if model_rank is not None and x.ndim not in (model_rank, model_rank + 1):
            raise ValueError(
                f"`dataset` items must be one input of rank {model_rank} or a batch of rank {model_rank + 1} "
                f"for this model. Received: an item of shape {x.shape}"
            )
        self.rank = model_rank if model_rank is not None else x.ndim - 1
        if x.ndim < 1:
            raise ValueError(f"`dataset` items must be arrays. Received: an item of shape {x.shape}")
        self.sample_shape = tuple(x.shape[x.ndim - self.rank:])
        total = getattr(iterable, "num_inputs", None)
        self.total = int(total) if isinstance(total, numbers.Integral) else None
        self.used = False

    def _rows(self, items: Iterable) -> Iterator[Tuple[np.ndarray, Optional[np.ndarray]]]:
        for number, item in enumerate(items):
            if isinstance(item, tuple) != self.has_labels:
                raise TypeError(f"`dataset` items must all be arrays or all (x, y) tuples. Received: item {number} "
                                f"of type {type(item).__name__}")
            x = np.asarray(item[0] if self.has_labels else item)
            y = np.asarray(item[1]) if self.has_labels else None
            if x.ndim == self.rank:
                x = x[None]
                y = None if y is None else y[None]
            elif x.ndim != self.rank + 1:
                raise ValueError(f"`dataset` items must have rank {self.rank} or {self.rank + 1}. Received: item "
                                 f"{number} of shape {x.shape}")
            if y is not None and (y.ndim == 0 or len(y) != len(x)):
                raise ValueError(f"`dataset` item {number} has {len(x)} inputs but labels of shape {y.shape}")
            yield x, y

    def batches(self, start, batch_size):
        if self.used:
            raise ValueError("`dataset` is an iterator that was already consumed; pass a fresh one")
        self.used = True
        skipped = 0
        pending_x: List[np.ndarray] = []
        pending_y: List[np.ndarray] = []
        pending = 0
        for x, y in self._rows(itertools.chain([self.first], self.iterator)):
            if skipped < start:
                drop = min(start - skipped, len(x))
                skipped += drop
                x, y = x[drop:], None if y is None else y[drop:]
                if not len(x):
                    continue
            pending_x.append(x)
            if y is not None:
                pending_y.append(y)
            pending += len(x)
            while pending >= batch_size:
                inputs, labels = np.concatenate(pending_x), np.concatenate(pending_y) if pending_y else None
                yield inputs[:batch_size], None if labels is None else labels[:batch_size]
                pending_x = [inputs[batch_size:]]
                pending_y = [] if labels is None else [labels[batch_size:]]
                pending -= batch_size
        if pending:
            yield np.concatenate(pending_x), np.concatenate(pending_y) if pending_y else None

    def head(self, count):
        if not self.reiterable:
            return None
        parts, have = [], 0
        for x, _ in self._rows(iter(self.iterable)):
            parts.append(x[:count - have])
            have += len(parts[-1])
            if have >= count:
                break
        return np.concatenate(parts)
