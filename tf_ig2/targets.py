"""The two functions every explainer needs from a Keras model.

- the target score ``f_c(z)``: the logit of class ``c`` (pre-softmax when the model ends in a
  softmax, as in the IG² paper), or any user callable mapping the model output to ``(N,)`` scores;
- the representation ``phi(z)`` that GradPath moves in: the output of a chosen layer, by default
  the input of the model's last layer (the penultimate representation, Zhuo & Ge 2024, Sec. 5).

Both come out of a single forward pass: the chosen layer's ``call`` is wrapped for the duration
of the pass to record its input or output, and a final softmax activation is swapped for the
identity the same way. The user's model is restored on exit, and inside ``tf.function`` the wrap
only lives while tracing, so the compiled graph reads the model's live weights.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from . import defaults

logger = logging.getLogger(__name__)

LayerSpec = Union[None, str, int, "keras.layers.Layer"]
Targets = Union[None, int, np.ndarray, Callable[[Any], Any]]


def _activation_name(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") if activation is not None else ""


def _is_softmax_layer(layer: Any) -> bool:
    if isinstance(layer, keras.layers.Softmax):
        return True
    return isinstance(layer, keras.layers.Activation) and _activation_name(layer) == "softmax"


def all_layers(model: Any) -> List[Any]:
    """Every layer of ``model``, nested models included, in definition order (no duplicates)."""
    found: List[Any] = []
    seen = set()

    def visit(container: Any) -> None:
        for layer in getattr(container, "layers", None) or []:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if not isinstance(layer, keras.layers.InputLayer):
                found.append(layer)
            visit(layer)

    visit(model)
    return found


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


def _output_layer(model: Any, output: Union[None, str, int] = None) -> Optional[Any]:
    """The layer producing the explained output, when the model's graph tells it."""
    structure = getattr(model, "_outputs", None)
    flat = tf.nest.flatten(structure) if structure is not None else []
    if len(flat) > 1:
        if output is None:
            return None
        tensor = _pick(structure, output, output_names(model))
    else:
        tensor = flat[0] if flat else None
    operation = getattr(getattr(tensor, "_keras_history", None), "operation", None)
    if isinstance(operation, keras.layers.Layer):
        return operation
    if len(flat) > 1 or output is not None:
        return None
    layers = [layer for layer in getattr(model, "layers", None) or [] if not isinstance(layer, keras.layers.InputLayer)]
    return layers[-1] if layers else None


def output_names(model: Any) -> List[str]:
    """Names of a functional model's outputs, in order (empty when unknown)."""
    try:
        return list(getattr(model, "output_names", None) or [])
    except (AttributeError, ValueError):
        return []


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
                f"Available layers: {', '.join(repr(name) for name in by_name)}{extra}"
            )
        return by_name[spec]
    if isinstance(spec, (int, np.integer)):
        top = [layer for layer in getattr(model, "layers", []) if not isinstance(layer, keras.layers.InputLayer)]
        if not -len(top) <= int(spec) < len(top):
            raise ValueError(
                f"`{argument}` index must be in [{-len(top)}, {len(top) - 1}] for a model "
                f"with {len(top)} layers. Received: {argument}={spec}"
            )
        return top[int(spec)]
    if isinstance(spec, keras.layers.Layer):
        if not any(layer is spec for layer in layers):
            raise ValueError(
                f"`{argument}` must be a layer of the model. Received: layer '{spec.name}', "
                f"which is not among: {', '.join(repr(layer.name) for layer in layers)}"
            )
        return spec
    raise TypeError(
        f"`{argument}` must be a layer name, an index or a Keras layer. Received: {type(spec).__name__}"
    )


@contextlib.contextmanager
def _patched(layer: Any, name: str, value: Any) -> Iterator[None]:
    """Sets ``layer.<name> = value`` on the instance for the duration of the block."""
    had_own = name in layer.__dict__
    previous = layer.__dict__.get(name)
    object.__setattr__(layer, name, value)
    try:
        yield
    finally:
        if had_own:
            object.__setattr__(layer, name, previous)
        else:
            object.__delattr__(layer, name)


