"""The compiled-model core every explainer and metric shares.

A :class:`CompiledModel` is a model view (:class:`~tf_ig2.engine.model_view.ModelView`) with its cache of
compiled ``tf.function`` objects (keyed by value: shapes, dtypes, options), chunked forward passes,
and the checks made at the public boundary: inputs against the model's inputs
(:meth:`CompiledModel.check_inputs`), inputs paired with references laid out per model input
(:meth:`CompiledModel.prepare`), and targets resolved to class indices
(:meth:`CompiledModel.resolve_targets`). :class:`ModelCache` keeps one object per model, bounded.
"""

from __future__ import annotations

import collections
import dataclasses
import numbers
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, validation
from tf_ig2.engine.model_view import ModelView, num_classes

#: How many compiled functions for callable targets a compiled model keeps (the most recent ones).
CALLABLE_CACHE_SIZE = 4


class CompiledFunction:
    """A ``tf.function`` made the way every compiled function of the package is made.

    AutoGraph is off: the package's tensor code loops with ``tf.while_loop`` and never branches on
    tensor values, and converting its source (and every layer of the model) to graph code is most of
    a first call's tracing time (docs/performance.md). A target callable that branches on tensor
    values (``if tf.reduce_sum(outputs) > 0:``) fails to trace without AutoGraph; then the function
    is traced once more, with it. (Keras 3 never converts its layers: a custom layer that branches
    on tensor values fails in ``model.predict`` too.)

    Args:
        function: The Python function of tensors.
        input_signature: Its ``tf.TensorSpec`` structure, so that one trace serves every batch size.
    """

    def __init__(self, function: Callable[..., Any], input_signature: Any):
        self._python_function = function
        self._input_signature = input_signature
        self._function = tf.function(function, input_signature=input_signature, autograph=False)
        self._converted = False

    def __call__(self, *arguments: Any) -> Any:
        try:
            return self._function(*arguments)
        except tf.errors.OperatorNotAllowedInGraphError:
            if self._converted:
                raise
            self._converted = True
            self._function = tf.function(self._python_function, input_signature=self._input_signature)
            return self._function(*arguments)

    def experimental_get_tracing_count(self) -> int:
        """How many times the function was traced."""
        return self._function.experimental_get_tracing_count()


def compiled(input_signature: Any) -> Callable[[Callable[..., Any]], CompiledFunction]:
    """A decorator: ``@compiled(signature)`` makes a :class:`CompiledFunction`."""
    return lambda function: CompiledFunction(function, input_signature)


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


