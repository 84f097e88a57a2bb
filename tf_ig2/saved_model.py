"""Explaining models saved to disk: ``.keras`` files, legacy ``.h5`` files and SavedModel folders.

:func:`load_model` turns any of the three into a Keras object the explainers accept (a Keras 3
model, a tf_keras model when only tf_keras reads the file, or a SavedModel signature), and
:func:`explain_saved_model` explains inputs with a registered method (:mod:`tf_ig2.methods`), by
default IG² (Zhuo & Ge, TPAMI 2024, Eqs. 7-10), after checking that they fit the model's expected
input shape, before any gradient is computed.

A SavedModel keeps functions, not layers: it is served through one of its signatures (by default
``serving_default``), wrapped in :class:`SavedModelFunction`. With no layer to pick a
representation from, GradPath then moves in the space of the model output (the explained
scores), ``representation_layer="output"``, unless the signature returns a named features output
and the caller asks for it by name; :attr:`Explanation.representation` says which one was used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from . import defaults, methods, validation
from .cli_files import one_line
from .explanation import Explanation
from .model_view import Targets, keras_module

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: The formats :func:`load_model` reads, as :func:`model_format` names them.
FORMATS = ("keras", "keras_folder", "h5", "saved_model")

_KERAS_SUFFIXES = (".keras",)
_H5_SUFFIXES = (".h5", ".hdf5")
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")

Progress = Callable[[int, int], None]


#: Keras' messages for a class or function a Keras file names but this process has not registered:
#: "Could not locate class 'Name'. ... Full object config: {'module': 'package.module', ..." (``.keras``)
#: and "Unknown layer: 'package>Name'. ..." (legacy ``.h5``).
_LOCATE_PATTERN = re.compile(r"Could not locate (?:class|function) '([^']+)'")
_MODULE_PATTERN = re.compile(r"'module': '([^']+)'")
_UNKNOWN_PATTERN = re.compile(r"Unknown [a-z ]+: '([^']+)'\. Please ensure")


class MissingClassError(ValueError):
    """A Keras file uses a class (or function) that is not registered in this Python process.

    Raised by :func:`load_model`: the module defining the class (a custom layer, say, decorated
    with ``@keras.saving.register_keras_serializable()``) must be imported before loading.

    Attributes:
        path: The model file.
        class_name: The class Keras could not locate, e.g. ``"Doubler"``.
        module: The module the file says it was saved from, e.g. ``"my_layers"``, or ``None``
            when the file does not say or names ``__main__`` (a class defined in a script).
    """

    def __init__(self, message: str, *, path: str, class_name: str, module: Optional[str]):
        super().__init__(message)
        self.path = path
        self.class_name = class_name
        self.module = module


def _missing_class(error: BaseException) -> Optional[Tuple[str, Optional[str]]]:
    """The class Keras could not locate, when ``error`` (or an error it chains) says so.

    Returns:
        ``(class name, module it was saved from or None)``, or ``None`` for other errors.
    """
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        located = _LOCATE_PATTERN.search(text)
        if located:
            module = _MODULE_PATTERN.search(text, located.end())
            name = module.group(1) if module else None
            return located.group(1), (name if name and name != "__main__" else None)
        unknown = _UNKNOWN_PATTERN.search(text)
        if unknown:
            return unknown.group(1).split(">")[-1], None
        current = current.__cause__ or current.__context__
    return None


# -- formats -----------------------------------------------------------------------------------
def _path_argument(path: Any) -> str:
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a path (str or os.PathLike). Received: path={path!r}")
    return os.fspath(path)


def model_format(path: PathLike) -> str:
    """Names the format of the model at ``path``, without loading it.

    Args:
        path: A ``.keras`` file, a ``.h5``/``.hdf5`` file, a SavedModel folder (holding
            ``saved_model.pb``), a folder holding an unzipped ``.keras`` model (``config.json``),
            or a SavedModel's ``saved_model.pb`` file.

    Returns:
        One of :data:`FORMATS`: ``"keras"``, ``"keras_folder"``, ``"h5"`` or ``"saved_model"``.

    Raises:
        TypeError: If ``path`` is not a path.
        ValueError: If nothing exists at ``path``, a folder is no SavedModel, or the file's
            extension is none of the above.
    """
    path = _path_argument(path)
    if not os.path.exists(path):
        raise ValueError(f"No model found: `path` does not exist. Received: path={path!r}")
    if os.path.isdir(path):
        if any(os.path.isfile(os.path.join(path, name)) for name in _SAVED_MODEL_FILES):
            return "saved_model"
        if os.path.isfile(os.path.join(path, "config.json")):
            return "keras_folder"
        raise ValueError(
            f"`path` is a folder but not a SavedModel: it holds no saved_model.pb (nor a Keras config.json). "
            f"Received: path={path!r}"
        )
    name = os.path.basename(path).lower()
    if name in _SAVED_MODEL_FILES:
        return "saved_model"
    if name.endswith(_KERAS_SUFFIXES):
        return "keras"
    if name.endswith(_H5_SUFFIXES):
        return "h5"
    raise ValueError(
        "Unknown model format: expected a .keras file, a .h5/.hdf5 file or a SavedModel folder. "
        f"Received: path={path!r}"
    )


# -- SavedModel as a Keras layer -----------------------------------------------------------------
class _Loaded:
    """Holds the restored SavedModel out of Keras' and TensorFlow's attribute tracking.

    The signature's captured variables live as long as the restored object, so both are kept.
    """

    def __init__(self, root: Any, function: Any):
        self.root = root
        self.function = function


class SavedModelFunction(keras.layers.Layer):
    """One serving signature of a SavedModel, callable like a Keras model.

    Calling it on ``(N, *S)`` inputs returns the signature's :attr:`output_name` output (the
    explained scores). Every output of the signature also passes through an identity layer
    named after it (listed in :attr:`layers`), so that ``representation_layer="<output name>"``
    selects that output as the IG² representation. Built by :func:`load_model`; not meant to be
    saved again.

    Attributes:
        saved_model_path: The SavedModel folder.
        signature_name: The signature served.
        input_name: The signature's single input.
        input_shape_expected: The input's shape, batch axis first, ``None`` for any size.
        signature_input_dtype: The input's dtype (floating point).
        output_name: The output a call returns; ``None`` until chosen when the signature has
            several outputs (see :meth:`with_output`).
        output_names: Every output of the signature.
    """

    def __init__(self, root: Any, function: Any, *, path: str, signature_name: str, input_name: str,
                 input_shape: Tuple[Optional[int], ...], input_dtype: tf.DType, output_name: Optional[str],
                 output_names: List[str]):
        super().__init__(name="saved_model", trainable=False)
        self._loaded = _Loaded(root, function)
        self.saved_model_path = path
        self.signature_name = signature_name
        self.input_name = input_name
        self.input_shape_expected = tuple(input_shape)
        self.signature_input_dtype = input_dtype
        self.output_names = list(output_names)
        if output_name is not None and output_name not in self.output_names:
            raise ValueError(
                f"`output_name` names no output of the signature {signature_name!r}. Received: "
                f"output_name={output_name!r}. Available outputs: {', '.join(map(repr, self.output_names))}"
            )
        self.output_name = output_name
        self._output_layers = [keras.layers.Identity(name=name) for name in self.output_names if "/" not in name]

    @property
    def layers(self) -> List[keras.layers.Layer]:
        """One identity layer per signature output, named after it (Keras names hold no '/')."""
        return list(self._output_layers)

    @property
    def signature_variables(self) -> List[tf.Variable]:
        """The variables the served signature reads (a SavedModel's weights, which Keras does not track)."""
        return list(getattr(self._loaded.function, "variables", None) or [])

    def with_output(self, output_name: str) -> "SavedModelFunction":
        """The same signature returning ``output_name`` when called (a new object).

        Raises:
            ValueError: If the signature has no such output.
        """
        return SavedModelFunction(
            self._loaded.root, self._loaded.function, path=self.saved_model_path, signature_name=self.signature_name,
            input_name=self.input_name, input_shape=self.input_shape_expected, input_dtype=self.signature_input_dtype,
            output_name=output_name, output_names=self.output_names)

    def call(self, inputs: Any, training: Optional[bool] = None) -> tf.Tensor:
        """``(N, *S)`` inputs to the signature's :attr:`output_name` output."""
        if self.output_name is None:
            raise ValueError(
                f"The signature {self.signature_name!r} has several outputs; choose the one holding the explained "
                f"scores with `output_name`. Available outputs: {', '.join(map(repr, self.output_names))}"
            )
        outputs = self._loaded.function(**{self.input_name: tf.cast(inputs, self.signature_input_dtype)})
        for layer in self._output_layers:
            layer(outputs[layer.name])
        return outputs[self.output_name]

    def describe(self, output: Optional[str] = None) -> str:
        """A description of a signature output, for :attr:`Explanation.representation`."""
        return (f"SavedModel signature '{self.signature_name}' output "
                f"'{output if output is not None else self.output_name}'")


def _load_saved_model(path: str, signature: Optional[str], output_name: Optional[str]) -> SavedModelFunction:
    folder = path if os.path.isdir(path) else (os.path.dirname(path) or ".")
    try:
        root = tf.saved_model.load(folder)
    except Exception as error:  # noqa: BLE001 - any failure to read means an unusable SavedModel
        raise ValueError(f"Could not load the SavedModel at {folder!r}: {one_line(error)}") from error
    signatures = dict(getattr(root, "signatures", None) or {})
    if not signatures:
        raise ValueError(f"The SavedModel at {folder!r} has no serving signature to call.")
    if signature is None:
        if defaults.SAVED_MODEL_SIGNATURE in signatures:
            signature = defaults.SAVED_MODEL_SIGNATURE
        elif len(signatures) == 1:
            signature = next(iter(signatures))
        else:
            raise ValueError(
                f"The SavedModel at {folder!r} has several signatures and none is named "
                f"{defaults.SAVED_MODEL_SIGNATURE!r}; pass `signature`. Received: signatures {sorted(signatures)}"
            )
    if signature not in signatures:
        raise ValueError(
            f"`signature` names no signature of the SavedModel. Received: signature={signature!r}. "
            f"Available signatures: {', '.join(map(repr, sorted(signatures)))}"
        )
    function = signatures[signature]
    _, keyword_inputs = function.structured_input_signature
    if len(keyword_inputs) != 1:
        raise ValueError(
            f"Only signatures with a single input are supported. Received: signature {signature!r} with inputs "
            f"{sorted(keyword_inputs)}"
        )
    input_name, spec = next(iter(keyword_inputs.items()))
    if not spec.dtype.is_floating:
        raise ValueError(
            f"IG² needs gradients with respect to the inputs, so the signature's input must be floating "
            f"point. Received: input {input_name!r} of dtype {spec.dtype.name}"
        )
    if spec.shape.rank is None or spec.shape.rank < 1:
        raise ValueError(f"The signature's input must be batch-first. Received: input {input_name!r} of shape "
                         f"{spec.shape}")
    outputs = function.structured_outputs
    if not isinstance(outputs, dict) or not outputs:
        raise ValueError(f"The signature {signature!r} returns no named outputs. Received: {outputs!r}")
    names = list(outputs)
    if output_name is None and len(names) == 1:
        output_name = names[0]
    return SavedModelFunction(
        root, function, path=folder, signature_name=signature, input_name=input_name,
        input_shape=tuple(spec.shape.as_list()), input_dtype=spec.dtype, output_name=output_name,
        output_names=names,
    )


# -- public API ----------------------------------------------------------------------------------
def _load_with_tf_keras(path: str, safe_mode: bool) -> Tuple[Any, Optional[BaseException]]:
    """``(model, None)`` as tf_keras (Keras 2) loads the file, else ``(None, its error or None)``.

    ``(None, None)`` when tf_keras is missing, or safe mode is asked for and its scope (which,
    unlike ``load_model(safe_mode=...)``, covers legacy ``.h5`` files too) cannot be found.
    """
    try:
        import tf_keras
    except ImportError:
        return None, None
    try:
        from tf_keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:
        if safe_mode:
            return None, None
        SafeModeScope = None  # noqa: N806 - the class, when tf_keras has it
    try:
        with SafeModeScope(safe_mode) if SafeModeScope is not None else contextlib.nullcontext():
            return tf_keras.models.load_model(path, compile=False, safe_mode=safe_mode), None
    except Exception as error:  # noqa: BLE001 - the caller reports Keras 3's error, or this one
        return None, error


def load_model(path: PathLike, *, safe_mode: bool = True, signature: Optional[str] = None,
               output_name: Optional[str] = None) -> Any:
    """Loads a saved model as a Keras object that the explainers (:class:`~tf_ig2.IG2`, ...) explain.

    Args:
        path: A ``.keras`` file (or an unzipped ``.keras`` folder), a legacy ``.h5``/``.hdf5``
            file, or a SavedModel folder (e.g. written by ``model.export(path)``).
        safe_mode: Keras' safe mode for ``.keras`` and ``.h5`` files, on by default. Turning it
            off lets the file's ``Lambda`` layers deserialize Python code, which can then run
            arbitrary code on this machine: only do so for files you trust.
        signature: The SavedModel signature to serve; ``None`` for ``serving_default`` (or the
            only one). Ignored for Keras files.
        output_name: The SavedModel signature output holding the explained ``(N, C)`` scores.
            ``None``: the only output; with several outputs the choice is left to
            :func:`explain_model` (the one output not asked for as representation) or to
            :meth:`SavedModelFunction.with_output`. Ignored for Keras files.

    Keras files are read by Keras 3; when Keras 3 cannot read one and ``tf_keras`` (Keras 2) is
    installed, by ``tf_keras.models.load_model(path, compile=False)`` (under the same safe mode),
    e.g. for layers Keras 3 no longer has. The explainers accept either kind of model.

    Returns:
        The ``keras.Model`` (or ``tf_keras`` model) stored in a Keras file, uncompiled, or a
        :class:`SavedModelFunction` serving the SavedModel's signature.

    Raises:
        TypeError: If an argument has the wrong type.
        MissingClassError: A ``ValueError``: if a Keras file uses a class (e.g. a custom layer)
            that no imported module has registered; it names the class.
        ValueError: If the model is missing, unreadable or of an unknown format, a folder is no
            SavedModel, or the signature has several inputs, a non-float input or an unknown
            output.
    """
    path = _path_argument(path)
    if not isinstance(safe_mode, bool):
        raise TypeError(f"`safe_mode` must be a bool. Received: safe_mode={safe_mode!r}")
    for name, value in (("signature", signature), ("output_name", output_name)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"`{name}` must be None or a string. Received: {name}={value!r}")
    kind = model_format(path)
    if kind == "saved_model":
        return _load_saved_model(path, signature, output_name)
    if not os.access(path, os.R_OK):
        raise ValueError(f"Could not read the model file: permission denied. Received: path={path!r}")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as error:  # noqa: BLE001 - a file Keras cannot read is reported as such
        model, fallback_error = _load_with_tf_keras(path, safe_mode)
        if model is not None:
            logger.info("Keras 3 could not read %s (%s); loaded it with tf_keras", path, one_line(error))
            return _keras_model(model, path)
        if fallback_error is not None and "safe_mode" in str(fallback_error):
            raise ValueError(f"Could not load the Keras model at {path!r} (read with tf_keras, since Keras 3 "
                             f"cannot read it): {one_line(fallback_error)}") from fallback_error
        missing = _missing_class(error)
        if missing is not None:
            class_name, module = missing
            origin = f" (saved from module {module!r})" if module else ""
            raise MissingClassError(
                f"Could not load the Keras model at {path!r}: Keras cannot locate the class {class_name!r} it "
                f"uses{origin}. Import the module that defines it, decorated with "
                "@keras.saving.register_keras_serializable(), before loading the model.",
                path=path, class_name=class_name, module=module) from error
        raise ValueError(f"Could not load the Keras model at {path!r}: {one_line(error)}") from error
    return _keras_model(model, path)


def _keras_model(model: Any, path: str) -> Any:
    """``model``, checked to be a Keras 3 or tf_keras layer or model."""
    try:
        keras_module(model)
    except TypeError:
        raise ValueError(f"The file at {path!r} holds no Keras model. Received: {type(model).__name__}") from None
    return model


def expected_input_shape(model: Any) -> Optional[Tuple[Optional[int], ...]]:
    """The batch-first input shape a model declares (``None`` entries: any size), if known.

    Args:
        model: A Keras model or a :class:`SavedModelFunction`.

    Returns:
        A tuple such as ``(None, 8, 8, 1)``, or ``None`` when the model declares no input
        (e.g. a subclassed model).

    Raises:
        ValueError: If the model has several inputs (not supported).
    """
    if isinstance(model, SavedModelFunction):
        return model.input_shape_expected
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    if len(inputs) != 1:
        raise ValueError(f"Only models with a single input are supported. Received: a model with {len(inputs)} "
                         f"inputs {[tuple(tensor.shape) for tensor in inputs]}")
    return tuple(None if side is None else int(side) for side in inputs[0].shape)


def _merge(parts: List[Explanation]) -> Explanation:
    if len(parts) == 1:
        return parts[0]
    merged: Dict[str, Any] = {}
    for field in dataclasses.fields(Explanation):
        values = [getattr(part, field.name) for part in parts]
        if isinstance(values[0], np.ndarray):
            merged[field.name] = np.concatenate(values, axis=0)
        else:
            merged[field.name] = values[0]
    return Explanation(**merged)


def _saved_model_setup(model: SavedModelFunction, options: Dict[str, Any],
                       representation: bool) -> Tuple[SavedModelFunction, Dict[str, Any]]:
    """Defaults a SavedModel's representation to its output; picks the scores output if unset.

    With several signature outputs and no ``output_name``, the scores are the one output left
    once the representation output (for a method with a ``representation``) is taken out.
    """
    chosen = options.get("representation_layer")
    if representation and chosen is None:
        chosen = defaults.OUTPUT_REPRESENTATION
        options = dict(options, representation_layer=chosen)
    if isinstance(chosen, str) and chosen != defaults.OUTPUT_REPRESENTATION and chosen not in model.output_names:
        raise ValueError(
            f"`representation_layer` names no output of the SavedModel signature {model.signature_name!r} (a "
            f"SavedModel has no layers). Received: {chosen!r}. Available: 'output' (the model output), "
            f"{', '.join(map(repr, model.output_names))}"
        )
    if model.output_name is None:
        others = [name for name in model.output_names if name != chosen]
        if chosen not in model.output_names or len(others) != 1:
            raise ValueError(
                f"The signature {model.signature_name!r} has several outputs; pass `output_name` to say which one "
                f"holds the explained scores. Available outputs: {', '.join(map(repr, model.output_names))}"
            )
        model = model.with_output(others[0])
    return model, options


def build_explainer(model: Any, options: Dict[str, Any], method: str = "ig2") -> Tuple[Any, Optional[str]]:
    """The explainer of ``method`` for a loaded model, set up as :func:`explain_model` sets it up.

    The explainer comes from the method registry (:func:`tf_ig2.methods.get`). A
    :class:`SavedModelFunction` serves its scores output and must accept free batch sizes; for
    IG² it defaults to ``representation_layer="output"`` (or the named signature output).

    Args:
        model: A Keras (or tf_keras) model or a :class:`SavedModelFunction`.
        options: The method's settings (:attr:`tf_ig2.methods.Method.settings`).
        method: ``"ig2"``, ``"ig"`` or ``"guided_ig"``.

    Returns:
        ``(explainer, description of the representation GradPath moves in)``; the description
        is ``None`` for methods without a representation.

    Raises:
        TypeError, ValueError: On an unknown method, unknown or malformed options, or a
            SavedModel signature with a fixed batch size.
    """
    entry = methods.get(method)
    representation = "representation" in entry.extra_outputs
    if not isinstance(model, SavedModelFunction):
        explainer = entry.build(model, **options)
        return explainer, (explainer.representation if representation else None)
    model, options = _saved_model_setup(model, options, representation)
    fixed = model.input_shape_expected[0]
    if fixed is not None and not (fixed == 1 and options.get("batch_size") == 1):
        advice = ", or pass batch_size=1." if fixed == 1 else "."
        raise ValueError(
            f"The SavedModel's signature only accepts batches of exactly {fixed} rows, while {method} evaluates it "
            f"on batches of (input, reference) pairs; export it with a free batch size (None){advice} "
            f"Received: batch_size={options.get('batch_size')}"
        )
    explainer = entry.build(model, **options)
    if not representation:
        return explainer, None
    layer = explainer.view.representation_layer
    return explainer, ("model output: " + model.describe() if layer is None else model.describe(layer.name))


def explain_model(model: Any, inputs: Any, references: Any, targets: Targets = None, *, method: str = "ig2",
                  return_path: bool = False, progress: Optional[Progress] = None, **options: Any) -> Explanation:
    """Explains ``inputs`` of a loaded model with ``method``, checking shapes first.

    Gives exactly what ``methods.get(method).build(model, **options).explain(inputs, references,
    targets)`` gives (``tf_ig2.IG2(model, **options).explain(...)`` for IG²), with three
    differences: the inputs are checked against the model's declared input shape before any
    work; a :class:`SavedModelFunction` defaults to ``representation_layer="output"`` for IG²;
    and when ``batch_size`` is set the inputs are explained a few at a time (each group a whole
    number of pair batches, so the numbers are the same) with ``progress(done, total)`` called
    after each group.

    Args:
        model: A Keras model or a :class:`SavedModelFunction` (see :func:`load_model`).
        inputs: ``(N, *S)`` floats.
        references: ``(R, *S)`` shared by all inputs, or ``(N, R, *S)`` per input; for methods
            taking baselines (``ig``, ``guided_ig``) also a scalar or an ``S``-shaped array.
        targets: ``None`` (predicted class), an int, ``(N,)`` ints or a callable.
        method: The registered method (:data:`tf_ig2.methods.METHODS`): ``"ig2"`` (default),
            ``"ig"`` or ``"guided_ig"``.
        return_path: Also return the ``(N, R, steps + 1, *S)`` path (IG² only).
        progress: Called as ``progress(done, total)`` with counts of explained inputs.
        **options: The method's settings, e.g. for IG² ``representation_layer``, ``steps``,
            ``step_size``, ``value_range``, ``batch_size``, ``integration``,
            ``segment_points``, and those for token inputs (``input_layer``, ``padding_id``)
            and multi-output Keras models (``output``); for IG ``steps``, ``rule``; for Guided
            IG ``steps``, ``fraction``, ``max_dist``.

    Returns:
        An :class:`~tf_ig2.Explanation`: attributions ``(N, *S)``, counterfactuals (GradCF for
        IG², the baselines otherwise) ``(N, R, *S)``, scores and deltas ``(N,)``, and for IG²
        representation distances ``(N, R, 2)``.

    Raises:
        TypeError, ValueError: On an unknown method or options, inputs that do not fit the
            model, an unknown representation layer (the message lists the available ones) or
            malformed arguments.
    """
    entry = methods.get(method)
    entry.check_options(options)
    if progress is not None and not callable(progress):
        raise TypeError(f"`progress` must be None or a callable (done, total). Received: progress={progress!r}")
    if return_path and "path" not in entry.extra_outputs:
        raise TypeError(f"`return_path` is for methods that return their path (ig2). Received: return_path=True "
                        f"with method={method!r}")
    embedded = options.get("input_layer") is not None
    if embedded:  # raw model inputs such as token ids; the path moves in the input layer's output space
        inputs = validation.model_input_array("inputs", inputs)
    else:
        inputs = validation.float_array("inputs", inputs)
    validation.fits_model_input("inputs", inputs.shape, expected_input_shape(model))
    explainer, description = build_explainer(model, options, method)
    references = validation.references_array("references", references, inputs.shape, integer=embedded,
                                             allow_scalar=entry.scalar_reference and not embedded)
    if not embedded and "value_range" in entry.settings.names():
        validation.fits_value_range("inputs", inputs, explainer.value_range, inputs.shape[1:])
        validation.fits_value_range("references", references, explainer.value_range, inputs.shape[1:])
    if not callable(targets):
        targets, _ = explainer.resolve_targets(targets, inputs)
    count, per_input = len(inputs), references.shape[1]
    group = count
    if explainer.batch_size is not None:
        pairs = per_input * explainer.batch_size // math.gcd(per_input, explainer.batch_size)
        group = max(1, pairs // per_input)
    extra = {"return_path": return_path} if "path" in entry.extra_outputs else {}
    parts = []
    for start in range(0, count, group):
        stop = min(start + group, count)
        chunk_references = references[start:stop] if references.shape[0] == count else references[0]
        chunk_targets = targets if callable(targets) else targets[start:stop]
        parts.append(explainer.explain(inputs[start:stop], chunk_references, chunk_targets, **extra))
        logger.info("Explained %d of %d inputs", stop, count)
        if progress is not None:
            progress(stop, count)
    return dataclasses.replace(_merge(parts), representation=description)


def explain_saved_model(path: PathLike, inputs: Any, references: Any, targets: Targets = None, *,
                        method: str = "ig2", safe_mode: bool = True, signature: Optional[str] = None,
                        output_name: Optional[str] = None, return_path: bool = False,
                        progress: Optional[Progress] = None, **options: Any) -> Explanation:
    """Loads a saved model and explains ``inputs`` against ``references``, with IG² by default.

    Args:
        path: A ``.keras`` file, a legacy ``.h5`` file or a SavedModel folder.
        inputs: ``(N, *S)`` floats that fit the model's input.
        references: ``(R, *S)`` shared by all inputs, or ``(N, R, *S)`` per input; for ``ig``
            and ``guided_ig`` (baselines) also a scalar or an ``S``-shaped array.
        targets: ``None`` (the predicted class), an int, ``(N,)`` ints or a callable mapping the
            model output to ``(N,)`` scores.
        method: The registered method (:data:`tf_ig2.methods.METHODS`): ``"ig2"`` (default),
            ``"ig"`` or ``"guided_ig"``.
        safe_mode: Keras' safe mode when loading a Keras file (see :func:`load_model`; turning
            it off lets ``Lambda`` layers run arbitrary code).
        signature: SavedModel signature (default ``serving_default``).
        output_name: SavedModel output holding the scores, when the signature has several.
        return_path: Also return the ``(N, R, steps + 1, *S)`` path (IG² only).
        progress: Called as ``progress(done, total)`` after each group of inputs.
        **options: The method's settings, as for :func:`explain_model`; for a SavedModel,
            IG²'s ``representation_layer=None`` means ``"output"`` (the model output), and the
            name of another signature output selects that output.

    Returns:
        An :class:`~tf_ig2.Explanation`; for IG² its ``representation`` names the space GradPath
        searched in.

    Raises:
        TypeError, ValueError: On a missing, unreadable or unknown model, a folder that is no
            SavedModel, an unknown method, inputs that do not fit the model's input shape, an
            unknown representation layer, or malformed options.

    Example:
        >>> explanation = tf_ig2.explain_saved_model("model.keras", images, references, steps=64,
        ...                                          value_range=(0.0, 1.0))
    """
    methods.get(method).check_options(options)
    model = load_model(path, safe_mode=safe_mode, signature=signature, output_name=output_name)
    return explain_model(model, inputs, references, targets, method=method, return_path=return_path,
                         progress=progress, **options)
