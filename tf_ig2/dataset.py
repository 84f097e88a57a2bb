"""Explaining whole datasets: streaming, resumable result shards and ``tf.distribute``.

:func:`explain_dataset` reads inputs ``(N, *S)`` from a ``tf.data.Dataset``, numpy arrays (memory
maps included) or any iterable of arrays, a batch at a time, explains every batch with an
explainer's compiled per-pair function (IG², Zhuo & Ge, TPAMI 2024, Eqs. 7-10; or straight-line
or Guided IG) and writes the results to a folder as they come, in shards of ``shard_size`` inputs::

    output_dir/
        index.json                     the settings and the finished shards
        attributions.00000.npy         (n, *S) float32      attributions of the shard's inputs
        target_scores.00000.npy        (n,) float32         f_c(x)
        counterfactual_scores.00000.npy (n,) float32        mean_r f_c(x'_r)
        delta.00000.npy                (n,) float32         sum(A) - (f_c(x) - mean_r f_c(x'_r))
        targets.00000.npy              (n,) int64           explained classes (not for callables)
        labels.00000.npy               (n, ...)             the dataset's labels, when it has some
        representation_distance.00000.npy (n, R, 2) float32 (IG² only)
        counterfactuals.00000.npy      (n, R, *S) float32   (only when asked for)

Every file is written under a temporary name and renamed, and the index is replaced atomically
after the shard's files, so a run that stops loses at most the shard it was working on. A second
call with the same folder and settings skips the finished shards; other settings raise a
``ValueError`` unless ``overwrite=True``. Memory stays bounded by one shard of results, whatever N.

With a ``tf.distribute`` strategy, each chunk of (input, reference) pairs is split evenly between
the replicas (``strategy.run``) and gathered back in order (``strategy.gather``), so the results are
those of one device, in the same order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import numbers
import os
import re
import sys
import time
import weakref
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from . import defaults, methods, validation
from .pairs import PairExplainer

logger = logging.getLogger(__name__)

#: The index file of a results folder.
INDEX_NAME = "index.json"
#: Records which merged (concatenated) arrays :func:`load_results` has cached.
MERGED_NAME = "merged.json"
#: Version of the folder layout written in the index.
FORMAT_VERSION = 1

_PROGRESS_MODES = ("bar", "log")
_SHARD_PATTERN = re.compile(r"^(?P<name>[a-z_]+)\.(?P<shard>\d{5,})\.npy(\.tmp)?$")
_MERGED_PATTERN = re.compile(r"^[a-z_]+\.merged\.npy(\.tmp)?$")
_ALWAYS = ("attributions", "target_scores", "counterfactual_scores", "delta")

PathLike = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass(frozen=True)
class DatasetResult:
    """What :func:`explain_dataset` did.

    Attributes:
        output_dir: The results folder.
        count: Inputs explained in the folder, earlier runs included.
        resumed: Inputs that an earlier run had already explained and this call kept.
        shards: Finished shards in the folder.
        complete: Whether the whole input stream has been explained.
        seconds: Wall time of this call.
        method: The explainer's method (``"ig2"``, ``"ig"``, ``"guided_ig"``).
        arrays: The arrays stored per input, e.g. ``("attributions", ..., "targets")``.
    """

    output_dir: str
    count: int
    resumed: int
    shards: int
    complete: bool
    seconds: float
    method: str
    arrays: Tuple[str, ...]

    @property
    def explained(self) -> int:
        """Inputs explained by this call."""
        return self.count - self.resumed

    @property
    def inputs_per_second(self) -> float:
        """Throughput of this call (0 when it had nothing left to do)."""
        return self.explained / self.seconds if self.seconds > 0 else 0.0

    def load(self, mmap_mode: Optional[str] = "r") -> Dict[str, np.ndarray]:
        """The results, as :func:`load_results` returns them."""
        return load_results(self.output_dir, mmap_mode=mmap_mode)


# -- public entry points --------------------------------------------------------------------------
def explain_dataset(
    explainer: PairExplainer,
    dataset: Any,
    references: Any,
    output_dir: PathLike,
    *,
    targets: Any = None,
    batch_size: int = defaults.DATASET_BATCH_SIZE,
    shard_size: Optional[int] = None,
    save_counterfactuals: bool = False,
    strategy: Optional[tf.distribute.Strategy] = None,
    progress: Union[bool, str] = True,
    overwrite: bool = False,
) -> DatasetResult:
    """Explains every input of ``dataset`` and writes the results to ``output_dir`` as it goes.

    Args:
        explainer: A tf_ig2 explainer such as ``tf_ig2.IG2(model, steps=64)``,
            ``tf_ig2.IntegratedGradients(model)`` or ``tf_ig2.GuidedIG(model)``. Its
            ``batch_size`` (pairs per compiled call, all replicas together) still applies.
        dataset: The inputs ``(N, *S)``, float. One of:

            - a ``tf.data.Dataset`` yielding ``x`` or ``(x, y, ...)``, batched or not (told apart
              by the rank of ``x`` against the model's input); extra elements such as sample
              weights are ignored;
            - a numpy array (a ``np.memmap`` or ``np.load(..., mmap_mode="r")`` keeps memory
              flat) or a tensor ``x``, or a tuple ``(x, y)`` of them;
            - any other iterable of arrays (one input ``S`` or a batch ``(B, *S)`` each) or of
              ``(x, y)`` tuples, e.g. a generator reading files (:func:`open_inputs`).

            Resuming needs the same inputs in the same order on every run: no reshuffling.
        references: ``(R, *S)``, shared by all inputs; ``(N, R, *S)``, per input (a memory map
            is fine); for straight-line and Guided IG also a scalar or an ``S``-shaped baseline;
            or a callable ``references(inputs (B, *S), targets (B,) int64 or None)`` returning
            ``(B, R, *S)`` or ``(R, *S)`` for a batch (e.g. references of other classes than
            the target, as in the IG² paper). A callable must give the same answer on every run.
        output_dir: The results folder; created if needed.
        targets: ``None`` (each input's predicted class), ``"labels"`` (the dataset's ``y``:
            ``(B,)`` class indices or ``(B, C)`` one-hot rows), an int, ``(N,)`` ints, or a
            callable mapping the model output to ``(B,)`` scores.
        batch_size: Inputs read and explained at a time (each brings its R pairs).
        shard_size: Inputs per result shard; ``None`` takes the folder's when continuing, else
            :data:`tf_ig2.defaults.DATASET_SHARD_SIZE`. A stopped run redoes at most one shard.
        save_counterfactuals: Also store the ``(n, R, *S)`` counterfactuals (GradCF for IG²).
        strategy: A ``tf.distribute`` strategy (``MirroredStrategy``,
            ``MultiWorkerMirroredStrategy``, ``TPUStrategy``); ``None`` uses the strategy whose
            scope is active, if any, else the default device. Pairs are split between replicas
            and gathered back in order; with several workers, every worker reads the whole
            input stream and only the chief writes.
        progress: ``True``: a progress bar with inputs per second on stderr when it is a
            terminal, else ``logging`` lines (logger ``tf_ig2.dataset``); ``"bar"`` or ``"log"``
            to choose; ``False`` for silence.
        overwrite: Replace results of other settings already in ``output_dir`` (only the
            files this function writes are removed).

    Returns:
        A :class:`DatasetResult`; ``result.load()`` or :func:`load_results` gives the arrays.

    Raises:
        TypeError, ValueError: On malformed arguments or inputs, and when ``output_dir`` holds
            results of other settings (without ``overwrite=True``) or the inputs differ from
            those an earlier run explained there.
    """
    started = time.perf_counter()
    if not isinstance(explainer, PairExplainer) or getattr(explainer, "method", None) not in methods.METHODS:
        raise TypeError(
            "`explainer` must be a tf_ig2 explainer such as tf_ig2.IG2(model) or "
            f"tf_ig2.IntegratedGradients(model). Received: {type(explainer).__name__}"
        )
    batch_size = validation.positive_int("batch_size", batch_size)
    shard_size = validation.optional_positive_int("shard_size", shard_size)
    for name, value in (("save_counterfactuals", save_counterfactuals), ("overwrite", overwrite)):
        if not isinstance(value, bool):
            raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    mode = _progress_mode(progress)
    strategy = _resolve_strategy(strategy)
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(f"`output_dir` must be a path. Received: output_dir={output_dir!r}")
    output_dir = os.fspath(output_dir)

    model_rank = _model_rank(explainer)
    source = _make_source(dataset, model_rank)
    sample_shape = source.sample_shape
    validation.fits_model_input("dataset", (None,) + sample_shape, explainer._view.input_shape)
    plan = _Plan(explainer, sample_shape, references, targets, source.has_labels, save_counterfactuals)
    chief = bool(getattr(strategy.extended, "should_checkpoint", True)) if strategy is not None else True

    folder: Optional[_Folder] = None
    failure: Optional[BaseException] = None
    start = 0
    if chief:
        try:
            folder = _Folder.open(output_dir, plan.settings(explainer), shard_size, overwrite)
            start = folder.count
            if start:
                _check_head(source, folder)
        except (ValueError, TypeError, OSError) as error:
            failure = error
    complete = folder is not None and folder.complete
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        failed, complete_flag, start = _agree_on_start(strategy, (int(failure is not None), int(complete), start))
        complete = bool(complete_flag)
        if failed and failure is None:
            raise RuntimeError("The chief worker could not open `output_dir`; see its log for the reason.")
    if failure is not None:
        raise failure

    if complete and folder is None:
        return DatasetResult(output_dir, start, start, 0, True, time.perf_counter() - started, explainer.method,
                             plan.arrays)
    if complete:
        logger.info("%s already holds all %d explanations; nothing to do", output_dir, folder.count)
        return folder.result(resumed=folder.count, seconds=time.perf_counter() - started,
                             method=explainer.method)
    if start:
        logger.info("continuing in %s after %d inputs explained earlier", output_dir, start)

    size = folder.shard_size if folder is not None else (shard_size or defaults.DATASET_SHARD_SIZE)
    writer = _ShardWriter(folder, size, start) if folder is not None else None
    reporter = _Progress(mode if chief else None, source.total, start, writer.shards if writer is not None else 0)
    position = start
    try:
        with _distributed(explainer, strategy):
            for inputs, labels in source.batches(start, batch_size):
                if tuple(inputs.shape[1:]) != sample_shape:
                    raise ValueError(
                        f"`dataset` must yield inputs of one shape {sample_shape}. Received: a batch of shape "
                        f"{inputs.shape} at input {position}"
                    )
                rows = plan.explain(inputs, labels, position)
                if writer is not None:
                    writer.add(rows, inputs)
                position += len(inputs)
                reporter.update(position, writer.shards if writer is not None else None)
        if position == 0:
            raise ValueError("`dataset` must yield at least one input. Received: an empty dataset")
        if writer is not None:
            writer.finish()
    finally:
        reporter.close(position)
    seconds = time.perf_counter() - started
    if folder is None:
        return DatasetResult(output_dir, position, start, -(-position // size), True, seconds,
                             explainer.method, plan.arrays)
    return folder.result(resumed=start, seconds=seconds, method=explainer.method)


def load_results(output_dir: PathLike, *, mmap_mode: Optional[str] = "r") -> Dict[str, np.ndarray]:
    """Loads the results :func:`explain_dataset` wrote, shards concatenated.

    Args:
        output_dir: The results folder.
        mmap_mode: ``"r"`` (default): arrays with more than one value per input (attributions,
            counterfactuals, ...) come memory-mapped; when the folder has several shards they are
            concatenated once into ``<name>.merged.npy`` (bounded memory) and reused afterwards.
            ``None``: everything is read into memory. Per-input scalars are always in memory.

    Returns:
        A dict of arrays, each with the N explained inputs (so far) first: ``attributions``
        ``(N, *S)``, ``target_scores``, ``counterfactual_scores``, ``delta`` ``(N,)``, and when
        stored ``targets`` ``(N,)``, ``labels``, ``representation_distance`` ``(N, R, 2)``,
        ``counterfactuals`` ``(N, R, *S)``.

    Raises:
        ValueError: If ``output_dir`` holds no results or a listed shard is missing.
    """
    if mmap_mode not in (None, "r", "r+", "c"):
        raise ValueError(f"`mmap_mode` must be None, 'r', 'r+' or 'c'. Received: mmap_mode={mmap_mode!r}")
    output_dir = os.fspath(output_dir)
    index = _read_index(output_dir)
    if index is None:
        raise ValueError(f"`output_dir` holds no {INDEX_NAME}, so no results of explain_dataset. "
                         f"Received: output_dir={output_dir!r}")
    shards = index["shards"]
    results: Dict[str, np.ndarray] = {}
    for name in index["arrays"]:
        paths = [os.path.join(output_dir, _shard_name(name, shard["shard"])) for shard in shards]
        missing = [path for path in paths if not os.path.exists(path)]
        if missing:
            raise ValueError(f"`output_dir` is missing finished shard files, e.g. {missing[0]!r}; explain the "
                             f"dataset again with overwrite=True. Received: output_dir={output_dir!r}")
        if not paths:
            tail = tuple(index["arrays"][name]["shape"])
            results[name] = np.empty((0,) + tail, np.dtype(index["arrays"][name]["dtype"]))
        elif len(paths) == 1:
            results[name] = np.load(paths[0], mmap_mode=mmap_mode if _per_input_size(index, name) > 1 else None)
        elif mmap_mode is None or _per_input_size(index, name) <= 1:
            results[name] = np.concatenate([np.load(path, mmap_mode="r") for path in paths])
        else:
            results[name] = _merged(output_dir, name, paths, index, mmap_mode)
    return results


def open_inputs(path: PathLike) -> Any:
    """Inputs stored on disk, in a form :func:`explain_dataset` streams with flat memory.

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
    returns one). Being re-iterable, it lets :func:`explain_dataset` check, when continuing a
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


