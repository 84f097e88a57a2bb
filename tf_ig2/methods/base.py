"""What every explainer shares: inputs checked and paired with references, chunked, averaged back.

An explanation of N inputs with R references each is computed over the N·R (input, reference)
pairs, at most ``batch_size`` pairs at a time, so memory never grows with N·R. Per-pair results
come back as ``(N, R, ...)`` arrays and attributions are averaged over the R references:
``attributions = mean_r A(x, x_r)``.

Internally every model input is one entry of a flat list (one entry for a single-input model).
An entry explained through an ``input_layer`` (token ids through an embedding) moves in that
layer's output space ``(N, *T, D)``; its attribution is summed over ``D`` back to ``(N, *T)``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, diagnostics
from tf_ig2.engine.compiled_model import Batch, CompiledModel, as_list, compiled, shared_functions
from tf_ig2.engine.model_view import ModelView
from tf_ig2.explanation import Explanation
from tf_ig2.methods import registry as methods

PairFunction = Callable[..., Dict[str, Any]]


class PairExplainer:
    """Base class: configuration, the model view and the cache of compiled functions.

    Subclasses implement :meth:`_build`, returning a compiled function that maps a chunk of
    pairs ``(inputs, references, targets (P,) or (P, T) int32, raw, movable, reference_raw)``
    (lists with one ``(P, ...)`` tensor per input; the raw lists hold the embedded inputs only) to
    a dict of ``(P, ...)`` tensors (lists of them for per-input results) holding at least
    ``attributions``, ``counterfactuals``, ``target_scores`` and ``counterfactual_scores``. With T
    targets per input (``(P, T)`` class indices, or a callable returning ``(P, T)`` scores) the
    attributions are ``(P, T, *S)`` and the scores ``(P, T)``; the counterfactuals stay ``(P, *S)``.
    """

    method: str = ""
    #: The keyword the references go by in :meth:`explain` (``references`` or ``baselines``).
    reference_name: str = "references"

    def __init__(self, model: Any, *, batch_size: Optional[int], representation_layer: Any = None,
                 need_representation: bool = False, input_layer: Any = None,
                 padding_id: Optional[int] = defaults.PADDING_ID, output: Any = None):
        # The values come checked by the subclass's settings; explainers of equal settings share their
        # compiled functions (engine.compiled_model.shared_functions).
        settings = getattr(self, "settings", None)
        functions = None if settings is None else shared_functions(
            model, f"{type(self).__module__}.{type(self).__qualname__}", settings.as_dict())
        self._compiled = CompiledModel(model, batch_size=batch_size, representation_layer=representation_layer,
                                       need_representation=need_representation, input_layer=input_layer,
                                       padding_id=padding_id, output=output, functions=functions)
        #: Optional ``wrapper(function) -> function`` applied to every compiled per-pair function
        #: before it runs, e.g. to spread it over a ``tf.distribute`` strategy's replicas.
        self.pair_wrapper: Optional[Callable[[PairFunction], PairFunction]] = None
        #: The warnings already given (each kind once per explainer).
        self._warned: set = set()

    @property
    def model(self) -> Any:
        """The explained Keras model."""
        return self._compiled.model

    @property
    def batch_size(self) -> Optional[int]:
        """The most (input, reference) pairs processed at once (``None``: all)."""
        return self._compiled.batch_size

    @property
    def padding_id(self) -> Optional[int]:
        """With an ``input_layer``, the id of padding positions."""
        return self._compiled.padding_id

    @property
    def view(self) -> ModelView:
        """The model view: how the model is scored and where its representation is read."""
        return self._compiled.view

    @property
    def tracing_count(self) -> int:
        """How many times the compiled functions were traced (stays flat across repeated calls)."""
        return self._compiled.tracing_count

    def check_inputs(self, inputs: Any) -> Any:
        """Checks raw inputs against the model (see :meth:`CompiledModel.check_inputs`)."""
        return self._compiled.check_inputs(inputs)

    def resolve_targets(self, targets: Any, inputs: Any, *, top_k: Optional[int] = None,
                        several: bool = False) -> Tuple[Optional[np.ndarray], Any]:
        """``(class indices (N,), (N, T) or None, score spec)`` (see :meth:`CompiledModel.resolve_targets`)."""
        return self._compiled.resolve_targets(targets, inputs, top_k=top_k, several=several)

    # -- compiled functions -------------------------------------------------------------------
    def _build(self, signature: Tuple[Any, ...], options: Tuple[Any, ...], score: Any,
               width: Optional[int]) -> PairFunction:
        raise NotImplementedError

    def _function(self, signature: Tuple[Any, ...], options: Tuple[Any, ...], score: Any,
                  targets: Optional[np.ndarray] = None) -> PairFunction:
        """The compiled per-pair function for these shapes, options and targets, built once and cached.

        ``(N, T)`` class indices get a function of their own per T (``width``); ``(N,)`` ones and
        callables have ``width=None``.
        """
        width = None if targets is None or targets.ndim == 1 else int(targets.shape[1])
        return self._compiled.function(("pairs", signature, options, width),
                                       lambda: self._build(signature, options, score, width), score)

    def _prepare(self, inputs: Any, references: Any, *, allow_scalar: bool = False) -> Batch:
        return self._compiled.prepare(inputs, references, name=self.reference_name, allow_scalar=allow_scalar)

    def _batch_targets(self, targets: Any, batch: Batch, top_k: Optional[int] = None) -> Tuple[Optional[np.ndarray],
                                                                                                 Any]:
        return self._compiled.batch_targets(targets, batch, top_k=top_k, several=True)

    @staticmethod
    def _signature(batch: Batch) -> Tuple[Any, ...]:
        """Per input ``(point shape, (raw shape, raw dtype) or None)``: the key of compiled functions."""
        return tuple((tuple(array.shape[1:]), None if raw is None else (tuple(raw.shape[1:]), raw.dtype.str))
                     for array, raw in zip(batch.points, batch.raw))

    @staticmethod
    def _specs(signature: Tuple[Any, ...], width: Optional[int] = None) -> List[Any]:
        """The input signature of a pair function: points, references, targets, raw, movable, raw.

        Targets are ``(P,)`` class indices, or ``(P, width)`` for ``width`` targets per pair.
        """
        points = [tf.TensorSpec([None, *shape], tf.float32) for shape, _ in signature]
        raw = [tf.TensorSpec([None, *entry[0]], tf.as_dtype(np.dtype(entry[1]))) for _, entry in signature if entry]
        movable = [tf.TensorSpec([None, *entry[0]], tf.float32) for _, entry in signature if entry]
        targets = tf.TensorSpec([None] if width is None else [None, width], tf.int32)
        return [points, points, targets, raw, movable, raw]

    def _full_raw(self, raw: Sequence[tf.Tensor]) -> Optional[List[Optional[tf.Tensor]]]:
        """Compact per-embedded-input tensors spread back to one entry (or ``None``) per input."""
        if not raw:
            return None
        values = iter(raw)
        return [next(values) if layer is not None else None for layer in self.view.input_layers]

    # -- running --------------------------------------------------------------------------------
    def _run_pairs(self, function: PairFunction, batch: Batch, targets: Optional[np.ndarray]) -> Dict[str, Any]:
        """Runs ``function`` over all N·R pairs; returns each output as ``(N, R, ...)`` arrays."""
        if self.pair_wrapper is not None:
            function = self.pair_wrapper(function)
        n, r = batch.count, batch.references[0].shape[1]
        total = n * r
        size = self.batch_size or total
        pair_targets = np.zeros((n,), np.int32) if targets is None else targets.astype(np.int32)
        structure, leaves = None, []
        for start in range(0, total, size):
            index = np.arange(start, min(start + size, total))
            input_index, reference_index = index // r, index % r

            def owner(array: np.ndarray, rows: np.ndarray = input_index) -> np.ndarray:
                # (N, R, ...) per input, or (1, R, ...) shared
                return rows if array.shape[0] == n else np.zeros_like(rows)

            chunk = function(
                [tf.constant(points[input_index]) for points in batch.points],
                [tf.constant(references[owner(references), reference_index]) for references in batch.references],
                tf.constant(pair_targets[input_index]),
                [tf.constant(batch.raw[i][input_index]) for i in batch.embedded],
                [tf.constant(batch.movable[i][input_index]) for i in batch.embedded],
                [tf.constant(batch.reference_raw[i][owner(batch.reference_raw[i]), reference_index])
                 for i in batch.embedded],
            )
            flat = tf.nest.flatten(chunk)
            if structure is None:
                structure = chunk
                leaves = [None] * len(flat)
            for position, value in enumerate(flat):
                value = value.numpy()
                if len(index) == total:  # a single chunk: keep the array, no copy
                    leaves[position] = value
                    continue
                if leaves[position] is None:
                    leaves[position] = np.empty((total,) + value.shape[1:], value.dtype)
                leaves[position][start:start + len(index)] = value
        leaves = [value.reshape((n, r) + value.shape[1:]) for value in leaves]
        return tf.nest.pack_sequence_as(structure, leaves)

    def _pack(self, flat: List[np.ndarray]) -> Any:
        """Per-input arrays in the structure of the model's inputs (one array for one input)."""
        return flat[0] if len(flat) == 1 else self.view.inputs.pack(flat)

    def _completeness_advice(self) -> str:
        """Why the attributions may not add up for this method, and what to try (options as ``name='value'``)."""
        return "Try more steps."

    def _diagnose(self, explanation: Explanation, attributions: List[np.ndarray], counterfactuals: List[np.ndarray],
                  batch: Batch) -> None:
        """Warns (each kind once per explainer) of a negligible score gap, a dead input, incompleteness.

        Args:
            explanation: The explanation.
            attributions: Per model input, the ``(N, ...)`` attributions.
            counterfactuals: Per model input, the ``(N, R, *S_i)`` ends of the paths.
            batch: The checked inputs.

        Warns:
            DegenerateWarning: When an input's score does not change along its paths, or no
                gradient reaches a model input that the paths move.
            CompletenessWarning: When the median relative completeness error exceeds
                :data:`tf_ig2.defaults.COMPLETENESS_WARNING_THRESHOLD`.
        """
        end_name = methods.end_name(self.method)
        level = 4  # warn_* -> _diagnose -> _explanation -> explain -> the caller
        # With no score change anywhere, zero attributions say nothing about the gradient's reach.
        changed = not bool(np.all(explanation.negligible_gap))
        moved = [changed and bool(np.any(ends != points[:, None]))
                 for ends, points in zip(counterfactuals, batch.points)]
        checks = {
            "degenerate": lambda: diagnostics.warn_if_degenerate(explanation, end_name, stacklevel=level + 1),
            "disconnected": lambda: diagnostics.warn_if_disconnected(attributions, moved, self.view.inputs.names,
                                                                     stacklevel=level + 1),
            "incomplete": lambda: diagnostics.warn_if_incomplete(explanation, self._completeness_advice(), end_name,
                                                                 stacklevel=level + 1),
        }
        for kind, check in checks.items():
            if kind not in self._warned and check():
                self._warned.add(kind)

    def _explanation(self, results: Dict[str, Any], targets: Optional[np.ndarray], batch: Batch,
                     **extra: Any) -> Explanation:
        diagnostics.check_finite(results, end_name=methods.end_name(self.method), input_names=self.view.inputs.names)
        attributions = []
        for index, value in enumerate(as_list(results["attributions"])):
            value = value.mean(axis=1, dtype=np.float64).astype(np.float32)
            if batch.raw[index] is not None:  # per token: the sum over the embedding axis
                value = value.sum(axis=value.ndim - 1)
            attributions.append(value)
        # (N,) for one target, (N, T) for T targets per input
        target_scores = results["target_scores"][:, 0].astype(np.float32)
        counterfactual_scores = results["counterfactual_scores"].mean(axis=1, dtype=np.float64).astype(np.float32)
        summed = sum(value.reshape(target_scores.shape + (-1,)).sum(axis=-1, dtype=np.float64)
                     for value in attributions)
        delta = (summed - (target_scores.astype(np.float64) - counterfactual_scores)).astype(np.float32)
        counterfactuals = [value.astype(np.float32) for value in as_list(results["counterfactuals"])]
        path = results.get("path")
        explanation = Explanation(
            attributions=self._pack(attributions),
            counterfactuals=self._pack(counterfactuals),
            target_scores=target_scores,
            counterfactual_scores=counterfactual_scores,
            delta=delta,
            targets=targets,
            method=self.method,
            path=None if path is None else self._pack(as_list(path)),
            **extra,
        )
        self._diagnose(explanation, attributions, counterfactuals, batch)
        return explanation


