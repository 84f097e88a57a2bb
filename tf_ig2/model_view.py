"""The model as every explainer sees it: inputs in, ``(representation, logits)`` out.

- The target score ``f_c(z)`` is a logit: a final softmax or sigmoid (a layer's ``activation``, a
  ``Softmax`` or ``Activation`` layer, inside nested models too) is run as the identity, as in the
  IG² paper. A one-unit sigmoid head ``z`` is scored as two logits ``[-z, z]``, so class 1 is
  ``z``, class 0 is ``-z`` (the logit of the negative class) and the predicted class is ``z > 0``.
- The representation ``phi(z)`` that GradPath moves in is a chosen layer's output, by default the
  input of the layer producing the explained output (the penultimate representation, Zhuo & Ge
  2024, Sec. 5), wherever that layer is nested.
- Models with several inputs (a list or a dict) take one array per input; inputs that cannot move
  along a gradient (token ids) are explained in the output space of an ``input_layer``.

Both come out of one forward pass, through per-thread hooks (:mod:`tf_ig2.layer_hooks`): the
user's model is never changed, and other threads calling it see it as it is.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from . import defaults, layer_hooks

LayerSpec = Union[None, str, int, Any]
Targets = Union[None, int, np.ndarray, Callable[[Any], Any]]

#: Layer names listed in an error message, at most (the nearest to what was asked first).
MAX_LISTED_LAYERS = 30

_FINAL_ACTIVATIONS = ("softmax", "sigmoid")


def keras_module(model: Any) -> Any:
    """The Keras package ``model`` belongs to: ``keras`` (Keras 3) or ``tf_keras`` (Keras 2).

    Raises:
        TypeError: If ``model`` is not a Keras layer or model of either.
    """
    import keras

    if isinstance(model, keras.layers.Layer):
        return keras
    roots = {cls.__module__.split(".")[0] for cls in type(model).__mro__}
    if "tf_keras" in roots:
        import tf_keras

        if isinstance(model, tf_keras.layers.Layer):
            return tf_keras
    hint = ""
    if roots & {"keras", "tensorflow"} and hasattr(model, "layers"):
        hint = " It looks like a Keras 2 model from another Keras installation; load it with tf_keras."
    raise TypeError(
        "`model` must be a Keras model or layer (keras.Model, keras.Sequential or a subclass, or a tf_keras "
        f"(Keras 2) model).{hint} Received: {type(model).__module__}.{type(model).__name__}"
    )


def _activation_name(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") if activation is not None else ""


def _is_activation_layer(layer: Any, module: Any) -> bool:
    """A layer that only applies a final activation (``Softmax``, ``Activation('softmax'|'sigmoid')``)."""
    if isinstance(layer, module.layers.Softmax):
        return True
    return isinstance(layer, module.layers.Activation) and _activation_name(layer) in _FINAL_ACTIVATIONS


def _final_activation(layer: Any, module: Any) -> Optional[str]:
    """``"softmax"``/``"sigmoid"`` when ``layer`` ends in one, else ``None``."""
    if isinstance(layer, module.layers.Softmax):
        return "softmax"
    name = _activation_name(layer)
    return name if name in _FINAL_ACTIVATIONS else None


def _sublayers(container: Any) -> List[Any]:
    layers = getattr(container, "layers", None)
    if layers is None:
        layers = getattr(container, "_layers", None)
    try:
        return list(layers or [])
    except TypeError:
        return []


def all_layers(model: Any) -> List[Any]:
    """Every layer of ``model``, nested models and custom layers' sublayers included, in order."""
    found: List[Any] = []
    seen = set()
    input_layer_types = tuple({type(layer) for layer in _sublayers(model) if type(layer).__name__ == "InputLayer"})

    def visit(container: Any) -> None:
        for layer in _sublayers(container):
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if type(layer).__name__ != "InputLayer" and not isinstance(layer, input_layer_types):
                found.append(layer)
            visit(layer)

    visit(model)
    return found


