"""Running :func:`explain_dataset`: planning, resuming where an earlier run stopped, progress.

The inputs come from a source (:mod:`.sources`), are explained a batch at a time as the plan
says (:mod:`.plan`), on the replicas of a ``tf.distribute`` strategy if any (:mod:`.distribute`),
and their results go to the results folder (:mod:`.results`) a shard at a time. A run that finds
finished shards of the same settings continues after them, once it has checked that the inputs
start with those explained before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, validation
from tf_ig2.dataset.distribute import agree_on_start, distributed, is_chief, resolve_strategy
from tf_ig2.dataset.plan import Plan
from tf_ig2.dataset.results import ResultsFolder, ShardWriter, inputs_sha1, load_results
from tf_ig2.dataset.sources import Source, make_source
from tf_ig2.methods import registry as methods
from tf_ig2.methods.base import PairExplainer

logger = logging.getLogger(__package__)

PathLike = Union[str, "os.PathLike[str]"]

_PROGRESS_MODES = ("bar", "log")


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
            callable mapping the model output to ``(B,)`` scores; for T targets per input,
            ``(N, T)`` ints, ``"top-K"`` (the K highest logits of each input) or a callable returning
            ``(B, T)`` scores: the shards then hold ``(n, T, *S)`` attributions and ``(n, T)``
            scores, deltas and targets, as :meth:`tf_ig2.IG2.explain` returns them.
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
    strategy = resolve_strategy(strategy)
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(f"`output_dir` must be a path. Received: output_dir={output_dir!r}")
    output_dir = os.fspath(output_dir)

    model_rank = _model_rank(explainer)
    source = make_source(dataset, model_rank)
    sample_shape = source.sample_shape
    validation.fits_model_input("dataset", (None,) + sample_shape, explainer.view.input_shape)
    plan = Plan(explainer, sample_shape, references, targets, source.has_labels, save_counterfactuals)
    chief = is_chief(strategy)

    folder: Optional[ResultsFolder] = None
    failure: Optional[BaseException] = None
    start = 0
    if chief:
        try:
            folder = ResultsFolder.open(output_dir, plan.settings(explainer), shard_size, overwrite)
            start = folder.count
            if start:
                _check_head(source, folder)
        except (ValueError, TypeError, OSError) as error:
            failure = error
    try:
        complete = folder is not None and folder.complete
        if strategy is not None and strategy.num_replicas_in_sync > 1:
            failed, complete_flag, start = agree_on_start(strategy, (int(failure is not None), int(complete), start))
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
            return _result(folder, resumed=folder.count, seconds=time.perf_counter() - started,
                           method=explainer.method)
        if start:
            logger.info("continuing in %s after %d inputs explained earlier", output_dir, start)

        size = folder.shard_size if folder is not None else (shard_size or defaults.DATASET_SHARD_SIZE)
        writer = ShardWriter(folder, size, start) if folder is not None else None
        reporter = _Progress(mode if chief else None, source.total, start,
                             writer.shards if writer is not None else 0)
        position = _explain_all(explainer, source, plan, strategy, writer, reporter, start, batch_size)
        seconds = time.perf_counter() - started
        if folder is None:
            return DatasetResult(output_dir, position, start, -(-position // size), True, seconds,
                                 explainer.method, plan.arrays)
        return _result(folder, resumed=start, seconds=seconds, method=explainer.method)
    finally:
        if folder is not None:
            folder.close()


def _explain_all(explainer: PairExplainer, source: Source, plan: Plan, strategy: Any, writer: Optional[ShardWriter],
                 reporter: "_Progress", start: int, batch_size: int) -> int:
    """Explains the inputs after ``start`` a batch at a time into ``writer``; returns the inputs read."""
    sample_shape = source.sample_shape
    position = start
    try:
        with distributed(explainer, strategy):
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
    return position


def _result(folder: ResultsFolder, *, resumed: int, seconds: float, method: str) -> DatasetResult:
    return DatasetResult(folder.path, folder.count, resumed, folder.shards, folder.complete, seconds, method,
                         tuple(folder.index["settings"]["arrays"]))


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


def _model_rank(explainer: PairExplainer) -> Optional[int]:
    """len(S) when the model declares its input shape, else None."""
    shape = explainer.view.input_shape
    return None if shape is None else len(shape) - 1


# -- resuming ------------------------------------------------------------------------------------
def _check_head(source: Source, folder: ResultsFolder) -> None:
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
    if len(head) != first["count"] or inputs_sha1(head) != first["inputs_sha1"]:
        raise ValueError(
            "`dataset` does not start with the inputs that the earlier run in `output_dir` explained: it must yield "
            "the same inputs in the same order on every run (no reshuffling) to continue. Pass overwrite=True to "
            f"start over. Received: output_dir={folder.path!r}"
        )


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