class CompiledModel:
    """A model view, its compiled functions and the checks at the public boundary.

    Args:
        model: A Keras 3 or tf_keras model.
        batch_size: The most rows per compiled call (``None``: all at once).
        representation_layer, input_layer, output, need_representation: As for
            :class:`~tf_ig2.engine.model_view.ModelView`.
        padding_id: With an ``input_layer``, the id of padding positions (they never move).
        functions: The cache of compiled functions to use, e.g. one shared by every explainer of
            equal settings on this model (:func:`shared_functions`); ``None`` for a cache of its own.
    """

    def __init__(self, model: Any, *, batch_size: Optional[int] = None, representation_layer: Any = None,
                 need_representation: bool = False, input_layer: Any = None,
                 padding_id: Optional[int] = defaults.PADDING_ID, output: Any = None,
                 functions: Optional[Dict[Tuple[Any, ...], Any]] = None):
        self.batch_size = batch_size
        self.padding_id = padding_id
        self.view = ModelView(model, representation_layer, input_layer=input_layer, output=output,
                              need_representation=need_representation)
        self._functions: Dict[Tuple[Any, ...], Any] = {} if functions is None else functions
        self._embeddings: Optional[List[Optional[str]]] = None

    @property
    def model(self) -> Any:
        """The Keras model."""
        return self.view.model

    @property
    def tracing_count(self) -> int:
        """How many times the compiled functions were traced (stays flat across repeated calls)."""
        return sum(function.experimental_get_tracing_count() for function in self._functions.values())

    def function(self, key: Tuple[Any, ...], build: Callable[[], Any], score: Any = None) -> Any:
        """The compiled function for ``key``, built once by ``build()`` and cached.

        A callable target (``score``) is traced into the graph, so each new callable object gets
        its own function: pass the same callable to repeated calls to avoid tracing again. Only
        the most recent :data:`CALLABLE_CACHE_SIZE` callable-target functions are kept.
        """
        key = (key, score if callable(score) else None)
        if key not in self._functions:
            if callable(score):
                held = [other for other in self._functions if other[1] is not None]
                for stale in held[:max(0, len(held) - CALLABLE_CACHE_SIZE + 1)]:
                    del self._functions[stale]
            self._functions[key] = build()
        return self._functions[key]

    def outputs(self, inputs: Any) -> Any:
        """Model outputs (as logits where possible) for raw inputs (an array or a list), chunked.

        Args:
            inputs: ``(N, *S)`` (or one such array per model input).

        Returns:
            The model outputs for all N rows, e.g. ``(N, C)`` logits.
        """
        flat = [np.asarray(value) for value in as_list(inputs)]
        view = self.view

        def build() -> Any:
            specs = [tf.TensorSpec([None, *array.shape[1:]],
                                   tf.float32 if layer is None else tf.as_dtype(array.dtype))
                     for array, layer in zip(flat, view.input_layers)]
            return CompiledFunction(lambda values: view(None, model_inputs=list(values), representation=False)[1],
                                    [specs])

        forward = self.function(("forward",) + tuple((array.shape[1:], array.dtype.str) for array in flat), build)
        count = len(flat[0])
        size = self.batch_size or count
        chunks = [forward([tf.constant(array[start:start + size]) for array in flat])
                  for start in range(0, count, size)]
        if len(chunks) == 1:
            return chunks[0]
        return tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *chunks)

    def embed(self, model_inputs: np.ndarray, index: int) -> np.ndarray:
        """``input_layer`` outputs ``(M, *T, D)`` for raw inputs ``(M, *T)`` of input ``index``."""
        view = self.view
        spec = tf.TensorSpec([None, *model_inputs.shape[1:]], tf.as_dtype(model_inputs.dtype))
        embed = self.function(("embed", index, model_inputs.shape[1:], model_inputs.dtype.str),
                              lambda: CompiledFunction(lambda ids: view.embed(ids, index), [spec]))
        size = self.batch_size or len(model_inputs)
        return np.concatenate([embed(tf.constant(model_inputs[start:start + size])).numpy()
                               for start in range(0, len(model_inputs), size)])

    def _token_ids(self, name: str, array: np.ndarray, index: int) -> np.ndarray:
        """Checks raw ids of input ``index`` against its ``input_layer``'s vocabulary (``input_dim``)."""
        layer = self.view.input_layers[index]
        size = getattr(layer, "input_dim", None)
        return validation.token_ids(name, array, size if isinstance(size, int) else None,
                                    getattr(layer, "name", None))

    def check_inputs(self, inputs: Any) -> Any:
        """Validates raw ``inputs`` (an array, or a list/dict for several inputs) against the model.

        Returns the checked array for a single input, else the list of checked arrays.
        """
        view = self.view
        flat = view.inputs.flatten("inputs", inputs)
        several = len(flat) > 1
        checked = []
        for index, value in enumerate(flat):
            name = f"inputs[{view.inputs.names[index]!r}]" if several else "inputs"
            if view.input_layers[index] is not None:
                array = self._token_ids(name, validation.model_input_array(name, value), index)
            else:
                array = validation.float_array(name, value)
                if self._embeddings is None:  # the model's structure is fixed: read it once
                    self._embeddings = view.inputs.embedding_consumers(view.model)
                embeddings = self._embeddings
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

    def prepare(self, inputs: Any, references: Any, *, name: str = "references",
                allow_scalar: bool = False) -> Batch:
        """Checks ``inputs`` and ``references`` (called ``name``) and lays them out as a :class:`Batch`.

        Args:
            inputs: ``(N, *S)`` (a list or dict for several inputs; token ids with an ``input_layer``).
            references: ``(R, *S)`` or ``(N, R, *S)`` in the structure of ``inputs``, or a scalar
                when ``allow_scalar``.
            name: The references' argument name, for messages.
            allow_scalar: Whether a scalar (or ``S``-shaped) reference is accepted.
        """
        view = self.view
        checked = as_list(self.check_inputs(inputs))
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
            raw_references = self._token_ids(label, validation.references_array(label, reference, array.shape,
                                                                                integer=True), index)
            if raw_references.dtype != array.dtype:
                raise TypeError(f"`{label}` must have the dtype of the inputs ({array.dtype}). "
                                f"Received: {raw_references.dtype}")
            embedded = self.embed(raw_references.reshape((-1,) + raw_references.shape[2:]), index)
            batch.points.append(self.embed(array, index))
            batch.references.append(embedded.reshape(raw_references.shape[:2] + embedded.shape[1:]))
            batch.raw.append(array)
            batch.reference_raw.append(raw_references)
            movable = np.ones(array.shape, np.float32)
            if self.padding_id is not None:
                movable[array == self.padding_id] = 0.0
            batch.movable.append(movable)
        counts = [references.shape[1] for references in batch.references]
        if len(set(counts)) > 1:
            raise ValueError(f"`{name}` must hold the same number R of references for every input. Received: "
                             f"{dict(zip(view.inputs.names, counts))}")
        return batch

    def _check_callable(self, targets: Callable[[Any], Any], inputs: Any, several: bool = False) -> None:
        """Calls ``targets`` on the model output of two rows (one eager forward pass) and checks its shape.

        Raises:
            ValueError: If it does not return one score per row (or, with ``several``, ``(rows, T)`` scores).
        """
        rows = [tf.constant(np.asarray(value)[:2]) for value in as_list(inputs)]
        count = int(rows[0].shape[0])
        outputs = self.view(None, model_inputs=rows, representation=False)[1]
        try:
            scores = tf.convert_to_tensor(targets(outputs))
        except Exception as error:  # noqa: BLE001 - re-raised with what was called
            raise ValueError(f"The callable `targets` failed on the model output: {type(error).__name__}: {error}. "
                             f"It must map the model output (of {count} rows here) to one score per row.") from error
        shape = tuple(scores.shape)
        if shape in ((count,), (count, 1)):
            return
        # The model output returned unchanged is refused: it most often means a unit was not picked.
        unchanged = any(scores is value for value in tf.nest.flatten(outputs))
        if several and len(shape) == 2 and shape[0] == count and not unchanged:
            return
        more = ("; T targets per input are (N, T) scores other than the model output itself, e.g. `lambda "
                "outputs: tf.gather(outputs, [0, 2], axis=1)`, or pass `top_k` or (N, T) class indices"
                if several else "")
        raise ValueError(f"A callable `targets` must map the model output to one score per input, shape "
                         f"(N,). Received: scores of shape {shape} for {count} input rows"
                         f"{' (the model output itself)' if unchanged else ''}; e.g. `lambda outputs: "
                         f"outputs[:, 0]` explains the first output unit{more}.")

    def resolve_targets(self, targets: Any, inputs: Any, *, top_k: Optional[int] = None,
                        several: bool = False) -> Tuple[Optional[np.ndarray], Any]:
        """Returns ``(class indices (N,) or None, score spec)``; runs one forward pass if needed.

        Args:
            targets: ``None`` (the predicted class), an int, ``(N,)`` ints or a callable; with
                ``several``, also ``(N, T)`` ints, ``"top-K"`` or a callable returning ``(N, T)``.
            inputs: The checked raw inputs ``(N, ...)`` (a list for several inputs).
            top_k: With ``several``, K: the K highest logits of each input, highest first.
            several: Whether several targets per input are accepted; the indices are then
                ``(N, T)`` for the forms that ask for them.
        """
        top_k = validation.top_k(targets, top_k) if several else top_k
        if callable(targets):
            self._check_callable(targets, inputs, several)
            return None, targets
        outputs = self.outputs(inputs)
        count = len(as_list(inputs)[0])
        self.view.warn_if_probabilities(outputs)
        classes = num_classes(outputs)
        if top_k is not None:
            if classes is None or top_k > classes:
                raise ValueError(f"`top_k` must be at most the number of classes C of a model output (N, C). "
                                 f"Received: top_k={top_k} for an output of shape "
                                 f"{tuple(getattr(outputs, 'shape', ()))}")
            logits = np.asarray(outputs).reshape(count, -1)
            return np.argsort(-logits, axis=1, kind="stable")[:, :top_k].astype(np.int64), "index"
        checked = validation.targets(targets, count, classes, several=several)
        if checked is None:
            if classes is None:
                raise ValueError(
                    "`targets=None` explains the predicted class, which needs a model output of shape (N, C). "
                    "Pass a callable `targets` mapping the model output to N scores. Received: output of "
                    f"type {type(outputs).__name__}"
                )
            checked = np.argmax(np.asarray(outputs).reshape(count, -1), axis=1).astype(np.int64)
        return checked, "index"

    def batch_targets(self, targets: Any, batch: Batch, *, top_k: Optional[int] = None,
                      several: bool = False) -> Tuple[Optional[np.ndarray], Any]:
        """:meth:`resolve_targets` for the inputs of a :class:`Batch`."""
        raw_inputs = [raw if raw is not None else points for raw, points in zip(batch.raw, batch.points)]
        return self.resolve_targets(targets, raw_inputs if len(raw_inputs) > 1 else raw_inputs[0], top_k=top_k,
                                    several=several)