def layer_list(names: Sequence[str], asked: Any = None, limit: int = MAX_LISTED_LAYERS) -> str:
    """``names`` for an error message: the ``limit`` nearest to ``asked`` first, then a count."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(repr(name) for name in names)
    nearest = difflib.get_close_matches(str(asked), names, n=limit, cutoff=0.0) if asked is not None else []
    shown = nearest + [name for name in names if name not in nearest][:limit - len(nearest)]
    return f"{', '.join(repr(name) for name in shown)} ... and {len(names) - len(shown)} more"


def _producer(tensor: Any) -> Tuple[Optional[Any], int]:
    """``(layer, output index)`` that produced a symbolic Keras tensor (Keras 3 or tf_keras)."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, 0
    operation = getattr(history, "operation", None) or getattr(history, "layer", None)
    if operation is None and isinstance(history, tuple) and history:
        operation = history[0]
    index = getattr(history, "tensor_index", None)
    if index is None and isinstance(history, tuple) and len(history) > 2:
        index = history[2]
    return operation, int(index or 0)


def _symbolic_outputs(model: Any) -> Any:
    for name in ("_outputs", "outputs"):
        try:
            value = getattr(model, name, None)
        except (AttributeError, ValueError):
            value = None
        if value is not None:
            return value
    return None


def _innermost(layer: Any, index: int = 0) -> Any:
    """Follows a nested model down to the layer that really produces its ``index``-th output."""
    for _ in range(64):
        outputs = _symbolic_outputs(layer) if _sublayers(layer) else None
        flat = tf.nest.flatten(outputs) if outputs is not None else []
        if not flat:
            return layer
        inner, inner_index = _producer(flat[index if index < len(flat) else 0])
        if inner is None or inner is layer:
            return layer
        layer, index = inner, inner_index
    return layer


def output_names(model: Any) -> List[str]:
    """Names of a functional model's outputs, in order (empty when unknown)."""
    try:
        return list(getattr(model, "output_names", None) or [])
    except (AttributeError, ValueError):
        return []


def _pick(structure: Any, output: Union[None, str, int], names: List[str]) -> Any:
    """The entry of a list/dict ``structure`` named or indexed by ``output`` (None if absent)."""
    if isinstance(structure, dict):
        if isinstance(output, int):
            keys = names if len(names) == len(structure) else list(structure)
            output = keys[output] if -len(keys) <= output < len(keys) else None
        return structure.get(output)
    if isinstance(structure, (list, tuple)):
        if isinstance(output, str):
            output = names.index(output) if output in names else None
        if isinstance(output, int) and -len(structure) <= output < len(structure):
            return structure[output]
    return None


def find_layer(model: Any, spec: Any, argument: str) -> Any:
    """Returns the layer of ``model`` named, indexed (into ``model.layers``) or given by ``spec``."""
    layers = all_layers(model)
    if isinstance(spec, bool):
        raise TypeError(f"`{argument}` must be a layer name, an index or a Keras layer. Received: {spec!r}")
    if isinstance(spec, str):
        by_name = {layer.name: layer for layer in layers}
        if spec not in by_name:
            extra = " (or 'output')" if argument == "representation_layer" else ""
            raise ValueError(
                f"`{argument}` names no layer of the model. Received: {spec!r}. "
                f"Available layers: {layer_list(list(by_name), spec)}{extra}"
            )
        return by_name[spec]
    if isinstance(spec, (int, np.integer)):
        top = [layer for layer in _sublayers(model) if type(layer).__name__ != "InputLayer"]
        if not -len(top) <= int(spec) < len(top):
            raise ValueError(
                f"`{argument}` index must be in [{-len(top)}, {len(top) - 1}] for a model "
                f"with {len(top)} layers. Received: {argument}={spec}"
            )
        return top[int(spec)]
    if hasattr(spec, "call") and hasattr(spec, "name"):
        if not any(layer is spec for layer in layers):
            raise ValueError(
                f"`{argument}` must be a layer of the model. Received: layer '{spec.name}', "
                f"which is not among: {layer_list([layer.name for layer in layers], spec.name)}"
            )
        return spec
    raise TypeError(
        f"`{argument}` must be a layer name, an index or a Keras layer. Received: {type(spec).__name__}"
    )