# -- arguments -----------------------------------------------------------------------------------
def _progress_mode(progress: Any) -> Optional[str]:
    if isinstance(progress, bool):
        if not progress:
            return None
        stream = sys.stderr
        return "bar" if hasattr(stream, "isatty") and stream.isatty() else "log"
    if isinstance(progress, str) and progress in _PROGRESS_MODES:
        return progress
    raise ValueError(f"`progress` must be True, False, 'bar' or 'log'. Received: progress={progress!r}")


def _resolve_strategy(strategy: Any) -> Optional[tf.distribute.Strategy]:
    if strategy is None:
        return tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(f"`strategy` must be a tf.distribute.Strategy or None. Received: {type(strategy).__name__}")
    return strategy


def _model_rank(explainer: PairExplainer) -> Optional[int]:
    """len(S) when the model declares its input shape, else None."""
    shape = explainer._view.input_shape
    return None if shape is None else len(shape) - 1


# -- input sources -------------------------------------------------------------------------------
class _Source:
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


def _as_array(value: Any) -> np.ndarray:
    if tf.is_tensor(value):
        return value.numpy()
    return value if isinstance(value, np.ndarray) else np.asarray(value)


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or tf.is_tensor(value)


def _make_source(dataset: Any, model_rank: Optional[int]) -> _Source:
    if isinstance(dataset, tf.data.Dataset):
        return _DatasetSource(dataset, model_rank)
    if _is_array(dataset):
        return _ArraySource(dataset, None)
    if (isinstance(dataset, tuple) and len(dataset) == 2 and _is_array(dataset[0])
            and len(dataset[0].shape) >= 2 and np.ndim(dataset[1]) >= 1
            and len(dataset[1]) == dataset[0].shape[0]):
        return _ArraySource(dataset[0], dataset[1])
    if isinstance(dataset, (str, bytes, dict)) or not isinstance(dataset, Iterable):
        raise TypeError(
            "`dataset` must be a tf.data.Dataset, a numpy array (N, *S), a tuple (x, y) of arrays or an "
            f"iterable of arrays. Received: {type(dataset).__name__}"
        )
    return _IterableSource(dataset, model_rank)


