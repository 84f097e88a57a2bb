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

Both come out of one forward pass, through per-thread hooks (:mod:`tf_ig2.engine.layer_hooks`): the
user's model is never changed, and other threads calling it see it as it is.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults
from tf_ig2.engine import layer_hooks
from tf_ig2.engine.model_graph import (
    ModelInputs,
    activation_name,
    all_layers,
    check_output,
    final_activation_of,
    find_layer,
    innermost,
    is_activation_layer,
    keras_module,
    linear_copy,
    output_names,
    pick,
    producer,
    resolve_input_layers,
    select_output,
    sublayers,
    symbolic_outputs,
)

LayerSpec = Union[None, str, int, Any]
Targets = Union[None, int, str, np.ndarray, Callable[[Any], Any]]

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
                    f"Received: keras.backend.backend()={backend!r}; set KERAS_BACKEND=tensorflow before importing "
                    "keras"
                )
        self.model = model
        self.inputs = ModelInputs(model)
        self.input_layers = resolve_input_layers(model, self.inputs, input_layer)
        self.output = check_output(model, output)
        last = self._output_layer()
        self.final_layer = last
        self.final_activation = None if last is None else final_activation_of(last, self.keras)
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

    # -- outputs ----------------------------------------------------------------------------------
    def _explained_symbolic_output(self) -> Any:
        structure = symbolic_outputs(self.model)
        flat = tf.nest.flatten(structure) if structure is not None else []
        if len(flat) > 1:
            return None if self.output is None else pick(structure, self.output, output_names(self.model))
        return flat[0] if flat else None

    def _output_layer(self) -> Optional[Any]:
        """The innermost layer producing the explained output, when the model's graph tells it."""
        tensor = self._explained_symbolic_output()
        layer, index = producer(tensor)
        if layer is not None and layer is not self.model:
            return innermost(layer, index)
        structure = symbolic_outputs(self.model)
        if len(tf.nest.flatten(structure) if structure is not None else []) > 1 or self.output is not None:
            return None
        layers = [layer for layer in sublayers(self.model) if type(layer).__name__ != "InputLayer"]
        return innermost(layers[-1]) if layers else None

    # -- representation ---------------------------------------------------------------------------
    def _resolve_representation(self, spec: LayerSpec, last: Optional[Any]) -> None:
        if isinstance(spec, str) and spec == defaults.OUTPUT_REPRESENTATION:
            self.representation_mode = "model_output"
            self.representation_description = "model output" + (" (logits)" if self.scores_are_logits else "")
            return
        if spec is None:
            layer = last
            if layer is None:
                several = len(tf.nest.flatten(symbolic_outputs(self.model) or [])) > 1
                reason = ("this model has several outputs: pass `output` to pick one" if several else
                          f"this model ({type(self.model).__name__}) has no layers to inspect")
                raise ValueError(
                    f"`representation_layer=None` means the input of the layer producing the explained output, but "
                    f"{reason}, or pass a `representation_layer` (a layer name or 'output')."
                )
            if is_activation_layer(layer, self.keras):
                # The input of a final softmax/sigmoid layer is the logits; go one layer further back.
                before = self._layer_before(layer)
                if before is None or is_activation_layer(before, self.keras):
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
            before, index = producer(layer.input)
        except (AttributeError, ValueError, RuntimeError):
            before, index = None, 0
        if before is not None and type(before).__name__ != "InputLayer":
            return innermost(before, index)
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
            if is_activation_layer(final, self.keras):
                hook(final).replace = lambda original, args, kwargs: args[0] if args else next(iter(kwargs.values()))
            else:
                linear = linear_copy(final, self.keras)
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
        outputs = select_output(self.model, self.output, outputs)
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
        activation = activation_name(layer) or "none"
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
    raise ValueError(f"{what} needs a model with a single output tensor. "
                     f"Received outputs of type {type(outputs).__name__}")


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
    """``(P,)`` scores ``outputs[p, targets[p]]``, or ``(P, T)`` scores ``outputs[p, targets[p, t]]``.

    Args:
        outputs: ``(P, C)`` or ``(P,)`` model outputs (or any structure, for a callable).
        targets: ``(P,)`` or ``(P, T)`` int tensor of class indices, or a callable returning
            ``(P,)`` (or ``(P, 1)``) scores, or ``(P, T)`` scores for T targets.

    Raises:
        ValueError: If a callable's ``(P, T)`` scores have no known T while tracing.
    """
    if callable(targets):
        scores = tf.convert_to_tensor(targets(outputs))
        if len(scores.shape) == 2 and scores.shape[1] != 1:
            if scores.shape[1] is None:
                raise ValueError("A callable `targets` returning (N, T) scores must give them a known T (a static "
                                 f"shape) inside a compiled function. Received: scores of shape {scores.shape}")
            return tf.cast(scores, tf.float32)
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


def score_gradients(tape: tf.GradientTape, scores: tf.Tensor, points: Any) -> Any:
    """The gradients of ``(P,)`` or ``(P, T)`` ``scores`` with respect to ``points``.

    With ``(P,)`` scores this is ``tape.gradient`` (gradients shaped like ``points``). With
    ``(P, T)`` scores, T backward passes through the one recorded forward pass (the tape must be
    persistent when ``points`` also need another gradient), each seeded with target t's one-hot
    column; every ``(P, *S)`` gradient becomes ``(P, T, *S)``.

    Args:
        tape: The tape that recorded ``scores`` from ``points``.
        scores: ``(P,)`` or ``(P, T)`` scores (T static).
        points: A ``(P, *S)`` tensor or a list of them.

    Returns:
        Like ``points``: ``(P, *S)`` per entry for ``(P,)`` scores, ``(P, T, *S)`` for ``(P, T)``.
    """
    zero = tf.UnconnectedGradients.ZERO
    if len(scores.shape) == 1:
        return tape.gradient(scores, points, unconnected_gradients=zero)
    width = int(scores.shape[1])
    rows = tf.shape(scores)[0]
    columns = [tape.gradient(scores, points, output_gradients=tf.tile(tf.one_hot([column], width), [rows, 1]),
                             unconnected_gradients=zero) for column in range(width)]
    if isinstance(points, (list, tuple)):
        return [tf.stack([gradients[index] for gradients in columns], axis=1) for index in range(len(points))]
    return tf.stack(columns, axis=1)
