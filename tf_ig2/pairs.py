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

import dataclasses
import numbers
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from . import defaults, validation
from .explanation import Explanation
from .model_view import ModelView, num_classes

PairFunction = Callable[..., Dict[str, Any]]

#: How many compiled functions for callable targets an explainer keeps (the most recent ones).
CALLABLE_CACHE_SIZE = 4


def as_list(value: Any) -> List[Any]:
    """``value`` as a list of per-input tensors (a single tensor becomes a one-entry list)."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


@dataclasses.dataclass
class Batch:
    """Checked inputs and references, one entry per model input.

    Attributes:
        points: ``(N, *S_i)`` float32 per input: where paths start (embedding outputs for
            inputs with an ``input_layer``).
        references: ``(N or 1, R, *S_i)`` float32 per input.
        raw: ``(N, *T_i)`` raw model inputs per embedded input (token ids), else ``None``.
        reference_raw: ``(N or 1, R, *T_i)`` raw references per embedded input, else ``None``.
        movable: ``(N, *T_i)`` float32 0/1 per embedded input (0 at padding), else ``None``.
    """

    points: List[np.ndarray]
    references: List[np.ndarray]
    raw: List[Optional[np.ndarray]]
    reference_raw: List[Optional[np.ndarray]]
    movable: List[Optional[np.ndarray]]

    @property
    def count(self) -> int:
        return len(self.points[0])

    @property
    def embedded(self) -> List[int]:
        return [index for index, raw in enumerate(self.raw) if raw is not None]


class PairExplainer:
    """Base class: configuration, the model view and the cache of compiled functions.

    Subclasses implement :meth:`_build`, returning a compiled function that maps a chunk of
    pairs ``(inputs, references, targets (P,) int32, raw, movable, reference_raw)`` (lists with
    one ``(P, ...)`` tensor per input; the raw lists hold the embedded inputs only) to a dict of
    ``(P, ...)`` tensors (lists of them for per-input results) holding at least
    ``attributions``, ``counterfactuals``, ``target_scores`` and ``counterfactual_scores``.
    """

    method: str = ""
    #: The keyword the references go by in :meth:`explain` (``references`` or ``baselines``).
    reference_name: str = "references"

    def __init__(self, model: Any, *, batch_size: Optional[int], representation_layer: Any = None,
                 need_representation: bool = False, input_layer: Any = None,
                 padding_id: Optional[int] = defaults.PADDING_ID, output: Any = None):
        self.batch_size = batch_size  # checked by the subclass's settings
        self.padding_id = padding_id
        self._view = ModelView(model, representation_layer, input_layer=input_layer, output=output,
                               need_representation=need_representation)
        self._functions: Dict[Tuple[Any, ...], Any] = {}
        self._forward_functions: Dict[Tuple[Any, ...], Any] = {}
        #: Optional ``wrapper(function) -> function`` applied to every compiled per-pair function
        #: before it runs, e.g. to spread it over a ``tf.distribute`` strategy's replicas.
        self.pair_wrapper: Optional[Callable[[PairFunction], PairFunction]] = None

    @property
    def model(self) -> Any:
        """The explained Keras model."""
        return self._view.model

    @property
    def tracing_count(self) -> int:
        """How many times the compiled functions were traced (stays flat across repeated calls)."""
        functions = list(self._functions.values()) + list(self._forward_functions.values())
        return sum(function.experimental_get_tracing_count() for function in functions)

    # -- compiled functions -------------------------------------------------------------------
    def _build(self, signature: Tuple[Any, ...], options: Tuple[Any, ...], score: Any) -> PairFunction:
        raise NotImplementedError

    def _function(self, signature: Tuple[Any, ...], options: Tuple[Any, ...], score: Any) -> PairFunction:
        """The compiled function for these shapes and options, built once and cached.

        A callable target is traced into the graph, so each new callable object gets its own
        function: pass the same callable to repeated calls to avoid tracing again. Only the
        most recent :data:`CALLABLE_CACHE_SIZE` callable-target functions are kept.
        """
        key = (signature, options, score if callable(score) else None)
        if key not in self._functions:
            if callable(score):
                held = [other for other in self._functions if other[2] is not None]
                for stale in held[:max(0, len(held) - CALLABLE_CACHE_SIZE + 1)]:
                    del self._functions[stale]
            self._functions[key] = self._build(signature, options, score)
        return self._functions[key]

    @staticmethod
    def _signature(batch: Batch) -> Tuple[Any, ...]:
        """Per input ``(point shape, (raw shape, raw dtype) or None)``: the key of compiled functions."""
        return tuple((tuple(array.shape[1:]), None if raw is None else (tuple(raw.shape[1:]), raw.dtype.str))
                     for array, raw in zip(batch.points, batch.raw))

    @staticmethod
    def _specs(signature: Tuple[Any, ...]) -> List[Any]:
        """The input signature of a pair function: points, references, targets, raw, movable, raw."""
        points = [tf.TensorSpec([None, *shape], tf.float32) for shape, _ in signature]
        raw = [tf.TensorSpec([None, *entry[0]], tf.as_dtype(np.dtype(entry[1]))) for _, entry in signature if entry]
        movable = [tf.TensorSpec([None, *entry[0]], tf.float32) for _, entry in signature if entry]
        return [points, points, tf.TensorSpec([None], tf.int32), raw, movable, raw]

    def _full_raw(self, raw: Sequence[tf.Tensor]) -> Optional[List[Optional[tf.Tensor]]]:
        """Compact per-embedded-input tensors spread back to one entry (or ``None``) per input."""
        if not raw:
            return None
        values = iter(raw)
        return [next(values) if layer is not None else None for layer in self._view.input_layers]

    # -- forward passes -----------------------------------------------------------------------
    def _outputs(self, inputs: Any) -> Any:
        """Model outputs (as logits where possible) for the raw inputs (an array or a list), chunked."""
        flat = [np.asarray(value) for value in as_list(inputs)]
        key = tuple((array.shape[1:], array.dtype.str) for array in flat)
        if key not in self._forward_functions:
            view = self._view
            specs = [tf.TensorSpec([None, *array.shape[1:]],
                                   tf.float32 if layer is None else tf.as_dtype(array.dtype))
                     for array, layer in zip(flat, view.input_layers)]

            def forward(values):
                return view(None, model_inputs=list(values), representation=False)[1]

            self._forward_functions[key] = tf.function(forward, input_signature=[specs])
        forward = self._forward_functions[key]
        count = len(flat[0])
        size = self.batch_size or count
        chunks = [forward([tf.constant(array[start:start + size]) for array in flat])
                  for start in range(0, count, size)]
        if len(chunks) == 1:
            return chunks[0]
        return tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *chunks)

    def _embed(self, model_inputs: np.ndarray, index: int) -> np.ndarray:
        """``input_layer`` outputs ``(M, *T, D)`` for raw inputs ``(M, *T)`` of input ``index``."""
        key = ("embed", index, model_inputs.shape[1:], model_inputs.dtype.str)
        if key not in self._forward_functions:
            spec = tf.TensorSpec([None, *model_inputs.shape[1:]], tf.as_dtype(model_inputs.dtype))
            view = self._view
            self._forward_functions[key] = tf.function(lambda ids: view.embed(ids, index), input_signature=[spec])
        embed = self._forward_functions[key]
        size = self.batch_size or len(model_inputs)
        return np.concatenate([embed(tf.constant(model_inputs[start:start + size])).numpy()
                               for start in range(0, len(model_inputs), size)])

    # -- checks at the public boundary ----------------------------------------------------------
    def _check_inputs(self, inputs: Any) -> Any:
        """Validates raw ``inputs`` (an array, or a list/dict for several inputs) against the model.

        Returns the checked array for a single input, else the list of checked arrays.
        """
        view = self._view
        flat = view.inputs.flatten("inputs", inputs)
        several = len(flat) > 1
        embeddings = None
        checked = []
        for index, value in enumerate(flat):
            name = f"inputs[{view.inputs.names[index]!r}]" if several else "inputs"
            if view.input_layers[index] is not None:
                array = validation.model_input_array(name, value)
            else:
                array = validation.float_array(name, value)
                if embeddings is None:
                    embeddings = view.inputs.embedding_consumers(view.model)
                if embeddings[index] is not None:
                    raise ValueError(
                        f"`{name}` feeds the embedding layer '{embeddings[index]}', whose lookup has no gradient: "
                        f"attributions of token ids cast to float would all be zero. Pass the integer ids with "
                        f"`input_layer='{embeddings[index]}'` to explain them in the embedding space. "
                        f"Received: {array.dtype} values of shape {array.shape}")
            validation.fits_model_input(name, array.shape, view.inputs.shapes[index])
            checked.append(array)
        if several and len({len(array) for array in checked}) > 1:
            raise ValueError(f"`inputs` must hold the same number N of rows for every input. "
                             f"Received: {[len(array) for array in checked]}")
        return checked if several else checked[0]

    def _prepare(self, inputs: Any, references: Any, *, allow_scalar: bool = False) -> Batch:
        """Checks ``inputs`` and ``references`` and lays them out as a :class:`Batch`."""
        view = self._view
        name = self.reference_name
        checked = as_list(self._check_inputs(inputs))
        several = len(checked) > 1
        if allow_scalar and several and isinstance(references, numbers.Real) and not isinstance(references, bool):
            flat_references = [references] * len(checked)
        else:
            flat_references = view.inputs.flatten(name, references)
        batch = Batch([], [], [], [], [])
        for index, (array, reference) in enumerate(zip(checked, flat_references)):
            label = f"{name}[{view.inputs.names[index]!r}]" if several else name
            if view.input_layers[index] is None:
                batch.points.append(array)
                batch.references.append(validation.references_array(label, reference, array.shape,
                                                                    allow_scalar=allow_scalar))
                batch.raw.append(None)
                batch.reference_raw.append(None)
                batch.movable.append(None)
                continue
            raw_references = validation.references_array(label, reference, array.shape, integer=True)
            if raw_references.dtype != array.dtype:
                raise TypeError(f"`{label}` must have the dtype of the inputs ({array.dtype}). "
                                f"Received: {raw_references.dtype}")
            embedded = self._embed(raw_references.reshape((-1,) + raw_references.shape[2:]), index)
            batch.points.append(self._embed(array, index))
            batch.references.append(embedded.reshape(raw_references.shape[:2] + embedded.shape[1:]))
            batch.raw.append(array)
            batch.reference_raw.append(raw_references)
            movable = np.ones(array.shape, np.float32)
            if self.padding_id is not None:
                movable[array == self.padding_id] = 0.0
            batch.movable.append(movable)
        return batch

    def _resolve_targets(self, targets: Any, inputs: Any) -> Tuple[Optional[np.ndarray], Any]:
        """Returns ``(class indices (N,) or None, score spec)``; runs one forward pass if needed."""
        if callable(targets):
            return None, targets
        outputs = self._outputs(inputs)
        count = len(as_list(inputs)[0])
        self._view.warn_if_probabilities(outputs)
        classes = num_classes(outputs)
        checked = validation.targets(targets, count, classes)
        if checked is None:
            if classes is None:
                raise ValueError(
                    "`targets=None` explains the predicted class, which needs a model output of shape (N, C). "
                    "Pass a callable `targets` mapping the model output to N scores. Received: output of "
                    f"type {type(outputs).__name__}"
                )
            checked = np.argmax(np.asarray(outputs).reshape(count, -1), axis=1).astype(np.int64)
        return checked, "index"

    def _batch_targets(self, targets: Any, batch: Batch) -> Tuple[Optional[np.ndarray], Any]:
        raw_inputs = [raw if raw is not None else points for raw, points in zip(batch.raw, batch.points)]
        return self._resolve_targets(targets, raw_inputs if len(raw_inputs) > 1 else raw_inputs[0])

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

            def owner(array: np.ndarray) -> np.ndarray:  # (N, R, ...) per input, or (1, R, ...) shared
                return input_index if array.shape[0] == n else np.zeros_like(input_index)

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
        return flat[0] if len(flat) == 1 else self._view.inputs.pack(flat)

    def _explanation(self, results: Dict[str, Any], targets: Optional[np.ndarray], batch: Batch,
                     **extra: Any) -> Explanation:
        attributions = []
        for index, value in enumerate(as_list(results["attributions"])):
            value = value.mean(axis=1, dtype=np.float64).astype(np.float32)
            if batch.raw[index] is not None:  # per token: the sum over the embedding axis
                value = value.sum(axis=value.ndim - 1)
            attributions.append(value)
        target_scores = results["target_scores"][:, 0].astype(np.float32)
        counterfactual_scores = results["counterfactual_scores"].mean(axis=1, dtype=np.float64).astype(np.float32)
        summed = sum(value.reshape(len(value), -1).sum(axis=1, dtype=np.float64) for value in attributions)
        delta = (summed - (target_scores.astype(np.float64) - counterfactual_scores)).astype(np.float32)
        counterfactuals = [value.astype(np.float32) for value in as_list(results["counterfactuals"])]
        path = results.get("path")
        return Explanation(
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


class BaselineExplainer(PairExplainer):
    """Base class of the methods integrating from baselines to inputs (IG, Guided IG).

    Subclasses implement :meth:`_integrate`, a pure tensor function of one chunk of pairs.
    """

    reference_name = "baselines"

    def _integrate(self, inputs: List[tf.Tensor], baselines: List[tf.Tensor], targets: Any,
                   model_inputs: Optional[list]) -> Dict[str, Any]:
        raise NotImplementedError

    def _build(self, signature: Tuple[Any, ...], options: Tuple[Any, ...], score: Any) -> PairFunction:
        @tf.function(input_signature=self._specs(signature))
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

    def explain(self, inputs: Any, baselines: Any = 0.0, targets: Any = None) -> Explanation:
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
            targets: ``None`` (the predicted class), an int, ``(N,)`` ints or a callable mapping
                the model output to ``(N,)`` scores.

        Returns:
            An :class:`~tf_ig2.Explanation` with ``attributions`` shaped like ``inputs`` (``(N, T)``
            per token with an ``input_layer``); ``counterfactuals`` holds the baselines
            ``(N, R, *S)``.

        Raises:
            TypeError, ValueError: On malformed inputs, baselines or targets.
        """
        batch = self._prepare(inputs, baselines, allow_scalar=True)
        class_indices, score = self._batch_targets(targets, batch)
        function = self._function(self._signature(batch), (), score)
        results = self._run_pairs(function, batch, class_indices)
        return self._explanation(results, class_indices, batch)