def value_key(value: Any) -> Any:
    """A hashable key equal for equal option values (arrays by content, layers by identity)."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, dict):
        return ("dict",) + tuple((key, value_key(value[key])) for key in sorted(value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(value_key(item) for item in value)
    if isinstance(value, (np.ndarray, np.generic)) or tf.is_tensor(value):
        array = np.asarray(value)
        return ("array", array.dtype.str, array.shape, array.tobytes())
    return ("object", id(value))


class ModelCache:
    """A bounded, most-recently-used cache of one object per (model, key); holds the models it serves."""

    def __init__(self, size: int):
        self.size = size
        self._entries: "collections.OrderedDict[Tuple[Any, ...], Tuple[Any, Any]]" = collections.OrderedDict()

    def get(self, model: Any, key: Tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """The object cached for ``model`` and ``key``, built by ``build()`` when missing."""
        full_key = (id(model),) + tuple(key)
        entry = self._entries.get(full_key)
        if entry is None or entry[0] is not model:
            entry = (model, build())
        self._entries[full_key] = entry
        self._entries.move_to_end(full_key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry[1]

    def values(self) -> List[Any]:
        """The cached objects, least recently used first."""
        return [entry[1] for entry in self._entries.values()]


#: The compiled functions of the most recent (model, method, settings), shared by their explainers.
_SHARED_FUNCTIONS = ModelCache(defaults.SHARED_COMPILED_SETTINGS)


def shared_functions(model: Any, method: str, settings: Dict[str, Any]) -> Dict[Tuple[Any, ...], Any]:
    """The cache of compiled functions shared by every explainer of ``method`` with ``settings`` on ``model``.

    A second explainer of equal settings (``IG2(model)`` built again in a loop, a callback and a
    later ``explain``) runs the functions the first one traced instead of tracing them again. The
    last :data:`tf_ig2.defaults.SHARED_COMPILED_SETTINGS` (model, method, settings) are kept, and
    with them their models.
    """
    return _SHARED_FUNCTIONS.get(model, (method, value_key(settings)), dict)
