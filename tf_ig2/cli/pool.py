"""References drawn from a labelled pool: ``--reference-pool``, ``--reference-labels``, ``--pick``.

Instead of ``--references``, ``tf-ig2 explain`` can draw each input's references from a pool of
labelled items (e.g. training images) with the pickers of :mod:`tf_ig2.references`:

- ``--pick other-class`` (the default): :func:`tf_ig2.references.other_class`, R items of classes
  other than the explained one, drawn at random: the IG² paper's references. With several
  targets per input (``--targets``, ``--top-k``) every explained class of the input is left out
  when the pool holds R items outside all of them; for an input where it does not, only its
  first target's class is left out, and a warning names those inputs.
- ``--pick relevant-class``: :func:`tf_ig2.references.relevant_class`, one item of each class the
  model ranks next after the explained one (2nd, 3rd, ... for the predicted class); with several
  targets per input the ranking skips the first target's class only.

R is ``--references-per-input`` (:data:`tf_ig2.defaults.REFERENCES_PER_INPUT`), the draws'
seed ``--reference-seed`` (:data:`tf_ig2.defaults.REFERENCES_SEED`). The pool is read like
``--references`` (:func:`tf_ig2.cli.inputs.read_in_memory`: scaled, resized, token ids for
``--input-layer``, one ``NAME=PATH`` per input for a model with several inputs), the labels
(``(M,)`` class indices or ``(M, C)`` one-hot rows) by :func:`tf_ig2.cli.files.read_array`.

The pickers draw pool rows, not pool items: they are called with the row numbers as the pool
(their draws depend on the labels and the seed only), and the items of the rows drawn are
taken here. So the references equal those the pickers return for the pool itself, and the rows
are listed per input in ``summary.json`` (``reference_rows``).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from tf_ig2 import defaults
from tf_ig2.cli import inputs as cli_inputs
from tf_ig2.cli.inputs import UsageError

#: ``--pick``: the pickers of tf_ig2.references, by their command-line names.
PICKS = ("other-class", "relevant-class")
DEFAULT_PICK = "other-class"

#: The flags that only apply with ``--reference-pool``, by their ``args`` attribute.
POOL_FLAGS = {"reference_labels": "--reference-labels", "pick": "--pick",
              "references_per_input": "--references-per-input", "reference_seed": "--reference-seed"}


@dataclasses.dataclass(frozen=True)
class PoolArgument:
    """``--reference-pool`` and its companions, as given (checked, files not yet read).

    Attributes:
        files: The pool: one path, or ``{input name: path}`` for a model with several inputs.
        labels: The path of the pool's labels.
        pick: ``"other-class"`` or ``"relevant-class"``.
        count: R, the references drawn per input.
        seed: The seed of the draws.
    """

    files: Union[str, Dict[str, str]]
    labels: str
    pick: str
    count: int
    seed: int

    def settings(self) -> Dict[str, Any]:
        """The entries of summary.json's settings that say how the references were drawn."""
        return {"reference_pool": self.files, "reference_labels": self.labels, "pick": self.pick,
                "references_per_input": self.count, "reference_seed": self.seed}


def add_arguments(explain: argparse.ArgumentParser, references: Any, *, count: Callable[[str], int],
                  seed: Callable[[str], int]) -> None:
    """Adds ``--reference-pool`` to the group of ``--references`` (they exclude each other), and its companions.

    Args:
        explain: The parser of ``tf-ig2 explain``.
        references: The mutually exclusive group holding ``--references``.
        count, seed: The argparse types of ``--references-per-input`` (>= 1) and ``--reference-seed`` (>= 0).
    """
    references.add_argument("--reference-pool", action="append", type=cli_inputs.file_argument,
                            metavar="PATH|NAME=PATH",
                            help="instead of --references, draw each input's references from this labelled pool "
                                 "(M, *S), e.g. training images, read as --references files are (scaled, resized; "
                                 "one NAME=PATH per input for a model with several inputs); needs "
                                 "--reference-labels; not with --stream")
    explain.add_argument("--reference-labels", metavar="FILE.npy",
                         help="with --reference-pool: the pool's classes, (M,) class indices or (M, C) one-hot rows")
    explain.add_argument("--pick", choices=PICKS,
                         help="with --reference-pool: other-class draws items of classes other than the explained "
                              "ones at random (the IG2 paper's references); relevant-class one item of each class "
                              f"the model ranks next, 2nd, 3rd, ... (tf_ig2.references; default: {DEFAULT_PICK})")
    explain.add_argument("--references-per-input", type=count, metavar="R",
                         help=f"with --reference-pool: references drawn per input (default: "
                              f"{defaults.REFERENCES_PER_INPUT})")
    explain.add_argument("--reference-seed", type=seed, metavar="SEED",
                         help=f"with --reference-pool: seed of the draws (default: {defaults.REFERENCES_SEED})")