def _linear_copy(layer: Any, module: Any) -> Any:
    """A shallow copy of ``layer`` sharing its weights, with a linear activation (never registered)."""
    clone = object.__new__(type(layer))
    clone.__dict__.update(layer.__dict__)
    clone.__dict__.pop("call", None)
    object.__setattr__(clone, "activation", module.activations.linear)
    return clone


class ModelInputs:
    """The model's inputs: their structure, names, shapes and dtypes, in a fixed flat order.

    Attributes:
        names: One name per input (the dict keys for dict inputs).
        shapes: ``(None, *S_i)`` per input (``None`` for unknown sizes), or ``None`` if unknown.
        dtypes: The declared dtype per input (``"float32"`` when unknown).
        kind: ``"single"``, ``"list"`` or ``"dict"``.
    """

    def __init__(self, model: Any):
        structure = None
        for name in ("_inputs_struct", "_nested_inputs", "inputs"):
            try:
                structure = getattr(model, name, None)
            except (AttributeError, ValueError):
                structure = None
            if structure is not None:
                break
        flat = tf.nest.flatten(structure) if structure is not None else []
        if isinstance(structure, dict):
            self.kind, self.names = "dict", sorted(structure)
        elif len(flat) > 1:
            self.kind = "list"
            self.names = [getattr(tensor, "name", f"input_{i}").split(":")[0] for i, tensor in enumerate(flat)]
        else:
            self.kind, self.names = "single", [getattr(flat[0], "name", "input").split(":")[0] if flat else "input"]
        self.tensors = flat
        self.shapes: List[Optional[Tuple[Optional[int], ...]]] = []
        self.dtypes: List[str] = []
        for tensor in flat or [None]:
            shape = getattr(tensor, "shape", None)
            self.shapes.append(None if shape is None else
                               (None,) + tuple(None if d is None else int(d) for d in list(shape)[1:]))
            dtype = getattr(tensor, "dtype", None)
            self.dtypes.append(getattr(dtype, "name", None) or str(dtype or "float32"))

    def __len__(self) -> int:
        return len(self.names)

    def flatten(self, name: str, value: Any) -> List[Any]:
        """The user's ``value`` for all inputs as a list in input order (one array, a list or a dict).

        Raises:
            TypeError, ValueError: If the structure does not match the model's inputs.
        """
        if len(self) == 1:
            if isinstance(value, dict):
                if len(value) != 1:
                    raise ValueError(f"`{name}` must hold one array for the model's single input. "
                                     f"Received: a dict with keys {sorted(value)}")
                return [next(iter(value.values()))]
            if isinstance(value, (list, tuple)) and len(value) == 1 and not np.isscalar(value[0]) \
                    and np.ndim(value[0]) >= 1 and not isinstance(value[0], (list, tuple)):
                return [value[0]]
            return [value]
        expected = (f"a dict with keys {self.names}" if self.kind == "dict" else
                    f"a list of {len(self)} arrays (one per input: {', '.join(self.names)})")
        if isinstance(value, dict):
            if sorted(value) != sorted(self.names):
                raise ValueError(f"`{name}` must be {expected}. Received: a dict with keys {sorted(value)}")
            return [value[key] for key in self.names]
        if isinstance(value, (list, tuple)):
            if len(value) != len(self):
                raise ValueError(f"`{name}` must be {expected}. Received: a {type(value).__name__} of "
                                 f"{len(value)} entries")
            return list(value)
        raise TypeError(f"`{name}` must be {expected} for a model with {len(self)} inputs. "
                        f"Received: {type(value).__name__}")

    def pack(self, flat: Sequence[Any]) -> Any:
        """The model's input structure holding ``flat`` (the inverse of :meth:`flatten`)."""
        if self.kind == "dict":
            return dict(zip(self.names, flat))
        if self.kind == "list":
            return list(flat)
        return flat[0]


