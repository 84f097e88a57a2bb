"""References the callbacks pick for the user: ``references="other_class"`` or ``"relevant_class"``.

The items come from a labelled pool: ``reference_pool=(x_pool, y_pool)``, else the labelled
``validation_data`` ``(x, y)`` itself. The pickers are those of :mod:`tf_ig2.references`, seeded:

- ``"other_class"``: for each logged input, ``references_per_input`` pool items drawn at random
  among those whose class is none of the input's explained classes
  (:func:`tf_ig2.references.other_class`). Picked once, in the constructor, when the explained
  classes are known then (``class_index`` or labels); else at every logged epoch, for the classes
  the model then gives (its prediction, or ``"top-K"``).
- ``"relevant_class"``: for each logged input, one pool item of each of the classes the model
  ranks next after its explained classes (:func:`tf_ig2.references.relevant_class`). The ranking
  changes while the model trains, so they are picked at every logged epoch, with the model's
  weights of that epoch.

Each pick starts from a new generator seeded with ``references_seed``: with one target per input it
is the picker's own call, ``other_class(pool, y_pool, targets, count, seed=references_seed)`` or
``relevant_class(model, pool, y_pool, inputs, count, seed=references_seed, targets=targets)``. With
T targets per input, the inputs are picked for one after the other from that one generator, each
by the same call on the pool less the items of its other explained classes (``relevant_class``) or
with their labels read as its first class (``other_class``): no reference of any explained class.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Callable, Dict, Optional

import numpy as np

from tf_ig2 import defaults, validation
from tf_ig2 import references as reference_pickers

#: The pickers ``references`` may name.
PICKERS = ("other_class", "relevant_class")


@dataclasses.dataclass(frozen=True)
class Picker:
    """A reference picker and its pool, checked.

    Attributes:
        name: ``"other_class"`` or ``"relevant_class"``.
        pool: ``(M, *S)`` candidate references.
        labels: ``(M,)`` int64 their classes.
        count: R, the references per input.
        seed: The seed of every pick.
        source: Where the pool came from, for messages (``"reference_pool"`` or ``"validation_data"``).
    """

    name: str
    pool: np.ndarray
    labels: np.ndarray
    count: int
    seed: int
    source: str

    def needs_model(self, targets_fixed: bool) -> bool:
        """Whether the references are picked at every logged epoch (with the model of that epoch)."""
        return self.name == "relevant_class" or not targets_fixed

    def check_enough(self, explained: Optional[np.ndarray], several: Optional[int]) -> None:
        """Raises a ``ValueError`` naming ``references_per_input`` if some input cannot get R references.

        Args:
            explained: ``(n, T)`` the explained classes when known, else ``None``.
            several: T when ``explained`` is ``None`` (the model's classes), for the worst case.
        """
        classes, sizes = np.unique(self.labels, return_counts=True)
        hint = (f"Received: references_per_input={self.count}; pass a lower `references_per_input` or a "
                f"`{self.source}` with more items of more classes")
        if explained is None:
            taken = int(np.sort(sizes)[::-1][:several].sum())
            left = len(classes) - several if self.name == "relevant_class" else len(self.labels) - taken
            if left < self.count:
                what = f"items of only {left} class(es)" if self.name == "relevant_class" else f"only {left} item(s)"
                raise ValueError(f"`references_per_input`={self.count} references per input are asked of "
                                 f"`references={self.name!r}`, but "
                                 f"`{self.source}` holds {what} outside the {several} class(es) an input may be "
                                 f"explained for (the largest ones: the model chooses them when logging). {hint}")
            return
        for index, row in enumerate(explained):
            outside = ~np.isin(self.labels, row)
            left = len(np.unique(self.labels[outside])) if self.name == "relevant_class" else int(outside.sum())
            if left < self.count:
                what = (f"items of only {left} other class(es)" if self.name == "relevant_class"
                        else f"only {left} item(s) of other classes")
                raise ValueError(f"`references_per_input`={self.count} references per input are asked of "
                                 f"`references={self.name!r}`, but input "
                                 f"{index}, explained for class(es) {row.tolist()}, has {what} in "
                                 f"`{self.source}`. {hint}")

    def pick(self, explained: np.ndarray, *, model: Any = None, inputs: Optional[np.ndarray] = None,
             options: Optional[Dict[str, Any]] = None) -> np.ndarray:
        """``(n, R, *S)`` references for inputs explained for ``explained`` ``(n,)`` or ``(n, T)``.

        Args:
            explained: The explained classes of the ``n`` inputs.
            model: The model ranking the classes (``"relevant_class"``).
            inputs: ``(n, *S)`` the explained inputs (``"relevant_class"``).
            options: The explainer's options; ``input_layer``, ``output`` and ``batch_size`` are
                passed to ``relevant_class`` so that it scores the inputs as the explainer does.

        Raises:
            ValueError: If an input has fewer than R candidates (see the pickers).
        """
        scoring = {key: value for key, value in (options or {}).items()
                   if key in ("input_layer", "output", "batch_size")}

        def call(pool: np.ndarray, labels: np.ndarray, targets: np.ndarray, seed: Any,
                 rows: slice) -> np.ndarray:
            if self.name == "other_class":
                return reference_pickers.other_class(pool, labels, targets, self.count, seed=seed)
            return reference_pickers.relevant_class(model, pool, labels, inputs[rows], self.count, seed=seed,
                                                    targets=targets, **scoring)

        explained = np.asarray(explained, np.int64)
        if explained.ndim == 1:
            return np.asarray(call(self.pool, self.labels, explained, self.seed, slice(None)))
        generator = np.random.default_rng(self.seed)
        picked = []
        for index, row in enumerate(explained):
            pool, labels = self.pool, self.labels
            others = np.isin(labels, row[1:])
            if self.name == "other_class":
                labels = np.where(others, row[0], labels)
            else:
                pool, labels = pool[~others], labels[~others]
            picked.append(np.asarray(call(pool, labels, row[:1], generator, slice(index, index + 1)))[0])
        return np.stack(picked)


def seed(value: Any) -> int:
    """``references_seed`` checked: a non-negative int."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"`references_seed` must be a non-negative int. Received: references_seed={value!r}")
    if value < 0:
        raise ValueError(f"`references_seed` must be a non-negative int. Received: references_seed={value!r}")
    return int(value)


def from_arguments(references: Any, pool: Any, count: Any, seed_value: Any, inputs: np.ndarray,
                   labels: Optional[np.ndarray], check_inputs: Callable[[Any], Any]) -> Optional[Picker]:
    """The callback's picker: named by ``references``, or ``None`` when references are given (or none).

    Args:
        references: The callback's ``references``; a string names a picker.
        pool, count, seed_value: ``reference_pool``, ``references_per_input`` and ``references_seed``
            (``None`` for the defaults ``defaults.REFERENCES_PER_INPUT`` and ``defaults.REFERENCES_SEED``).
        inputs, labels: All validation inputs and their labels (or ``None``).
        check_inputs: ``split_validation_data`` for the callback's input kind.

    Raises:
        TypeError, ValueError: On the errors of :func:`make_picker`, a bad count or seed, or picker
            arguments given with references that are not a picker's name.
    """
    if not isinstance(references, str):
        given = [name for name, value in (("reference_pool", pool), ("references_per_input", count),
                                          ("references_seed", seed_value)) if value is not None]
        if given:
            raise ValueError(f"{', '.join(f'`{name}`' for name in given)} only go with a reference picker: "
                             f"`references` one of {list(PICKERS)}. Received: references="
                             f"{validation.describe(references)}")
        return None
    count = defaults.REFERENCES_PER_INPUT if count is None else validation.positive_int("references_per_input", count)
    seed_value = defaults.REFERENCES_SEED if seed_value is None else seed(seed_value)
    return make_picker(references, pool, inputs, labels, count=count, seed_value=seed_value, check_inputs=check_inputs)


def make_picker(name: str, pool: Any, validation_inputs: np.ndarray, validation_labels: Optional[np.ndarray], *,
                count: int, seed_value: int, check_inputs: Callable[[Any], np.ndarray]) -> Picker:
    """The picker ``name`` with its pool: ``reference_pool`` if given, else the labelled ``validation_data``.

    Args:
        name: The ``references`` argument, a string.
        pool: ``reference_pool``: ``None`` or ``(x_pool, y_pool)``.
        validation_inputs: All ``(N, *S)`` validation inputs.
        validation_labels: Their ``(N,)`` labels, or ``None``.
        count: ``references_per_input``.
        seed_value: ``references_seed``.
        check_inputs: ``split_validation_data`` for the callback's input kind: ``(x, y) -> (x, y)``.

    Raises:
        TypeError, ValueError: On an unknown name, a pool without labels, labels of the wrong length,
            or pool items shaped unlike the inputs.
    """
    if name not in PICKERS:
        raise ValueError(f"`references` given as a string must name a picker, one of {list(PICKERS)}. "
                         f"Received: references={name!r}")
    if pool is None:
        if validation_labels is None:
            raise ValueError(f"`references={name!r}` picks references of known classes: pass labelled "
                             "`validation_data=(x, y)` or `reference_pool=(x_pool, y_pool)`. Received: "
                             "validation_data without labels and reference_pool=None")
        return Picker(name, validation_inputs, validation_labels, count, seed_value, "validation_data")
    if not isinstance(pool, tuple) or len(pool) != 2:
        raise TypeError("`reference_pool` must be a tuple (x_pool, y_pool) of candidate references and their "
                        f"labels. Received: {validation.describe(pool)}")
    if pool[1] is None:
        raise ValueError(f"`references={name!r}` picks references of known classes: `reference_pool` must be "
                         "(x_pool, y_pool) with labels. Received: y_pool=None")
    try:
        items, labels = check_inputs(pool)
    except (TypeError, ValueError) as error:
        raise type(error)(str(error).replace("`validation_data", "`reference_pool")) from error
    if items.shape[1:] != validation_inputs.shape[1:]:
        raise ValueError(f"`reference_pool` items must be shaped like one input {validation_inputs.shape[1:]}. "
                         f"Received: x_pool of shape {items.shape}")
    if np.issubdtype(validation_inputs.dtype, np.integer) or np.issubdtype(items.dtype, np.integer):
        items = items.astype(validation_inputs.dtype, copy=False)
    return Picker(name, items, labels, count, seed_value, "reference_pool")