def pool_argument(args: argparse.Namespace) -> Optional[PoolArgument]:
    """``--reference-pool`` and its companions, or ``None`` when no pool is given (checked before TensorFlow).

    Raises:
        UsageError: If a companion flag is given without ``--reference-pool``, the labels are
            missing, the pool is combined with ``--stream``, or named and unnamed pools are mixed.
    """
    files = cli_inputs.files_argument(getattr(args, "reference_pool", None), "reference-pool")
    if files is None:
        for name, flag in POOL_FLAGS.items():
            value = getattr(args, name, None)
            if value is not None:
                raise UsageError(f"argument {flag}: only applies with --reference-pool (references drawn from a "
                                 f"labelled pool). Received: {flag} {value} without --reference-pool")
        return None
    if args.reference_labels is None:
        raise UsageError("argument --reference-labels: required with --reference-pool: a .npy file of the pool's "
                         "classes, (M,) class indices or (M, C) one-hot rows, one per pool item")
    if args.stream:
        raise UsageError("argument --reference-pool: draws (N, R) references per input, which a streamed run would "
                         "have to hold in memory; explain without --stream, or draw the references in Python "
                         "(tf_ig2.references.other_class) and pass them to --references as an (N, R, *S) .npy file")
    return PoolArgument(files=files, labels=args.reference_labels, pick=args.pick or DEFAULT_PICK,
                        count=args.references_per_input or defaults.REFERENCES_PER_INPUT,
                        seed=defaults.REFERENCES_SEED if args.reference_seed is None else args.reference_seed)


def pool_wording(text: str) -> str:
    """The messages of :mod:`tf_ig2.references` in the flags of the command line."""
    text = re.sub(r"`?\bcount`?=(\d+)", r"--references-per-input \1", text)
    text = text.replace("a lower count", "a lower --references-per-input")
    return (text.replace("`pool_labels`", "--reference-labels").replace("`pool`", "--reference-pool")
            .replace("`seed`", "--reference-seed"))


def _rows_of(pool: Any, inputs: Any) -> int:
    """M, the pool's rows, after checking that its items have the inputs' shape.

    Raises:
        ValueError: If a pool item's shape is not that of an input, or the pools of several
            inputs hold different numbers of rows.
    """
    pairs = pool.items() if isinstance(pool, dict) else [(None, pool)]
    counts = {}
    for name, values in pairs:
        given = inputs if name is None else inputs[name]
        label = "--reference-pool" if name is None else f"--reference-pool {name}"
        if np.ndim(values) != np.ndim(given) or np.shape(values)[1:] != np.shape(given)[1:]:
            raise ValueError(f"{label} must hold (M, {', '.join(map(str, np.shape(given)[1:]))}) items shaped like "
                             f"one input. Received: shape {tuple(np.shape(values))}")
        counts[name] = int(np.shape(values)[0])
    if len(set(counts.values())) > 1:
        raise ValueError(f"--reference-pool must hold the same number of items for every input. Received: "
                         f"{', '.join(f'{name} {count}' for name, count in counts.items())}")
    return next(iter(counts.values()))


