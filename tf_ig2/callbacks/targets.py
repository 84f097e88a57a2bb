"""What the callbacks explain: ``class_index`` read as one class per input, or several.

``class_index`` takes these forms (N validation inputs):

- ``None``: the labels ``y`` if given, else each input's predicted class (one target);
- an int: that class for every input (one target);
- a flat sequence or ``(N,)`` array of N ints: one class per input (one target), always, whatever N;
- an ``(N, T)`` array or list of N lists of T ints: T classes per input, row ``n`` for input ``n``;
- a ``(1, T)`` array or ``[[c_1, ..., c_T]]``: the same T classes for every input;
- ``"top-K"`` (e.g. ``"top-3"``): each input's K highest-scoring classes, highest first, ranked anew
  at every logged epoch (the model changes while it trains).

A flat sequence is never read as "T classes for every input": that is ``[[c_1, ..., c_T]]``, so
``[3, 5]`` for two inputs is one class each, and for three inputs an error. With several targets
the callbacks log every picture and scalar once per target, under a tag ending in the target's
name (:meth:`TargetChoice.tag_suffixes`): ``class_<c>`` when every logged input has class ``c`` in
that column, ``top_<k>`` for the ``k``-th highest-scoring class (``"top-K"``), ``target_<j>`` for a
column ``j`` whose classes differ between inputs.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from tf_ig2 import validation
from tf_ig2.explanation import Explanation

#: ``class_index="top-K"``.
_TOP_K = re.compile(r"\s*top-(\d+)\s*")

#: The forms ``class_index`` takes, for messages.
FORMS = ("None, an int, N ints (one class per input), an (N, T) array or list of lists (T classes per input), "
         "[[c_1, ..., c_T]] (the same T classes for every input) or 'top-K'")


@dataclasses.dataclass(frozen=True)
class TargetChoice:
    """The explained classes of the callback's inputs.

    Attributes:
        indices: ``(N,)`` int64, one class per input; ``(N, T)`` int64, T classes per input; or
            ``None``: chosen by the model when logging (its predicted class, or ``top_k``).
        top_k: K for ``"top-K"`` (then ``indices`` is ``None``), else ``None``.
    """

    indices: Optional[np.ndarray]
    top_k: Optional[int] = None

    @property
    def several(self) -> bool:
        """Whether a target axis is logged (``(N, T)`` indices or ``"top-K"``), even for T = 1."""
        return self.top_k is not None or (self.indices is not None and self.indices.ndim == 2)

    @property
    def count(self) -> Optional[int]:
        """T for several targets per input, ``None`` for one."""
        if self.top_k is not None:
            return self.top_k
        return int(self.indices.shape[1]) if self.several else None

    @property
    def fixed(self) -> bool:
        """Whether the classes are known before the model scores the inputs."""
        return self.indices is not None

    def head(self, count: int) -> "TargetChoice":
        """The choice for the first ``count`` inputs."""
        return self if self.indices is None else dataclasses.replace(self, indices=self.indices[:count])

    def explain_targets(self) -> Any:
        """What ``explain`` is given: the indices, ``"top-K"`` or ``None`` (the predicted class)."""
        return f"top-{self.top_k}" if self.top_k is not None else self.indices

    def tag_suffixes(self) -> Optional[Tuple[str, ...]]:
        """The last component of each target's tags (see the module docstring); ``None`` for one target."""
        if not self.several:
            return None
        if self.top_k is not None:
            return tuple(f"top_{rank}" for rank in range(1, self.top_k + 1))
        return tuple(f"class_{int(column[0])}" if np.all(column == column[0]) else f"target_{index}"
                     for index, column in enumerate(self.indices.T))


def choose(class_index: Any, labels: Optional[np.ndarray], count: int) -> TargetChoice:
    """The explained classes: ``class_index`` if given (see the module docstring), else the labels.

    Args:
        class_index: One of the forms of the module docstring.
        labels: ``(count,)`` int64 labels, or ``None``.
        count: N, the number of validation inputs.

    Returns:
        The :class:`TargetChoice` (``indices=None`` for the predicted class).

    Raises:
        TypeError: On another kind of value (a bool, a float, a string other than ``"top-K"``).
        ValueError: On negative classes, a length or shape other than those above, or a class
            named twice for one input.
    """
    if class_index is None:
        return TargetChoice(labels)
    if isinstance(class_index, bool) or callable(class_index):
        raise TypeError(f"`class_index` must be {FORMS}. Received: class_index={class_index!r}")
    if isinstance(class_index, str):
        match = _TOP_K.fullmatch(class_index)
        if match is None:
            raise TypeError(f"`class_index` must be {FORMS}; the only string is 'top-K' (each input's K "
                            f"highest-scoring classes, e.g. 'top-3'). Received: class_index={class_index!r}")
        if int(match.group(1)) < 1:
            raise ValueError(f"`class_index='top-K'` needs K >= 1. Received: class_index={class_index!r}")
        return TargetChoice(None, top_k=int(match.group(1)))
    if isinstance(class_index, (numbers.Integral, np.integer)):
        if class_index < 0:
            raise ValueError(f"`class_index` must be >= 0. Received: class_index={class_index!r}")
        return TargetChoice(np.full((count,), int(class_index), np.int64))
    array = validation.as_numpy("class_index", class_index)
    if array.ndim != 2:
        return TargetChoice(_one_per_input(class_index, array, count))
    if array.dtype == object or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"`class_index` must be {FORMS}, of ints. Received: {validation.describe(array)}")
    if array.shape[1] < 1 or array.shape[0] not in (1, count):
        raise ValueError(f"`class_index` of T classes per input must be ({count}, T) (one row per input) or (1, T) "
                         f"(the same T classes for every input), T >= 1. Received: shape {array.shape}")
    if np.any(array < 0):
        raise ValueError(f"`class_index` must be >= 0. Received: minimum {int(array.min())}")
    for row, classes in enumerate(array):
        if len(np.unique(classes)) < len(classes):
            raise ValueError(f"`class_index` must name each class at most once per input. Received: row {row} "
                             f"holds {classes.tolist()}")
    return TargetChoice(np.broadcast_to(array, (count, array.shape[1])).astype(np.int64))


