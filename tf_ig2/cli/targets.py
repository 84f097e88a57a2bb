"""The classes ``tf-ig2 explain`` explains: ``--target``, ``--targets``, ``--top-k``, and ``--class-names``.

- ``--target INT|FILE.npy``: one class per input (every input's, or one per input from an
  ``(N,)`` file); without any of the three flags, each input's predicted class. The outputs then
  have one target's shapes: attributions ``(N, *S)``.
- ``--targets 3,5`` or ``--targets FILE.npy``: T classes per input, the same T for every input, or
  an ``(N, T)`` file, one row per input; ``--top-k K``: each input's K highest-scoring classes,
  highest first (T = K). The outputs then have a target axis, even for T = 1: attributions
  ``(N, T, *S)``, and per input one entry per target in summary.json, one panel per target.

The three flags exclude one another (argparse refuses two of them). An input's targets are
distinct classes (their pictures are named by class).
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Dict, List, Optional

from tf_ig2.cli.inputs import UsageError


def class_list(text: str) -> List[int]:
    """``"3,5"`` -> ``[3, 5]``: distinct class indices (integers >= 0), comma-separated.

    Raises:
        ValueError: If an item is not such an index, or a class is named twice.
    """
    items = [item.strip() for item in text.split(",")]
    classes = []
    for item in items:
        try:
            value = int(item)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(f"must be comma-separated class indices (integers >= 0), e.g. 3,5, or a .npy file. "
                             f"Received: {text!r}")
        classes.append(value)
    repeated = sorted({value for value in classes if classes.count(value) > 1})
    if repeated:
        raise ValueError(f"must name each class once. Received: {text!r} (class {repeated[0]} twice)")
    return classes


def add_arguments(explain: argparse.ArgumentParser, *, target: Callable[[str], Any], targets: Callable[[str], Any],
                  count: Callable[[str], int]) -> None:
    """Adds ``--target``, ``--targets`` and ``--top-k`` (a mutually exclusive group), and ``--class-names``.

    Args:
        explain: The parser of ``tf-ig2 explain``.
        target, targets, count: The argparse types of ``--target``, ``--targets`` and ``--top-k``.
    """
    group = explain.add_mutually_exclusive_group()
    group.add_argument("--target", type=target, metavar="INT|FILE.npy",
                       help="class index explained for every input, or a .npy file of N class indices, one per "
                            "input (default: each input's predicted class)")
    group.add_argument("--targets", type=targets, metavar="C1,C2,...|FILE.npy",
                       help="several classes explained for every input, e.g. 3,5, or a .npy file of (N, T) class "
                            "indices, one row per input: attributions.npy is then (N, T, *S), with one panel per "
                            "input and class")
    group.add_argument("--top-k", type=count, metavar="K",
                       help="explain each input's K highest-scoring classes, highest first (as --targets, T = K)")
    explain.add_argument("--class-names", metavar="FILE",
                         help="a text file naming the classes, one per line (class 0 first), shown beside the "
                              "class indices in the panels, summary.json and index.html")


def _load(args: argparse.Namespace, flag: str, path: str) -> Any:
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UsageError(f"argument {flag}: could not read {path!r} as a .npy array: {error}") from error


def read_targets(args: argparse.Namespace, count: int) -> Any:
    """The targets as the explainers take them, for ``count`` inputs.

    Returns:
        ``None`` (the predicted class), one class index or ``(N,)`` class indices (``--target``);
        ``(N, T)`` class indices (``--targets``); ``"top-K"`` (``--top-k``).

    Raises:
        UsageError: If a file does not hold ``count`` rows of class indices (integers >= 0), an
            ``(N,)`` one for ``--target``, an ``(N, T)`` one with distinct classes per row for
            ``--targets``.
    """
    import numpy as np

    if getattr(args, "top_k", None) is not None:
        return f"top-{args.top_k}"
    several = getattr(args, "targets", None)
    if several is not None:
        if not isinstance(several, str):
            return np.tile(np.asarray(several, np.int64), (count, 1))
        values = _load(args, "--targets", several)
        if (values.ndim != 2 or values.shape[0] != count or values.shape[1] < 1
                or not np.issubdtype(values.dtype, np.integer) or np.any(values < 0)):
            raise UsageError(f"argument --targets: {several!r} must hold ({count}, T) class indices (integers >= 0), "
                             f"one row of T >= 1 classes per input. Received: {values.dtype} array of shape "
                             f"{values.shape}")
        ordered = np.sort(values, axis=1)
        repeated = np.flatnonzero(np.any(ordered[:, 1:] == ordered[:, :-1], axis=1))
        if len(repeated):
            raise UsageError(f"argument --targets: each row of {several!r} must name distinct classes. Received: "
                             f"row {int(repeated[0])} holding {values[repeated[0]].tolist()}")
        return values.astype(np.int64)
    if not isinstance(args.target, str):
        return args.target
    values = _load(args, "--target", args.target)
    if values.shape != (count,) or not np.issubdtype(values.dtype, np.integer) or np.any(values < 0):
        raise UsageError(f"argument --target: {args.target!r} must hold {count} class indices (integers >= 0), one "
                         f"per input. Received: {values.dtype} array of shape {values.shape}")
    return values.astype(np.int64)


def target_count(targets: Any) -> Optional[int]:
    """T for targets of several classes per input (``(N, T)`` or ``"top-K"``); ``None`` for one target."""
    if isinstance(targets, str):
        return int(targets.split("-", 1)[1])
    shape = getattr(targets, "shape", ())
    return int(shape[1]) if len(shape) == 2 else None


def files(args: argparse.Namespace) -> Dict[str, Any]:
    """The files the target flags name, by flag name (checked for existence before TensorFlow)."""
    found = {"target": args.target, "targets": getattr(args, "targets", None),
             "class-names": getattr(args, "class_names", None)}
    return {name: path for name, path in found.items() if isinstance(path, str)}


def settings(args: argparse.Namespace) -> Dict[str, Any]:
    """The entries of summary.json's settings for ``--targets``, ``--top-k`` and ``--class-names`` (those given)."""
    found: Dict[str, Any] = {}
    for name in ("targets", "top_k", "class_names"):
        value = getattr(args, name, None)
        if value is not None:
            found[name] = value
    return found


def read_class_names(args: argparse.Namespace) -> Optional[List[str]]:
    """``--class-names``: a UTF-8 text file naming class ``i`` on its line ``i`` (from 0); ``None`` if not given.

    Raises:
        UsageError: If the file cannot be read, or holds no name.
    """
    path = getattr(args, "class_names", None)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            names = [line.rstrip("\r\n") for line in handle]
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"argument --class-names: could not read {path!r} as a UTF-8 text file, one class name "
                         f"per line: {error}") from error
    while names and not names[-1].strip():
        names.pop()
    if not names:
        raise UsageError(f"argument --class-names: {path!r} holds no class name (one per line, class 0 first)")
    return [name.strip() for name in names]


def resolve(explainer: Any, inputs: Any, targets: Any) -> Any:
    """The class indices ``targets`` stands for: ``(N,)``, or ``(N, T)`` for several per input (one forward pass).

    Args:
        explainer: The run's explainer (:func:`tf_ig2.saved_model.build_explainer`).
        inputs: The inputs: an array, or a dict keyed by input name.
        targets: As :func:`read_targets` returns them.
    """
    checked = explainer.check_inputs(inputs)
    return explainer.resolve_targets(targets, checked, several=True)[0]