def _other_class_rows(labels: Any, targets: np.ndarray, count: int, seed: int,
                      rows: int) -> Tuple[np.ndarray, List[int]]:
    """``(N, R)`` pool rows of other classes than each input's targets, and the inputs where only the first counted."""
    from tf_ig2 import references

    index_pool = np.arange(rows, dtype=np.int64)[:, None]
    if targets.ndim == 1:
        return references.other_class(index_pool, labels, targets, count, seed=seed)[..., 0], []
    # Checks the labels, and that each input's first target leaves R items (the least that is asked).
    references.other_class(index_pool, labels, targets[:, 0], count, seed=seed)
    classes = np.asarray(labels)
    classes = np.argmax(classes, axis=1) if classes.ndim == 2 else classes.astype(np.int64)
    # One generator for all inputs, as other_class draws for several inputs: the rows equal those of
    # one call when the other targets' classes leave the draws' candidates unchanged.
    rng = np.random.default_rng(seed)
    picked = np.empty((len(targets), count), np.int64)
    only_first = []
    for index, explained in enumerate(targets):
        others = np.isin(classes, explained[1:])
        if np.count_nonzero(~np.isin(classes, explained)) < count:
            others[:] = False
            only_first.append(index)
        kept = np.flatnonzero(~others)
        picked[index] = kept[references.other_class(np.arange(len(kept))[:, None], classes[kept], explained[:1],
                                                    count, seed=rng)[0, :, 0]]
    return picked, only_first


def pick_rows(pool: PoolArgument, labels: Any, targets: np.ndarray, rows: int, *, model: Any = None,
              inputs: Any = None, input_layer: Any = None, batch_size: Optional[int] = None) -> np.ndarray:
    """The ``(N, R)`` pool rows drawn for each input by ``pool.pick``.

    Args:
        pool: The pool's flags.
        labels: The pool's labels as read: ``(M,)`` class indices or ``(M, C)`` one-hot rows.
        targets: The explained classes, ``(N,)`` or ``(N, T)``.
        rows: M, the pool's rows.
        model, inputs, input_layer, batch_size: For ``relevant-class``: the model scoring the
            inputs (the explainer's), the inputs, the embedding layer reading token ids and the
            batch size.

    Raises:
        ValueError, TypeError: As the pickers of :mod:`tf_ig2.references`, in the command line's
            words (:func:`pool_wording`).

    Warns:
        UserWarning: With several targets, naming the inputs whose references leave out their
            first target's class only.
    """
    from tf_ig2 import references

    try:
        if pool.pick == "relevant-class":
            first = targets if targets.ndim == 1 else targets[:, 0]
            return references.relevant_class(model, np.arange(rows, dtype=np.int64)[:, None], labels, inputs,
                                             pool.count, seed=pool.seed, targets=first, input_layer=input_layer,
                                             batch_size=batch_size)[..., 0]
        picked, only_first = _other_class_rows(labels, targets, pool.count, pool.seed, rows)
    except (ValueError, TypeError) as error:
        raise type(error)(pool_wording(str(error))) from error
    if only_first:
        shown = ", ".join(map(str, only_first[:10])) + (", ..." if len(only_first) > 10 else "")
        warnings.warn(f"--pick other-class: the pool holds fewer than {pool.count} items outside all the explained "
                      f"classes of input(s) {shown}; their references leave out the class of their first target "
                      f"only, and may be of their other targets' classes", UserWarning, stacklevel=2)
    return picked


def take(pool: Any, rows: np.ndarray) -> Any:
    """The pool's items at ``rows`` ``(N, R)``: ``(N, R, *S)`` references (a dict for several inputs)."""
    if isinstance(pool, dict):
        return {name: np.asarray(values)[rows] for name, values in pool.items()}
    return np.asarray(pool)[rows]


def pick_references(pool: PoolArgument, values: Any, labels: Any, targets: np.ndarray, *, model: Any,
                    inputs: Any, input_layer: Any = None, batch_size: Optional[int] = None) -> Tuple[Any, np.ndarray]:
    """``(references (N, R, *S), rows (N, R))`` drawn from the pool ``values`` for the explained ``targets``.

    Raises:
        ValueError, TypeError: If the pool does not fit the inputs, or as :func:`pick_rows`.
    """
    rows = pick_rows(pool, labels, np.asarray(targets, np.int64), _rows_of(values, inputs), model=model,
                     inputs=inputs, input_layer=input_layer, batch_size=batch_size)
    return take(values, rows), rows
