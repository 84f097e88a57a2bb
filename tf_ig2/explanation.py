"""The result every explainer returns: a small dataclass of numpy arrays.

Shapes use N explained inputs, R references (baselines) per input and ``S`` the shape of one input.
With T targets per input (``targets`` of shape ``(N, T)``, ``top_k``, or a callable returning
``(N, T)`` scores) a target axis follows the input axis: ``attributions`` ``(N, T, *S)`` and every
score, ``delta`` and ``targets`` ``(N, T)``; ``counterfactuals`` and ``path`` have none (the IG²
path is shared by the targets). One target keeps the shapes below. For a model with several
inputs, ``attributions``, ``counterfactuals`` and ``path`` are lists or dicts (like the model's
inputs) with one array per input, and ``delta`` covers them all.
The completeness gap is ``delta = sum(attributions) - (target_scores - counterfactual_scores)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

from tf_ig2 import defaults


@dataclasses.dataclass(frozen=True, repr=False)
class Explanation:
    """Attributions and the diagnostics that come with them.

    Attributes:
        attributions: ``(N, *S)`` float32, the attribution of every input feature (``(N, L)``
            per token of L-token inputs with an ``input_layer``; a list or dict of arrays for
            several inputs); ``(N, T, *S)`` for T targets per input.
        counterfactuals: ``(N, R, *S)`` float32 (a list or dict for several inputs), the end
            point of every path: GradCF for IG², the
            baselines for straight-line and Guided IG.
        target_scores: ``(N,)`` float32, the explained score ``f_c(x)`` (``(N, T)`` for T targets).
        counterfactual_scores: ``(N,)`` float32, ``mean_r f_c(counterfactual_r)`` (``(N, T)``).
        delta: ``(N,)`` float32, the completeness error
            ``attributions.sum() - (target_scores - counterfactual_scores)`` per input (``(N, T)``:
            per input and target).
        targets: ``(N,)`` int64 class indices that were explained (``(N, T)`` for T targets), or
            ``None`` when the target was a callable.
        representation_distance: ``(N, R, 2)`` float32 Euclidean distance in representation space
            between the path and its reference at the path's start and end (IG² only, else
            ``None``).
        path: ``(N, R, steps + 1, *S)`` float32, the whole path, only when asked for.
        method: Name of the method that produced the explanation (``"ig2"``, ``"ig"``, ... a name
            of :data:`tf_ig2.methods.METHODS`).
        representation: Which representation the IG² path was searched in (a layer description),
            or ``None``.
    """

    attributions: Any
    counterfactuals: Any
    target_scores: np.ndarray
    counterfactual_scores: np.ndarray
    delta: np.ndarray
    method: str
    targets: Optional[np.ndarray] = None
    representation_distance: Optional[np.ndarray] = None
    path: Any = None
    representation: Optional[str] = None

    def __len__(self) -> int:
        return int(self.target_scores.shape[0])

    def __repr__(self) -> str:
        parts = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, (list, tuple, dict)):
                items = value.items() if isinstance(value, dict) else enumerate(value)
                shapes = ", ".join(f"{key!r}: <{array.dtype} {tuple(array.shape)}>" if isinstance(value, dict) else
                                   f"<{array.dtype} {tuple(array.shape)}>" for key, array in items)
                parts.append(f"{field.name}={{{shapes}}}" if isinstance(value, dict) else f"{field.name}=[{shapes}]")
            elif isinstance(value, np.ndarray):
                parts.append(f"{field.name}=<{value.dtype} {tuple(value.shape)}>")
            elif value is not None:
                parts.append(f"{field.name}={value!r}")
        if len(self):
            parts.append(f"max |delta|={float(np.max(np.abs(self.delta))):.4g}")
        return f"Explanation({', '.join(parts)})"

    def _repr_html_(self) -> str:
        """A compact HTML summary for notebooks: method, shapes, and per input target, scores and deltas.

        Every value is HTML-escaped (see :func:`tf_ig2.visualize.explanation_html`).
        """
        from tf_ig2.visualize.markup import explanation_html  # numpy and the standard library only

        return explanation_html(self)

    @property
    def target_count(self) -> Optional[int]:
        """T when several targets were explained per input (scores ``(N, T)``); ``None`` for one target."""
        return int(np.shape(self.target_scores)[1]) if np.ndim(self.target_scores) == 2 else None

    def select_target(self, index: int) -> "Explanation":
        """The explanation of the ``index``-th target of each input, with one target's shapes.

        Attributions become ``(N, *S)`` (per input for several inputs), the scores, ``delta`` and
        ``targets`` ``(N,)``; counterfactuals, path and distances are shared by the targets and kept.
        The panels, :func:`~tf_ig2.plot_path` and the command line's report take one target at a
        time: pass them these (:func:`~tf_ig2.plot` and :mod:`tf_ig2.metrics` take several).

        Raises:
            ValueError: If the explanation has one target, or ``index`` is out of range.
        """
        count = self.target_count
        if count is None:
            raise ValueError("`select_target` needs an explanation of several targets per input. Received: an "
                             "explanation of one target")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not -count <= index < count:
            raise ValueError(f"`index` must be an int in [{-count}, {count}). Received: index={index!r}")

        def pick(values: Any) -> Any:
            if isinstance(values, dict):
                return {key: np.asarray(value)[:, index] for key, value in values.items()}
            if isinstance(values, (list, tuple)):
                return [np.asarray(value)[:, index] for value in values]
            return np.asarray(values)[:, index]

        return dataclasses.replace(
            self, attributions=pick(self.attributions), target_scores=self.target_scores[:, index],
            counterfactual_scores=self.counterfactual_scores[:, index], delta=self.delta[:, index],
            targets=None if self.targets is None else self.targets[:, index])


    @property
    def negligible_gap(self) -> np.ndarray:
        """``(N,)`` (or ``(N, T)``) bool: whether the score hardly changes between the input and its counterfactuals.

        True where ``|target_scores - counterfactual_scores|`` is at most the larger of
        :data:`~tf_ig2.defaults.NEGLIGIBLE_GAP_RELATIVE` times the larger score magnitude and
        :data:`~tf_ig2.defaults.NEGLIGIBLE_GAP_ABSOLUTE`: there is then no score change to
        attribute (an untrained or constant model, a counterfactual of the same class).
        """
        return negligible_gap(self.target_scores, self.counterfactual_scores)

    @property
    def relative_delta(self) -> np.ndarray:
        """``(N,)`` (or ``(N, T)``) ``|delta|`` divided by ``|target_scores - counterfactual_scores|``.

        NaN where the gap is negligible (:attr:`negligible_gap`): a ratio to a gap of round-off
        size says nothing.
        """
        gap = np.abs(np.asarray(self.target_scores, np.float64) - np.asarray(self.counterfactual_scores, np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.abs(np.asarray(self.delta, np.float64)) / gap
        return np.where(self.negligible_gap, np.nan, relative).astype(np.float32)


def negligible_gap(target_scores: Any, counterfactual_scores: Any) -> np.ndarray:
    """``(N,)`` bool: whether each score gap is negligible (see :attr:`Explanation.negligible_gap`).

    Args:
        target_scores: ``(N,)`` (or any shape) scores ``f_c(x)``.
        counterfactual_scores: Scores ``f_c(x')`` of the same shape.
    """
    start = np.asarray(target_scores, np.float64)
    end = np.asarray(counterfactual_scores, np.float64)
    scale = np.maximum(np.abs(start), np.abs(end))
    limit = np.maximum(defaults.NEGLIGIBLE_GAP_RELATIVE * scale, defaults.NEGLIGIBLE_GAP_ABSOLUTE)
    return np.abs(start - end) <= limit


def require_one_target(explanation: Any, what: str) -> None:
    """Raises a ``ValueError`` saying that ``what`` takes one target per input, when ``explanation`` has several.

    Args:
        explanation: An :class:`Explanation` (or any object with its ``target_scores``).
        what: The function that was called, e.g. ``"tf_ig2.plot"``.
    """
    shape = tuple(np.shape(explanation.target_scores))
    if len(shape) == 2:
        raise ValueError(f"{what} takes one target per input; this explanation has {shape[1]}. Pass "
                         f"explanation.select_target(j) for the j-th. Received: target_scores of shape {shape}")
