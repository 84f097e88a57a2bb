"""Reading a Keras model's structure: its layers, nested models, inputs and outputs.

Works on Keras 3 and tf_keras (Keras 2) models alike, through their symbolic graphs where they
have one (functional and Sequential models, nested ones included) and their layer lists where
they do not (subclassed models). Nothing here runs or changes the model.
"""

from __future__ import annotations

import difflib
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

#: Layer names listed in an error message, at most (the nearest to what was asked first).
MAX_LISTED_LAYERS = 30

FINAL_ACTIVATIONS = ("softmax", "sigmoid")


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


def activation_name(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") if activation is not None else ""


def is_activation_layer(layer: Any, module: Any) -> bool:
    """A layer that only applies a final activation (``Softmax``, ``Activation('softmax'|'sigmoid')``)."""
    if isinstance(layer, module.layers.Softmax):
        return True
    return isinstance(layer, module.layers.Activation) and activation_name(layer) in FINAL_ACTIVATIONS


def final_activation_of(layer: Any, module: Any) -> Optional[str]:
    """``"softmax"``/``"sigmoid"`` when ``layer`` ends in one, else ``None``."""
    if isinstance(layer, module.layers.Softmax):
        return "softmax"
    name = activation_name(layer)
    return name if name in FINAL_ACTIVATIONS else None


def sublayers(container: Any) -> List[Any]:
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
    input_layer_types = tuple({type(layer) for layer in sublayers(model) if type(layer).__name__ == "InputLayer"})

    def visit(container: Any) -> None:
        for layer in sublayers(container):
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


def producer(tensor: Any) -> Tuple[Optional[Any], int]:
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


def symbolic_outputs(model: Any) -> Any:
    for name in ("_outputs", "outputs"):
        try:
            value = getattr(model, name, None)
        except (AttributeError, ValueError):
            value = None
        if value is not None:
            return value
    return None


def innermost(layer: Any, index: int = 0) -> Any:
    """Follows a nested model down to the layer that really produces its ``index``-th output."""
    for _ in range(64):
        outputs = symbolic_outputs(layer) if sublayers(layer) else None
        flat = tf.nest.flatten(outputs) if outputs is not None else []
        if not flat:
            return layer
        inner, inner_index = producer(flat[index if index < len(flat) else 0])
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


def pick(structure: Any, output: Union[None, str, int], names: List[str]) -> Any:
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
        top = [layer for layer in sublayers(model) if type(layer).__name__ != "InputLayer"]
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


def linear_copy(layer: Any, module: Any) -> Any:
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

    def consumer_index(self, layer: Any) -> Optional[int]:
        """Index of the model input that ``layer`` reads directly, if the graph tells it."""
        try:
            source = layer.input
        except (AttributeError, ValueError, RuntimeError):
            return None
        for index, tensor in enumerate(self.tensors):
            if source is tensor or producer(source)[0] is producer(tensor)[0] is not None:
                return index
        return None

    def embedding_consumers(self, model: Any) -> List[Optional[str]]:
        """Per input, the name of an ``Embedding`` layer reading it directly, if any."""
        found: List[Optional[str]] = [None] * len(self)
        embedding = getattr(keras_module(model).layers, "Embedding", None)
        for layer in all_layers(model):
            if embedding is not None and isinstance(layer, embedding):
                index = self.consumer_index(layer)
                if index is not None:
                    found[index] = layer.name
        return found


def resolve_input_layers(model: Any, inputs: ModelInputs, spec: Any) -> List[Any]:
    """``input_layer`` as one layer (or ``None``) per model input."""
    count = len(inputs)
    if spec is None:
        return [None] * count
    if isinstance(spec, dict):
        if count < 2 or sorted(spec) != sorted(set(spec) & set(inputs.names)):
            raise ValueError(f"`input_layer` as a dict must be keyed by the model's input names "
                             f"{inputs.names}. Received: keys {sorted(spec)}")
        return [None if spec.get(name) is None else find_layer(model, spec[name], "input_layer")
                for name in inputs.names]
    if isinstance(spec, (list, tuple)):
        if len(spec) != count:
            raise ValueError(f"`input_layer` as a list needs one entry (a layer or None) per model input "
                             f"({count}). Received: {len(spec)} entries")
        return [None if item is None else find_layer(model, item, "input_layer") for item in spec]
    layer = find_layer(model, spec, "input_layer")
    if count == 1:
        return [layer]
    consumed = inputs.consumer_index(layer)
    if consumed is None:
        raise ValueError(f"`input_layer` '{layer.name}' could not be matched to one of the model's inputs "
                         f"{inputs.names}; pass a list or dict with one entry per input.")
    return [layer if index == consumed else None for index in range(count)]


def check_output(model: Any, output: Any) -> Union[None, str, int]:
    """``output`` checked against the model's output names (``None`` passes through)."""
    if output is None:
        return None
    if isinstance(output, bool) or not isinstance(output, (str, int, np.integer)):
        raise TypeError(f"`output` must be None, an output name or an index. Received: output={output!r}")
    names = output_names(model)
    if isinstance(output, str) and names and output not in names:
        raise ValueError(f"`output` names no output of the model. Received: output={output!r}. "
                         f"Available outputs: {', '.join(map(repr, names))}")
    if not isinstance(output, str) and names and not -len(names) <= int(output) < len(names):
        raise ValueError(f"`output` index must be in [{-len(names)}, {len(names) - 1}] for a model with "
                         f"outputs {', '.join(map(repr, names))}. Received: output={output}")
    return output if isinstance(output, str) else int(output)


def select_output(model: Any, output: Any, outputs: Any) -> Any:
    """The explained entry of the model's ``outputs`` (all of them for ``output=None``)."""
    if output is None:
        if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
            return outputs[0]
        return outputs
    if tf.is_tensor(outputs) and output in (0, -1):
        return outputs
    picked = pick(outputs, output, output_names(model))
    if picked is None:
        available = list(outputs) if isinstance(outputs, dict) else f"{len(outputs)} outputs" \
            if isinstance(outputs, (list, tuple)) else type(outputs).__name__
        raise ValueError(f"`output` picks no output of the model. Received: output={output!r}; "
                         f"the model returned {available}")
    return picked