@contextlib.contextmanager
def _recording(layer: Any, store: Dict[str, Any], key: str, which: str) -> Iterator[None]:
    """Records ``layer``'s first positional input (``which="input"``) or its output."""
    call = layer.call

    def recorder(*args: Any, **kwargs: Any) -> Any:
        result = call(*args, **kwargs)
        if which == "input":
            store[key] = args[0] if args else next(iter(kwargs.values()))
        else:
            store[key] = result
        return result

    with _patched(layer, "call", recorder):
        yield


class ModelView:
    """One forward pass of a Keras model that yields ``(representation, scores_source)``.

    Args:
        model: A Keras model (Sequential, functional or subclassed) or any Keras layer.
        representation_layer: ``None`` (the input of the model's last layer), a layer name, an
            index into ``model.layers``, a Keras layer of the model, or ``"output"``.
        need_representation: Set to ``False`` when only scores are needed (straight-line and
            Guided IG), so that no layer has to be resolved.

    Raises:
        TypeError: If ``model`` is not a Keras model or layer, or ``representation_layer`` has an
            unsupported type.
        ValueError: If the named or indexed layer does not exist.
    """

    def __init__(self, model: Any, representation_layer: LayerSpec = None, *, input_layer: LayerSpec = None,
                 output: Union[None, str, int] = None, need_representation: bool = True):
        if not isinstance(model, keras.layers.Layer):
            raise TypeError(
                f"`model` must be a Keras model or layer (keras.Model, keras.Sequential or a subclass). "
                f"Received: {type(model).__name__}"
            )
        backend = keras.backend.backend()
        if backend != "tensorflow":
            raise ValueError(
                "tf_ig2 computes gradients with TensorFlow and needs Keras' TensorFlow backend. "
                f"Received: keras.backend.backend()={backend!r}; set KERAS_BACKEND=tensorflow before importing keras"
            )
        try:
            model_inputs = tf.nest.flatten(model.inputs or [])
        except (AttributeError, ValueError):
            model_inputs = []
        if len(model_inputs) > 1:
            raise ValueError(
                f"`model` must take a single input tensor; this one takes {len(model_inputs)} "
                f"({', '.join(str(tuple(tensor.shape)) for tensor in model_inputs)}). Explain one input by "
                "wrapping the model in a keras.Model that takes it and holds the others fixed."
            )
        self.model = model
        self.input_layer = None if input_layer is None else find_layer(model, input_layer, "input_layer")
        self.output = self._check_output(output)
        last = _output_layer(model, self.output)
        self._softmax_activation_layer = None
        self._softmax_layer = None
        if last is not None and _activation_name(last) == "softmax" and not _is_softmax_layer(last):
            self._softmax_activation_layer = last
        elif last is not None and _is_softmax_layer(last):
            self._softmax_layer = last
        self.scores_are_logits = self._softmax_activation_layer is not None or self._softmax_layer is not None
        self._checked_probabilities = False
        self.representation_layer = None
        self.representation_mode = None
        self.representation_description = None
        if need_representation:
            self._resolve_representation(representation_layer, last)

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

    def embed(self, model_inputs: Any) -> tf.Tensor:
        """``input_layer``'s output for raw model inputs (e.g. token ids ``(N, T)`` -> ``(N, T, D)``)."""
        return tf.cast(self.input_layer(model_inputs), tf.float32)

    @property
    def input_shape(self) -> Optional[Tuple[Optional[int], ...]]:
        """The model's expected input shape ``(None, *S)`` when it has a single known input, else None."""
        try:
            inputs = self.model.inputs or []
        except (AttributeError, ValueError):
            return None
        inputs = tf.nest.flatten(inputs)
        if len(inputs) != 1 or not hasattr(inputs[0], "shape"):
            return None
        return (None,) + tuple(None if d is None else int(d) for d in inputs[0].shape[1:])

    # -- representation ------------------------------------------------------------------------
    def _resolve_representation(self, spec: LayerSpec, last: Optional[Any]) -> None:
        model = self.model
        if isinstance(spec, str) and spec == defaults.OUTPUT_REPRESENTATION:
            self.representation_mode = "model_output"
            self.representation_description = "model output" + (" (logits)" if self.scores_are_logits else "")
            return
        if spec is None:
            layer = self._softmax_layer or last
            if layer is None:
                several = len(tf.nest.flatten(getattr(model, "_outputs", None) or [])) > 1
                reason = ("this model has several outputs: pass `output` to pick one" if several else
                          f"this model ({type(model).__name__}) has no layers to inspect")
                raise ValueError(
                    f"`representation_layer=None` means the input of the layer producing the explained output, but "
                    f"{reason}, or pass a `representation_layer` (a layer name or 'output')."
                )
            if layer is self._softmax_layer:
                # The input of a final softmax layer is the logits; go one layer further back.
                layers = [item for item in all_layers(model) if item is not layer]
                layer = layers[-1] if layers else layer
                if layer is self._softmax_layer or _is_softmax_layer(layer):
                    raise ValueError("Could not find a layer before the final softmax; pass `representation_layer`.")
            self.representation_layer, self.representation_mode = layer, "input"
            self.representation_description = f"input of layer '{layer.name}'"
            return
        if not isinstance(spec, (str, int, np.integer, keras.layers.Layer)) or isinstance(spec, bool):
            raise TypeError(
                "`representation_layer` must be None, 'output', a layer name, an index or a Keras layer. "
                f"Received: {spec!r}"
            )
        layer = find_layer(model, spec, "representation_layer")
        self.representation_layer, self.representation_mode = layer, "output"
        self.representation_description = f"output of layer '{layer.name}'"

    # -- forward -------------------------------------------------------------------------------
    def __call__(self, inputs: Optional[tf.Tensor], *, model_inputs: Any = None,
                 representation: bool = True) -> Tuple[Optional[tf.Tensor], Any]:
        """Runs the model once in inference mode.

        Args:
            inputs: ``(P, *S)`` float32 tensor: the points to score. With an ``input_layer``,
                these are that layer's outputs, substituted for what it would compute from
                ``model_inputs``; ``None`` runs the model on ``model_inputs`` unchanged.
            model_inputs: The raw model inputs (e.g. ``(P, T)`` token ids), with an ``input_layer``.
            representation: Whether to record the representation.

        Returns:
            ``(representation, outputs)``: the ``(P, ...)`` representation (or ``None``), and the
            model outputs with a final softmax removed where the model allows it.
        """
        store: Dict[str, Any] = {}
        with contextlib.ExitStack() as stack:
            if representation and self.representation_layer is not None:
                stack.enter_context(
                    _recording(self.representation_layer, store, "representation", self.representation_mode)
                )
            if self._softmax_activation_layer is not None:
                stack.enter_context(_patched(self._softmax_activation_layer, "activation", keras.activations.linear))
            if self._softmax_layer is not None:
                stack.enter_context(_recording(self._softmax_layer, store, "logits", "input"))
            if self.input_layer is None:
                outputs = self.model(inputs, training=False)
            else:
                if inputs is not None:
                    dtype = self.input_layer.compute_dtype
                    points = tf.cast(inputs, dtype)
                    stack.enter_context(_patched(self.input_layer, "call", lambda *args, **kwargs: points))
                outputs = self.model(model_inputs, training=False)
        if self._softmax_layer is not None:
            if "logits" not in store:
                raise ValueError(f"The final softmax layer '{self._softmax_layer.name}' was not called by the model.")
            outputs = store["logits"]
        outputs = self._select_output(outputs)
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

    def warn_if_probabilities(self, outputs: Any) -> None:
        """Warns once when the scores look like softmax probabilities that could not be removed."""
        if self.scores_are_logits or self._checked_probabilities or not tf.is_tensor(outputs):
            return
        self._checked_probabilities = True
        values = np.asarray(outputs)
        if values.ndim == 2 and values.shape[1] > 1 and np.all(values >= 0):
            if np.allclose(values.sum(axis=1), 1.0, atol=1e-3):
                warnings.warn(
                    "The model's outputs look like softmax probabilities, but no final softmax could be "
                    "removed (e.g. it is applied inside a subclassed model's call). Attributions explain the "
                    "probabilities, not the logits; end the model in a Dense layer with "
                    "activation='softmax' or a Softmax layer to explain logits.",
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
