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

The package, by responsibility:

- :mod:`.sources`: the inputs (``tf.data``, arrays, iterables, files: :func:`open_inputs`,
  :class:`ArrayFiles`);
- :mod:`.distribute`: running pairs on a ``tf.distribute`` strategy's replicas;
- :mod:`.results`: the results folder, its on-disk format and its one reader
  :func:`load_results` (and :func:`merge_shards`), without TensorFlow;
- :mod:`.plan` and :mod:`.run`: the run itself, :func:`explain_dataset` (planning, resuming,
  progress).

The names below are imported on first use, so reading results does not import TensorFlow.
"""

import importlib
from typing import Any

#: Public name -> the submodule defining it.
_PUBLIC = {
    "explain_dataset": "run",
    "DatasetResult": "run",
    "load_results": "results",
    "merge_shards": "results",
    "ResultsFolder": "results",
    "INDEX_NAME": "results",
    "MERGED_NAME": "results",
    "FORMAT_VERSION": "results",
    "open_inputs": "sources",
    "ArrayFiles": "sources",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_PUBLIC))