def _one_per_input(class_index: Any, array: np.ndarray, count: int) -> np.ndarray:
    """``(count,)`` int64 from a flat sequence of one class per input."""
    if array.ndim == 1 and array.shape != (count,) and array.dtype != object:
        raise ValueError(f"`class_index` as a flat sequence holds one class per input: {count} of them. Received: "
                         f"{len(array)} values; for the same T classes for every input pass a list of one list, "
                         f"class_index=[[c_1, ..., c_T]] (shape (1, T)), or an ({count}, T) array for T classes per "
                         f"input")
    try:
        indices = validation.targets(class_index, count, None)
    except (TypeError, ValueError) as error:
        message = str(error).replace("`targets`", "`class_index`")
        raise type(error)(f"{message}. `class_index` must be {FORMS}") from error
    if np.any(indices < 0):
        raise ValueError(f"`class_index` must be >= 0. Received: minimum {int(indices.min())}")
    return indices


def model_targets(choice: TargetChoice, explainer: Any, model: Any, inputs: np.ndarray) -> np.ndarray:
    """The classes the model gives ``inputs`` now: ``(n,)`` predicted, or ``(n, K)`` for ``"top-K"``.

    Scored as the explainer scores them (its ``resolve_targets``, on logits) when it has one, else
    ranked on the model's outputs (a softmax keeps the logits' order). Ties keep the lower class
    first, as ``explain`` does.
    """
    resolve, check = getattr(explainer, "resolve_targets", None), getattr(explainer, "check_inputs", None)
    if callable(resolve) and callable(check):
        indices, _ = resolve(choice.explain_targets(), check(inputs), several=True)
        return np.asarray(indices, np.int64)
    scores = np.asarray(model(inputs, training=False)).reshape(len(inputs), -1)
    ranking = np.argsort(-scores, axis=1, kind="stable")
    return (ranking[:, 0] if choice.top_k is None else ranking[:, :choice.top_k]).astype(np.int64)


def per_target(explanation: Explanation, choice: TargetChoice) -> List[Tuple[str, Explanation]]:
    """``[(tag suffix, one-target explanation)]``: ``[("", explanation)]`` for one target, else
    ``[("/class_3", explanation.select_target(0)), ...]``.

    Raises:
        ValueError: If the explanation holds another number of targets than ``choice`` asked for.
    """
    count = explanation.target_count
    if count is None:
        return [("", explanation)]
    suffixes = choice.tag_suffixes()
    if suffixes is None or len(suffixes) != count:
        raise ValueError(f"The explainer returned {count} targets per input where the callback asked for "
                         f"{choice.count or 1}: the callback's `class_index` decides the targets")
    return [(f"/{suffix}", explanation.select_target(index)) for index, suffix in enumerate(suffixes)]


def check_classes(choice: TargetChoice, class_index: Any, model: Any, options: Dict[str, Any]) -> None:
    """Raises a ``ValueError`` naming ``class_index`` if the model's ``(N, C)`` output lacks a class it asks for.

    Checked when training begins, for a model with one ``(N, C)`` output (and no ``output``
    option); labels are not checked here (a failure to explain them warns when logging).
    """
    if class_index is None or options.get("output") is not None:
        return
    try:
        shapes = [tuple(output.shape) for output in model.outputs]
    except Exception:  # noqa: BLE001 - a model whose outputs are not known: explain() finds out
        return
    if len(shapes) != 1 or len(shapes[0]) != 2 or shapes[0][1] is None:
        return
    classes = int(shapes[0][1])
    if choice.top_k is not None and choice.top_k > classes:
        raise ValueError(f"`class_index='top-{choice.top_k}'` asks for more classes than the model's {classes}. "
                         f"Received: class_index={class_index!r}")
    if choice.indices is not None and int(choice.indices.max()) >= classes:
        raise ValueError(f"`class_index` must be class indices in [0, {classes - 1}] for a model with {classes} "
                         f"outputs. Received: maximum {int(choice.indices.max())}")