class ModelView:
    """One forward pass of a Keras model that yields ``(representation, logits)``.

    Args:
        model: A Keras 3 or tf_keras model (Sequential, functional or subclassed) or layer.
        representation_layer: ``None`` (the input of the layer producing the explained output),
            a layer name, an index into ``model.layers``, a Keras layer of the model, or
            ``"output"``.
        input_layer: For inputs that cannot move along a gradient (token ids): the layer whose
            output space the explanation lives in (an ``Embedding``). For a model with several
            inputs, a list or dict with one entry (``None`` for float inputs) per input, or one
            layer, matched to the input it consumes.
        output: For a model with several outputs, the one to explain (a name or an index).
        need_representation: ``False`` when only scores are needed (straight-line and Guided IG).

    Raises:
        TypeError: If ``model`` is not a Keras model, or a spec has an unsupported type.
        ValueError: If a named or indexed layer or output does not exist.
    """

    def __init__(self, model: Any, representation_layer: LayerSpec = None, *, input_layer: Any = None,
                 output: Union[None, str, int] = None, need_representation: bool = True):
        self.keras = keras_module(model)
        if self.keras.__name__ == "keras":
            backend = self.keras.backend.backend()
            if backend != "tensorflow":
                raise ValueError(
                    "tf_ig2 computes gradients with TensorFlow and needs Keras' TensorFlow backend. "
                    f"Received: keras.backend.backend()={backend!r}; set KERAS_BACKEND=tensorflow before importing keras"
                )
        self.model = model
        self.inputs = ModelInputs(model)
        self.input_layers = self._resolve_input_layers(input_layer)
        self.output = self._check_output(output)
        last = self._output_layer()
        self.final_layer = last
        self.final_activation = None if last is None else _final_activation(last, self.keras)
        self.binary = False
        if self.final_activation == "sigmoid":
            shape = getattr(self._explained_symbolic_output(), "shape", None)
            self.binary = shape is not None and len(shape) == 2 and shape[-1] == 1
        self.scores_are_logits = self.final_activation is not None
        self._checked_probabilities = False
        self.representation_layer = None
        self.representation_mode = None
        self.representation_description = None
        if need_representation:
            self._resolve_representation(representation_layer, last)

    # -- structure --------------------------------------------------------------------------------
    @property
    def input_layer(self) -> Any:
        """The single input's ``input_layer`` (``None`` for several inputs or none)."""
        return self.input_layers[0] if len(self.input_layers) == 1 else None

    @property
    def input_shape(self) -> Optional[Tuple[Optional[int], ...]]:
        """The expected ``(None, *S)`` input shape when the model has a single known input, else None."""
        return self.inputs.shapes[0] if len(self.inputs) == 1 else None

    def _resolve_input_layers(self, spec: Any) -> List[Any]:
        count = len(self.inputs)
        if spec is None:
            return [None] * count
        if isinstance(spec, dict):
            if count < 2 or sorted(spec) != sorted(set(spec) & set(self.inputs.names)):
                raise ValueError(f"`input_layer` as a dict must be keyed by the model's input names "
                                 f"{self.inputs.names}. Received: keys {sorted(spec)}")
            return [None if spec.get(name) is None else find_layer(self.model, spec[name], "input_layer")
                    for name in self.inputs.names]
        if isinstance(spec, (list, tuple)):
            if len(spec) != count:
                raise ValueError(f"`input_layer` as a list needs one entry (a layer or None) per model input "
                                 f"({count}). Received: {len(spec)} entries")
            return [None if item is None else find_layer(self.model, item, "input_layer") for item in spec]
        layer = find_layer(self.model, spec, "input_layer")
        if count == 1:
            return [layer]
        consumed = self._consumed_input(layer)
        if consumed is None:
            raise ValueError(f"`input_layer` '{layer.name}' could not be matched to one of the model's inputs "
                             f"{self.inputs.names}; pass a list or dict with one entry per input.")
        return [layer if index == consumed else None for index in range(count)]

    def _consumed_input(self, layer: Any) -> Optional[int]:
        """Index of the model input that ``layer`` reads directly, if the graph tells it."""
        try:
            source = layer.input
        except (AttributeError, ValueError, RuntimeError):
            return None
        for index, tensor in enumerate(self.inputs.tensors):
            if source is tensor or _producer(source)[0] is _producer(tensor)[0] is not None:
                return index
        return None

    def embedding_inputs(self) -> List[Optional[str]]:
        """Per input, the name of an ``Embedding`` layer reading it directly, if any."""
        found: List[Optional[str]] = [None] * len(self.inputs)
        embedding = getattr(self.keras.layers, "Embedding", None)
        for layer in all_layers(self.model):
            if embedding is not None and isinstance(layer, embedding):
                index = self._consumed_input(layer)
                if index is not None:
                    found[index] = layer.name
        return found

    # -- outputs ----------------------------------------------------------------------------------
    def _check_output(self, output: Any) -> Union[None, str, int]:
        if output is None:
            return None
        if isinstance(output, bool) or not isinstance(output, (str, int, np.integer)):
            raise TypeError(f"`output` must be None, an output name or an index. Received: output={output!r}")
        names = output_names(self.model)
        if isinstance(output, str) and names and output not in names:
            raise ValueError(f"`output` names no output of the model. Received: output={output!r}. "
                             f"Available outputs: {', '.join(map(repr, names))}")
        if not isinstance(output, str) and names and not -len(names) <= int(output) < len(names):
            raise ValueError(f"`output` index must be in [{-len(names)}, {len(names) - 1}] for a model with "
                             f"outputs {', '.join(map(repr, names))}. Received: output={output}")
        return output if isinstance(output, str) else int(output)

    def _explained_symbolic_output(self) -> Any:
        structure = _symbolic_outputs(self.model)
        flat = tf.nest.flatten(structure) if structure is not None else []
        if len(flat) > 1:
            return None if self.output is None else _pick(structure, self.output, output_names(self.model))
        return flat[0] if flat else None

    def _output_layer(self) -> Optional[Any]:
        """The innermost layer producing the explained output, when the model's graph tells it."""
        tensor = self._explained_symbolic_output()
        layer, index = _producer(tensor)
        if layer is not None and layer is not self.model:
            return _innermost(layer, index)
        structure = _symbolic_outputs(self.model)
        if len(tf.nest.flatten(structure) if structure is not None else []) > 1 or self.output is not None:
            return None
        layers = [layer for layer in _sublayers(self.model) if type(layer).__name__ != "InputLayer"]
        return _innermost(layers[-1]) if layers else None

    def _select_output(self, outputs: Any) -> Any:
        if self.output is None:
            if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
                return outputs[0]
            return outputs
        if tf.is_tensor(outputs) and self.output in (0, -1):
            return outputs
        picked = _pick(outputs, self.output, output_names(self.model))
        if picked is None:
            available = list(outputs) if isinstance(outputs, dict) else f"{len(outputs)} outputs" \
                if isinstance(outputs, (list, tuple)) else type(outputs).__name__
            raise ValueError(f"`output` picks no output of the model. Received: output={self.output!r}; "
                             f"the model returned {available}")
        return picked

    # -- representation ---------------------------------------------------------------------------
    def _resolve_representation(self, spec: LayerSpec, last: Optional[Any]) -> None:
        if isinstance(spec, str) and spec == defaults.OUTPUT_REPRESENTATION:
            self.representation_mode = "model_output"
            self.representation_description = "model output" + (" (logits)" if self.scores_are_logits else "")
            return
        if spec is None:
            layer = last
            if layer is None:
                several = len(tf.nest.flatten(_symbolic_outputs(self.model) or [])) > 1
                reason = ("this model has several outputs: pass `output` to pick one" if several else
                          f"this model ({type(self.model).__name__}) has no layers to inspect")
                raise ValueError(
                    f"`representation_layer=None` means the input of the layer producing the explained output, but "
                    f"{reason}, or pass a `representation_layer` (a layer name or 'output')."
                )
            if _is_activation_layer(layer, self.keras):
                # The input of a final softmax/sigmoid layer is the logits; go one layer further back.
                before = self._layer_before(layer)
                if before is None or _is_activation_layer(before, self.keras):
                    raise ValueError(f"Could not find a layer before the final activation layer '{layer.name}'; "
                                     "pass `representation_layer`.")
                layer = before
            self.representation_layer, self.representation_mode = layer, "input"
            self.representation_description = f"input of layer '{layer.name}'"
            return
        if isinstance(spec, bool) or not (isinstance(spec, (str, int, np.integer)) or hasattr(spec, "call")):
            raise TypeError(
                "`representation_layer` must be None, 'output', a layer name, an index or a Keras layer. "
                f"Received: {spec!r}"
            )
        layer = find_layer(self.model, spec, "representation_layer")
        self.representation_layer, self.representation_mode = layer, "output"
        self.representation_description = f"output of layer '{layer.name}'"

    def _layer_before(self, layer: Any) -> Optional[Any]:
        try:
            before, index = _producer(layer.input)
        except (AttributeError, ValueError, RuntimeError):
            before, index = None, 0
        if before is not None and type(before).__name__ != "InputLayer":
            return _innermost(before, index)
        layers = [item for item in all_layers(self.model) if item is not layer]
        return layers[-1] if layers else None

    # -- forward ----------------------------------------------------------------------------------
    def _hooks(self, points: Optional[List[tf.Tensor]], representation: bool) -> List[tuple]:
        hooks: Dict[int, Tuple[Any, layer_hooks.Hook]] = {}

        def hook(layer: Any) -> layer_hooks.Hook:
            if id(layer) not in hooks:
                hooks[id(layer)] = (layer, layer_hooks.Hook())
            return hooks[id(layer)][1]

        if representation and self.representation_layer is not None:
            key = "representation"
            if self.representation_mode == "input":
                hook(self.representation_layer).record_input = key
            else:
                hook(self.representation_layer).record_output = key
        if self.final_activation is not None:
            final = self.final_layer
            if _is_activation_layer(final, self.keras):
                hook(final).replace = lambda original, args, kwargs: args[0] if args else next(iter(kwargs.values()))
            else:
                linear = _linear_copy(final, self.keras)
                call = type(final).call
                hook(final).replace = lambda original, args, kwargs: call(linear, *args, **kwargs)
        if points is not None:
            for layer, point in zip(self.input_layers, points):
                if layer is not None:
                    substitute = tf.cast(point, layer.compute_dtype)
                    hook(layer).replace = lambda original, args, kwargs, value=substitute: value
        return list(hooks.values())

    def __call__(self, inputs: Any, *, model_inputs: Any = None,
                 representation: bool = True) -> Tuple[Optional[tf.Tensor], Any]:
        """Runs the model once in inference mode.

        Args:
            inputs: The points to score: a ``(P, *S)`` tensor, or a list with one ``(P, *S_i)``
                tensor per model input. For an input with an ``input_layer``, the points are that
                layer's outputs, substituted for what it computes from ``model_inputs``. ``None``
                runs the model on ``model_inputs`` unchanged.
            model_inputs: The raw model inputs (e.g. ``(P, T)`` token ids) for the inputs with an
                ``input_layer``: a tensor, or a list with one entry (or ``None``) per input.
            representation: Whether to record the representation.

        Returns:
            ``(representation, outputs)``: the ``(P, ...)`` representation (or ``None``) and the
            model outputs as logits where the final activation could be removed (``(P, 2)``
            ``[-z, z]`` for a one-unit sigmoid head).
        """
        count = len(self.inputs)
        points = None if inputs is None else (list(inputs) if isinstance(inputs, (list, tuple)) else [inputs])
        raw = (list(model_inputs) if isinstance(model_inputs, (list, tuple)) else [model_inputs] * count) \
            if model_inputs is not None else [None] * count
        flat = []
        for index in range(count):
            if self.input_layers[index] is not None or points is None:
                flat.append(raw[index])
            else:
                flat.append(points[index])
        with layer_hooks.active(self._hooks(points, representation)) as store:
            outputs = self.model(self.inputs.pack(flat), training=False)
        outputs = self._select_output(outputs)
        if self.binary and tf.is_tensor(outputs):
            logits = tf.cast(outputs, tf.float32)
            outputs = tf.concat([-logits, logits], axis=-1)
        if not representation:
            return None, outputs
        if self.representation_mode == "model_output":
            return _single_tensor(outputs, "representation_layer='output'"), outputs
        if "representation" not in store:
            raise ValueError(
                f"The representation layer '{self.representation_layer.name}' was not called during the "
                "model's forward pass; pass another `representation_layer`."
            )
        return store["representation"], outputs

    def embed(self, model_inputs: Any, index: int = 0) -> tf.Tensor:
        """``input_layer``'s output for raw inputs of input ``index`` (``(N, T)`` -> ``(N, T, D)``)."""
        return tf.cast(self.input_layers[index](model_inputs), tf.float32)

    def describe_final(self) -> str:
        """What produces the explained output, for messages."""
        layer = self.final_layer
        if layer is None:
            return f"a {type(self.model).__name__} whose last layer could not be found"
        activation = _activation_name(layer) or "none"
        return f"layer '{layer.name}' ({type(layer).__name__}, activation {activation!r})"

    def warn_if_probabilities(self, outputs: Any) -> None:
        """Warns once when the scores look like probabilities that could not be scored as logits."""
        if self.scores_are_logits or self._checked_probabilities or not tf.is_tensor(outputs):
            return
        self._checked_probabilities = True
        values = np.asarray(outputs)
        if values.ndim == 2 and values.shape[1] > 1 and np.all(values >= 0):
            if np.allclose(values.sum(axis=1), 1.0, atol=1e-3):
                warnings.warn(
                    "The model's outputs look like softmax probabilities, but the explained output comes from "
                    f"{self.describe_final()}, so no final softmax could be removed (e.g. it is applied inside a "
                    "subclassed model's call or a custom layer). Attributions explain the probabilities, not the "
                    "logits; end the model in a layer with activation='softmax' (or a Softmax layer) to explain "
                    "logits, or pass a callable `targets`.",
                    stacklevel=3,
                )