class _ArraySource(_Source):
    def __init__(self, inputs: Any, labels: Any):
        self.inputs = _as_array(inputs) if tf.is_tensor(inputs) else inputs
        self.labels = None if labels is None else _as_array(labels)
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


class _DatasetSource(_Source):
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


class _IterableSource(_Source):
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


# -- what to explain and store -------------------------------------------------------------------
def _digest(array: np.ndarray) -> str:
    """sha1 of an array's values, shape and dtype (read in slices: memory maps stay flat)."""
    array = array if isinstance(array, np.ndarray) else np.asarray(array)
    digest = hashlib.sha1(f"{array.shape}{array.dtype}".encode())
    flat = array.reshape(len(array), -1) if array.ndim and len(array) else array.reshape(1, -1)
    rows = max(1, (1 << 24) // max(1, flat.shape[1] * flat.dtype.itemsize))
    for low in range(0, len(flat), rows):
        digest.update(np.ascontiguousarray(flat[low:low + rows]).tobytes())
    return digest.hexdigest()


def _callable_name(function: Callable) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', type(function).__name__)}"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 16 else {"shape": list(value.shape), "sha1": _digest(value)}
    if callable(value):
        return {"callable": _callable_name(value)}
    return repr(value)


def _model_fingerprint(model: Any) -> Dict[str, Any]:
    digest = hashlib.sha1()
    parameters = 0
    # A SavedModel's variables (read by its signature, untracked by Keras) count by value and shape:
    # their names change with every export.
    named = [(f"{weight.path if hasattr(weight, 'path') else weight.name}", weight) for weight in model.weights]
    unnamed = [("", variable) for variable in getattr(model, "signature_variables", [])]
    for name, weight in named + unnamed:
        values = np.asarray(weight.numpy())
        parameters += values.size
        digest.update(f"{name}{values.shape}".encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    return {"name": model.name, "parameters": int(parameters), "weights_sha1": digest.hexdigest()}


class _Plan:
    """The references, targets and stored arrays of one run; explains a batch into per-input rows."""

    def __init__(self, explainer: PairExplainer, sample_shape: Tuple[int, ...], references: Any, targets: Any,
                 has_labels: bool, save_counterfactuals: bool):
        self.explainer = explainer
        self.sample_shape = sample_shape
        self.allow_scalar = methods.of(explainer).scalar_reference
        self.has_labels = has_labels
        self.save_counterfactuals = save_counterfactuals
        # references: "shared" (one array for all inputs), "per_input" (N, R, *S) or "callable".
        self.embedded = getattr(explainer._view, "input_layer", None) is not None
        if callable(references) and not _is_array(references):
            self.reference_mode, self.references = "callable", references
        else:
            array = _as_array(references) if tf.is_tensor(references) else references
            if not isinstance(array, np.ndarray):
                array = np.asarray(array)
            if array.ndim == len(sample_shape) + 2:
                if tuple(array.shape[2:]) != sample_shape or array.shape[1] == 0:
                    raise ValueError(
                        f"`references` given per input must have shape (N, R, {', '.join(map(str, sample_shape))}). "
                        f"Received: shape {tuple(array.shape)}"
                    )
                self.reference_mode, self.references = "per_input", array
            else:
                if not self.embedded:  # checked here once, not at the first batch
                    validation.references_array("references", array, (1,) + sample_shape,
                                                allow_scalar=self.allow_scalar)
                self.reference_mode, self.references = "shared", array
        # targets
        if isinstance(targets, str):
            if targets != "labels":
                raise ValueError(f"`targets` given as a string must be 'labels'. Received: targets={targets!r}")
            if not has_labels:
                raise ValueError("`targets='labels'` needs a dataset yielding (x, y) with labels y. Received: a "
                                 "dataset without labels")
            self.target_mode = "labels"
        elif targets is None or callable(targets):
            self.target_mode = "callable" if callable(targets) else "predicted"
        elif isinstance(targets, bool):
            raise TypeError(f"`targets` must be None, 'labels', an int, N ints or a callable. Received: {targets!r}")
        elif isinstance(targets, numbers.Integral):
            self.target_mode = "constant"
        else:
            array = _as_array(targets)
            if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
                raise TypeError(f"`targets` must be None, 'labels', an int, (N,) ints or a callable. Received: "
                                f"{type(targets).__name__} of shape {array.shape} and dtype {array.dtype}")
            self.target_mode, targets = "array", array
        self.targets = targets
        arrays = list(_ALWAYS)
        if self.target_mode != "callable":
            arrays.append("targets")
        if has_labels:
            arrays.append("labels")
        if "representation_distance" in methods.of(explainer).extra_outputs:
            arrays.append("representation_distance")
        if save_counterfactuals:
            arrays.append("counterfactuals")
        self.arrays = tuple(arrays)

    def settings(self, explainer: PairExplainer) -> Dict[str, Any]:
        """Everything that decides the stored results, as JSON values."""
        options = {name: _jsonable(value) for name, value in sorted(explainer.settings.as_dict().items())
                   if name != "batch_size"}
        if "representation" in methods.of(explainer).extra_outputs:
            options["representation"] = explainer.representation
        if self.reference_mode == "callable":
            references = {"callable": _callable_name(self.references)}
        else:
            references = {"layout": self.reference_mode, "shape": list(self.references.shape),
                          "sha1": _digest(self.references)}
        if self.target_mode == "array":
            targets: Any = {"shape": list(self.targets.shape), "sha1": _digest(self.targets)}
        elif self.target_mode == "callable":
            targets = {"callable": _callable_name(self.targets)}
        elif self.target_mode == "constant":
            targets = int(self.targets)
        else:
            targets = self.target_mode
        return {
            "method": explainer.method,
            "explainer": type(explainer).__name__,
            "options": options,
            "model": _model_fingerprint(explainer.model),
            "sample_shape": list(self.sample_shape),
            "references": references,
            "targets": targets,
            "arrays": list(self.arrays),
        }

    def _batch_targets(self, labels: Optional[np.ndarray], position: int, count: int) -> Any:
        if self.target_mode == "labels":
            labels = np.asarray(labels)
            if labels.ndim == 2 and labels.shape[1] == 1 and np.issubdtype(labels.dtype, np.integer):
                labels = labels[:, 0]
            if labels.ndim == 2:
                return np.argmax(labels, axis=1).astype(np.int64)
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError("`targets='labels'` needs labels that are (B,) class indices or (B, C) one-hot rows. "
                                 f"Received: labels of shape {labels.shape} and dtype {labels.dtype}")
            return labels.astype(np.int64)
        if self.target_mode == "array":
            if position + count > len(self.targets):
                raise ValueError(f"`targets` holds {len(self.targets)} class indices but the dataset yields more "
                                 f"inputs (at least {position + count})")
            return np.asarray(self.targets[position:position + count])
        if self.target_mode == "constant":
            return int(self.targets)
        return self.targets  # None or a callable

    def _batch_references(self, inputs: np.ndarray, class_indices: Optional[np.ndarray], position: int) -> np.ndarray:
        count = len(inputs)
        if self.reference_mode == "shared":
            return self.references
        if self.reference_mode == "per_input":
            if position + count > len(self.references):
                raise ValueError(f"`references` given per input holds {len(self.references)} rows but the dataset "
                                 f"yields more inputs (at least {position + count})")
            return np.asarray(self.references[position:position + count])
        return self.references(inputs, class_indices)

    def explain(self, inputs: np.ndarray, labels: Optional[np.ndarray], position: int) -> Dict[str, np.ndarray]:
        """Explains ``inputs`` ``(B, *S)`` (the dataset's inputs ``position ...``); returns ``(B, ...)`` rows."""
        explainer = self.explainer
        batch_targets = self._batch_targets(labels, position, len(inputs))
        class_indices = None
        if self.reference_mode == "callable":
            class_indices, _ = explainer._resolve_targets(batch_targets, inputs)
        references = self._batch_references(inputs, class_indices, position)
        if class_indices is not None:
            batch_targets = class_indices
        explanation = explainer.explain(inputs, references, batch_targets)
        rows = {
            "attributions": explanation.attributions,
            "target_scores": explanation.target_scores,
            "counterfactual_scores": explanation.counterfactual_scores,
            "delta": explanation.delta,
        }
        if "targets" in self.arrays:
            rows["targets"] = np.asarray(explanation.targets, np.int64)
        if "labels" in self.arrays:
            rows["labels"] = np.asarray(labels)
        if "representation_distance" in self.arrays:
            rows["representation_distance"] = np.asarray(explanation.representation_distance, np.float32)
        if "counterfactuals" in self.arrays:
            rows["counterfactuals"] = explanation.counterfactuals
        return rows


# -- running pairs on several replicas -----------------------------------------------------------
#: The distributed wrappers of each explainer's compiled functions, kept across calls so that a
#: second call does not trace again; an entry goes with its explainer.
_DISTRIBUTED: "weakref.WeakKeyDictionary[PairExplainer, Dict[Tuple[int, int], _DistributedPairs]]" = (
    weakref.WeakKeyDictionary())


@contextlib.contextmanager
def _distributed(explainer: PairExplainer, strategy: Optional[tf.distribute.Strategy]) -> Iterator[None]:
    """Routes the explainer's per-pair calls through ``strategy``'s replicas for the block's duration.

    Every explainer runs its compiled per-pair functions through its ``pair_wrapper``; for the
    block, that wrapper hands back a :class:`_DistributedPairs` version of each.
    """
    if strategy is None or strategy.num_replicas_in_sync == 1:
        yield
        return
    wrappers = _DISTRIBUTED.setdefault(explainer, {})

    def distribute(function: Callable) -> Callable:
        key = (id(function), id(strategy))
        if key not in wrappers:
            wrappers[key] = _DistributedPairs(strategy, function)
        return wrappers[key]

    previous = explainer.pair_wrapper
    explainer.pair_wrapper = distribute if previous is None else (lambda function: distribute(previous(function)))
    try:
        yield
    finally:
        explainer.pair_wrapper = previous


class _DistributedPairs:
    """A per-pair function spread over a strategy's replicas, results gathered back in order.

    A chunk of P pairs is padded (with copies of its first pair) to ``capacity``, a multiple of
    the replica count, so that the compiled step keeps one shape; replica i explains the i-th
    slice of every argument and ``strategy.gather`` concatenates the slices in replica order.
    """

    def __init__(self, strategy: tf.distribute.Strategy, function: Callable):
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync
        self.capacity = 0
        self.function = function  # with self.strategy: their ids stay unique while cached

        layout: List[Tuple[str, Tuple[int, ...]]] = []

        def replica_step(*arguments):
            """One replica's pairs; float32 outputs of known shape are packed into one (p, total) tensor."""
            outputs = function(*arguments)
            layout.clear()
            names = sorted(outputs)
            if any(outputs[name].dtype != tf.float32 or not outputs[name].shape[1:].is_fully_defined()
                   for name in names):
                return outputs
            layout.extend((name, tuple(outputs[name].shape[1:])) for name in names)
            return tf.concat([tf.reshape(outputs[name], [-1, int(np.prod(shape, dtype=np.int64))])
                              for name, shape in layout], axis=1)

        @tf.function
        def step(*arguments):
            outputs = strategy.run(replica_step, args=arguments)
            # One collective for all outputs. (Strategy.gather on a dict keeps only the first replica's
            # values in TF 2.21, so a dict is gathered tensor by tensor.)
            gathered = tf.nest.map_structure(lambda value: strategy.gather(value, axis=0), outputs)
            if not layout:
                return gathered
            unpacked, offset = {}, 0
            for name, shape in layout:
                size = int(np.prod(shape, dtype=np.int64))
                unpacked[name] = tf.reshape(gathered[:, offset:offset + size], [-1, *shape])
                offset += size
            return unpacked

        self.step = step

    def __call__(self, *arguments: tf.Tensor) -> Dict[str, tf.Tensor]:
        count = int(arguments[0].shape[0])
        if count > self.capacity:
            self.capacity = -(-count // self.replicas) * self.replicas
        share = self.capacity // self.replicas

        def spread(values: tf.Tensor) -> Any:
            if count < self.capacity:
                values = tf.concat([values, tf.repeat(values[:1], self.capacity - count, axis=0)], axis=0)
            return self.strategy.experimental_distribute_values_from_function(
                lambda context: values[context.replica_id_in_sync_group * share:
                                       (context.replica_id_in_sync_group + 1) * share])

        outputs = self.step(*(spread(values) for values in arguments))
        return {name: value[:count] for name, value in outputs.items()}


def _agree_on_start(strategy: tf.distribute.Strategy, state: Tuple[int, int, int]) -> Tuple[int, int, int]:
    """The chief's (replica 0's) ``(failed, complete, finished inputs)``, shared with every worker."""
    values = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(state if context.replica_id_in_sync_group == 0 else (0, 0, 0), tf.int64))
    failed, complete, start = (int(value) for value in strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None))
    return failed, complete, start


# -- the results folder --------------------------------------------------------------------------
def _shard_name(name: str, shard: int) -> str:
    return f"{name}.{shard:05d}.npy"


def _fsync_directory(path: str) -> None:
    with contextlib.suppress(OSError, AttributeError):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _write_json(path: str, value: Dict[str, Any]) -> None:
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(os.path.dirname(path) or ".")


def _write_array(path: str, array: np.ndarray) -> None:
    temporary = path + ".tmp"
    with open(temporary, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _read_index(output_dir: str) -> Optional[Dict[str, Any]]:
    path = os.path.join(output_dir, INDEX_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            index = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(f"`output_dir` holds an unreadable {INDEX_NAME} ({error}); pass overwrite=True to start "
                         f"over. Received: output_dir={output_dir!r}") from error
    if not isinstance(index, dict) or index.get("format") != FORMAT_VERSION or "settings" not in index:
        raise ValueError(f"`output_dir` holds a {INDEX_NAME} that explain_dataset did not write (or of another "
                         f"format); pass overwrite=True to replace it. Received: output_dir={output_dir!r}")
    return index


def _differences(stored: Any, wanted: Any, prefix: str = "") -> List[str]:
    if isinstance(stored, dict) and isinstance(wanted, dict):
        found = []
        for key in sorted(set(stored) | set(wanted)):
            found += _differences(stored.get(key), wanted.get(key), f"{prefix}{key}.")
        return found
    return [] if stored == wanted else [f"{prefix.rstrip('.')}: {stored!r} -> {wanted!r}"]


def _per_input_size(index: Dict[str, Any], name: str) -> int:
    return int(np.prod(index["arrays"][name]["shape"], dtype=np.int64))


class _Folder:
    """The results folder and its index (settings, finished shards)."""

    def __init__(self, path: str, index: Dict[str, Any]):
        self.path = path
        self.index = index

    @classmethod
    def open(cls, path: str, settings: Dict[str, Any], shard_size: Optional[int], overwrite: bool) -> "_Folder":
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"`output_dir` must be a folder. Received: output_dir={path!r}, a file")
        os.makedirs(path, exist_ok=True)
        try:
            index = _read_index(path)
        except ValueError:
            if not overwrite:
                raise
            index = None
        if index is not None and not overwrite:
            wanted_shard_size = shard_size or index["shard_size"]
            differences = _differences(index["settings"], settings)
            if wanted_shard_size != index["shard_size"]:
                differences.append(f"shard_size: {index['shard_size']} -> {wanted_shard_size}")
            if differences and not index["shards"]:
                logger.info("%s holds no finished shard yet; starting over with the new settings", path)
                overwrite = True
            elif differences:
                shown = "; ".join(differences[:6]) + ("; ..." if len(differences) > 6 else "")
                raise ValueError(
                    f"`output_dir` holds results of other settings ({shown}). Pass overwrite=True to replace them "
                    f"or choose another folder. Received: output_dir={path!r}"
                )
            if not overwrite:
                folder = cls(path, index)
                folder._check_files()
                folder._remove(unfinished_only=True)
                return folder
        if overwrite:
            cls(path, {"shards": []})._remove(unfinished_only=False)
        index = {
            "format": FORMAT_VERSION,
            "settings": settings,
            "shard_size": shard_size or defaults.DATASET_SHARD_SIZE,
            "arrays": {},
            "shards": [],
            "count": 0,
            "complete": False,
        }
        folder = cls(path, index)
        folder._remove(unfinished_only=True)
        folder.save()
        return folder

    @property
    def count(self) -> int:
        return int(self.index["count"])

    @property
    def complete(self) -> bool:
        return bool(self.index["complete"])

    @property
    def shard_size(self) -> int:
        return int(self.index["shard_size"])

    def _finished_names(self) -> set:
        return {_shard_name(name, shard["shard"]) for shard in self.index["shards"] for name in self.index["arrays"]}

    def _check_files(self) -> None:
        for name in sorted(self._finished_names()):
            if not os.path.exists(os.path.join(self.path, name)):
                raise ValueError(f"`output_dir` misses the finished shard file {name!r}; pass overwrite=True to start "
                                 f"over. Received: output_dir={self.path!r}")

    def _remove(self, *, unfinished_only: bool) -> None:
        """Removes this module's files: unfinished shards and temporaries, or everything."""
        keep = self._finished_names() if unfinished_only else set()
        for name in os.listdir(self.path):
            ours = bool(_SHARD_PATTERN.match(name) or _MERGED_PATTERN.match(name))
            if unfinished_only:
                doomed = (ours and name not in keep and not _MERGED_PATTERN.match(name)) or name in (
                    INDEX_NAME + ".tmp", MERGED_NAME + ".tmp")
            else:
                doomed = ours or name in (INDEX_NAME, MERGED_NAME, INDEX_NAME + ".tmp", MERGED_NAME + ".tmp")
            if doomed:
                os.remove(os.path.join(self.path, name))

    def save(self) -> None:
        _write_json(os.path.join(self.path, INDEX_NAME), self.index)

    def add_shard(self, rows: Dict[str, np.ndarray], inputs_sha1: str) -> None:
        shard = len(self.index["shards"])
        count = len(rows["attributions"])
        arrays = self.index["arrays"]
        for name, values in rows.items():
            entry = {"dtype": values.dtype.str, "shape": list(values.shape[1:])}
            if name not in arrays:
                arrays[name] = entry
            elif arrays[name]["shape"] != entry["shape"]:
                raise ValueError(f"`{name}` must have the same shape per input in every batch "
                                 f"({arrays[name]['shape']}, e.g. the same number of references R). "
                                 f"Received: {entry['shape']}")
            _write_array(os.path.join(self.path, _shard_name(name, shard)), values)
        _fsync_directory(self.path)
        self.index["shards"].append({"shard": shard, "count": count, "inputs_sha1": inputs_sha1})
        self.index["count"] = self.count + count
        self.save()

    def finish(self) -> None:
        self.index["complete"] = True
        self.save()

    def result(self, *, resumed: int, seconds: float, method: str) -> DatasetResult:
        return DatasetResult(self.path, self.count, resumed, len(self.index["shards"]), self.complete, seconds,
                             method, tuple(self.index["settings"]["arrays"]))


def _check_head(source: _Source, folder: _Folder) -> None:
    """Compares the first shard's inputs with those the earlier run explained."""
    first = folder.index["shards"][0] if folder.index["shards"] else None
    if first is None:
        return
    head = source.head(first["count"])
    if head is None:
        logger.info("cannot read a one-shot iterator twice: the inputs of %s are not checked against the earlier run",
                    folder.path)
        return
    head = np.asarray(head, np.float32)
    if len(head) != first["count"] or _inputs_sha1(head) != first["inputs_sha1"]:
        raise ValueError(
            "`dataset` does not start with the inputs that the earlier run in `output_dir` explained: it must yield "
            "the same inputs in the same order on every run (no reshuffling) to continue. Pass overwrite=True to "
            f"start over. Received: output_dir={folder.path!r}"
        )


def _inputs_sha1(inputs: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(inputs, np.float32).tobytes()).hexdigest()


class _ShardWriter:
    """Collects per-input rows and writes a shard every ``shard_size`` inputs."""

    def __init__(self, folder: _Folder, shard_size: int, start: int):
        self.folder = folder
        self.shard_size = shard_size
        self.pending: Dict[str, List[np.ndarray]] = {}
        self.pending_inputs: List[np.ndarray] = []
        self.count = 0
        if start % shard_size and not folder.complete:
            raise ValueError(f"`output_dir` holds {start} inputs, not a whole number of shards of {shard_size}")

    @property
    def shards(self) -> int:
        return len(self.folder.index["shards"])

    def add(self, rows: Dict[str, np.ndarray], inputs: np.ndarray) -> None:
        for name, values in rows.items():
            self.pending.setdefault(name, []).append(values)
        self.pending_inputs.append(inputs)
        self.count += len(inputs)
        while self.count >= self.shard_size:
            self._write(self.shard_size)

    def _write(self, count: int) -> None:
        rows = {}
        for name, parts in self.pending.items():
            values = np.concatenate(parts) if len(parts) > 1 else parts[0]
            rows[name], rest = values[:count], values[count:]
            self.pending[name] = [rest] if len(rest) else []
        inputs = np.concatenate(self.pending_inputs) if len(self.pending_inputs) > 1 else self.pending_inputs[0]
        self.pending_inputs = [inputs[count:]] if len(inputs) > count else []
        self.folder.add_shard(rows, _inputs_sha1(inputs[:count]))
        self.count -= count

    def finish(self) -> None:
        if self.count:
            self._write(self.count)
        self.folder.finish()


def _merged(output_dir: str, name: str, paths: Sequence[str], index: Dict[str, Any], mmap_mode: str) -> np.ndarray:
    """``<name>.merged.npy``: the shards concatenated on disk, rebuilt when shards were added."""
    merged_path = os.path.join(output_dir, f"{name}.merged.npy")
    record_path = os.path.join(output_dir, MERGED_NAME)
    record: Dict[str, Any] = {}
    if os.path.exists(record_path):
        with contextlib.suppress(OSError, ValueError):
            with open(record_path, encoding="utf-8") as handle:
                record = json.load(handle)
    wanted = {"shards": len(paths), "count": int(index["count"])}
    if record.get(name) == wanted and os.path.exists(merged_path):
        return np.load(merged_path, mmap_mode=mmap_mode)
    entry = index["arrays"][name]
    try:
        temporary = merged_path + ".tmp"
        target = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.dtype(entry["dtype"]),
                                           shape=(wanted["count"], *entry["shape"]))
        low = 0
        for path in paths:
            part = np.load(path, mmap_mode="r")
            target[low:low + len(part)] = part
            low += len(part)
        target.flush()
        del target
        os.replace(temporary, merged_path)
        record[name] = wanted
        _write_json(record_path, record)
    except OSError as error:  # a read-only folder: concatenate in memory instead
        logger.warning("could not write %s (%s); concatenating %s in memory", merged_path, error, name)
        return np.concatenate([np.load(path, mmap_mode="r") for path in paths])
    return np.load(merged_path, mmap_mode=mmap_mode)


# -- progress --------------------------------------------------------------------------------------
class _Progress:
    """A keras Progbar on stderr (``"bar"``), throttled ``logging`` lines (``"log"``) or nothing."""

    def __init__(self, mode: Optional[str], total: Optional[int], start: int, shards: int):
        self.mode = mode
        self.start = start
        self.began = time.perf_counter()
        self.last_log = self.began
        self.bar = None
        if mode == "bar":
            import keras  # noqa: PLC0415 - only for the bar

            with contextlib.redirect_stdout(sys.stderr):
                self.bar = keras.utils.Progbar(total, unit_name="input", stateful_metrics=["inputs/s"])
                if start:
                    self.bar.update(start)
        self.total = total
        self.shards_logged = shards

    def _rate(self, position: int) -> float:
        elapsed = time.perf_counter() - self.began
        return (position - self.start) / elapsed if elapsed > 0 else 0.0

    def update(self, position: int, shards: Optional[int]) -> None:
        if self.mode == "bar":
            with contextlib.redirect_stdout(sys.stderr):
                self.bar.update(position, values=[("inputs/s", self._rate(position))], finalize=False)
        elif self.mode == "log":
            now = time.perf_counter()
            new_shard = shards is not None and shards > self.shards_logged
            if new_shard or now - self.last_log >= defaults.DATASET_LOG_INTERVAL:
                self.last_log = now
                self.shards_logged = shards if shards is not None else self.shards_logged
                of_total = f"/{self.total}" if self.total is not None else ""
                logger.info("explained %d%s inputs, %d shard(s) written, %.1f inputs/s", position, of_total,
                            self.shards_logged, self._rate(position))

    def close(self, position: int) -> None:
        if self.mode == "bar":
            with contextlib.redirect_stdout(sys.stderr):
                self.bar.update(position, values=[("inputs/s", self._rate(position))], finalize=True)
        elif self.mode == "log":
            logger.info("explained %d inputs in %.1f s (%.1f inputs/s)", position - self.start,
                        time.perf_counter() - self.began, self._rate(position))