class BaselineExplainer(PairExplainer):
    """Base class of the methods integrating from baselines to inputs (IG, Guided IG).

    Subclasses implement :meth:`_integrate`, a pure tensor function of one chunk of pairs.
    """

    reference_name = "baselines"

    def _integrate(self, inputs: List[tf.Tensor], baselines: List[tf.Tensor], targets: Any,
                   model_inputs: Optional[list]) -> Dict[str, Any]:
        raise NotImplementedError

    def _build(self, signature: Tuple[Any, ...], options: Tuple[Any, ...], score: Any,
               width: Optional[int]) -> PairFunction:
        @compiled(self._specs(signature, width))
        def integrate(inputs, baselines, targets, model_inputs, movable_masks, reference_model_inputs):
            del reference_model_inputs  # the model reads the explained input's ids along the whole path
            inputs, baselines = list(inputs), list(baselines)
            masks = self._full_raw(movable_masks) or [None] * len(inputs)
            for index, mask in enumerate(masks):
                if mask is not None:  # padding never moves: its baseline is the input itself
                    mask = tf.reshape(mask, tf.concat([tf.shape(mask), [1]], 0))
                    baselines[index] = mask * baselines[index] + (1.0 - mask) * inputs[index]
            return self._integrate(inputs, baselines, score if callable(score) else targets,
                                   self._full_raw(model_inputs))

        return integrate

    def explain(self, inputs: Any, baselines: Any = 0.0, targets: Any = None, *,
                top_k: Optional[int] = None) -> Explanation:
        """Explains ``inputs`` against ``baselines``.

        Args:
            inputs: ``(N, *S)`` float array or tensor; for a model with several inputs, a list or
                dict with one ``(N, *S_i)`` array per input; token ids ``(N, T)`` with an
                ``input_layer``.
            baselines: A scalar or an ``S``-shaped array (one baseline for all), ``(R, *S)``
                (R baselines shared by all inputs, attributions averaged over them) or
                ``(N, R, *S)`` (per input), in the structure of ``inputs``. A single per-input
                baseline is ``(N, 1, *S)``. With an ``input_layer``, baselines are token ids
                ``(R, T)`` or ``(N, R, T)`` (e.g. all padding).
            targets: One target per input: ``None`` (the predicted class), an int, ``(N,)`` ints
                (a flat list of N ints is one per input), or a callable mapping the model output to
                ``(N,)`` scores. T targets per input: ``(N, T)`` ints, ``"top-K"``, or a callable
                returning ``(N, T)`` scores (see ``docs/api.md``).
            top_k: K, to explain the K highest logits of each input, highest first (T = K);
                ``targets`` must then be ``None``.

        Returns:
            An :class:`~tf_ig2.Explanation` with ``attributions`` shaped like ``inputs`` (``(N, L)``
            per token with an ``input_layer``), or ``(N, T, *S)`` for T targets per input, and
            scores ``(N,)`` or ``(N, T)``; ``counterfactuals`` holds the baselines ``(N, R, *S)``.

        Raises:
            TypeError, ValueError: On malformed inputs, baselines or targets; ValueError when a
                score or gradient is not finite (naming the input and baseline).

        Warns:
            DegenerateWarning, CompletenessWarning: Once per explainer (see :meth:`_diagnose`).
        """
        batch = self._prepare(inputs, baselines, allow_scalar=True)
        class_indices, score = self._batch_targets(targets, batch, top_k)
        function = self._function(self._signature(batch), (), score, class_indices)
        results = self._run_pairs(function, batch, class_indices)
        return self._explanation(results, class_indices, batch)