def _single_tensor(outputs: Any, what: str) -> tf.Tensor:
    if tf.is_tensor(outputs) or isinstance(outputs, np.ndarray):
        return outputs
    raise ValueError(f"{what} needs a model with a single output tensor. Received outputs of type {type(outputs).__name__}")


def num_classes(outputs: Any) -> Optional[int]:
    """C, the size of the output's last axis for a ``(N, C)`` output; 1 for ``(N,)``; else None."""
    if not tf.is_tensor(outputs) and not isinstance(outputs, np.ndarray):
        return None
    if len(outputs.shape) == 1:
        return 1
    if len(outputs.shape) == 2:
        return int(outputs.shape[1])
    return None


def target_scores(outputs: Any, targets: Any) -> tf.Tensor:
    """``(P,)`` scores: ``outputs[p, targets[p]]``, or ``targets(outputs)`` for a callable.

    Args:
        outputs: ``(P, C)`` or ``(P,)`` model outputs (or any structure, for a callable).
        targets: ``(P,)`` int tensor of class indices, or a callable.
    """
    if callable(targets):
        scores = tf.convert_to_tensor(targets(outputs))
        return tf.reshape(tf.cast(scores, tf.float32), [-1])
    outputs = tf.cast(_single_tensor(outputs, "Integer targets"), tf.float32)
    if len(outputs.shape) == 1:
        outputs = outputs[:, None]
    if len(outputs.shape) != 2:
        raise ValueError(
            "Integer targets need a model output of shape (N, C); pass a callable `targets` mapping the "
            f"output to N scores. Received: output shape {tuple(outputs.shape)}"
        )
    return tf.gather(outputs, tf.cast(targets, tf.int32), axis=1, batch_dims=1)
