"""Loading models saved to disk: ``.keras`` files, legacy ``.h5`` files and SavedModel folders.

:func:`load_model` turns any of the three into a Keras object the explainers accept: a Keras 3
model, a tf_keras (Keras 2) model when only tf_keras reads the file, or a SavedModel signature
wrapped in :class:`SavedModelFunction` (a SavedModel keeps functions, not layers). A class the file
names but this process has not registered raises :class:`MissingClassError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from typing import Any, List, Optional, Tuple, Union

import keras
import tensorflow as tf

from tf_ig2 import defaults, validation
from tf_ig2.engine.model_view import keras_module
from tf_ig2.validation import one_line

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: The formats :func:`load_model` reads, as :func:`model_format` names them.
FORMATS = ("keras", "keras_folder", "h5", "saved_model")

_KERAS_SUFFIXES = (".keras",)
_H5_SUFFIXES = (".h5", ".hdf5")
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


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
            # A function or class defined in the script that saved the model is recorded as coming
            # from "__main__" or "builtins": no module to import.
            return located.group(1), (name if name and name not in ("__main__", "builtins") else None)
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
        ValueError: If nothing exists at ``path``, a folder is no SavedModel, the file's
            extension is none of the above, or a ``.keras`` file is no zip archive (truncated).
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
        validation.keras_archive("path", path)
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
            origin = f" (saved from module {module!r})" if module else " (defined in the script that saved it)"
            raise MissingClassError(
                f"Could not load the Keras model at {path!r}: Keras cannot locate the class {class_name!r} it "
                f"uses{origin}. Import the module that defines it, decorated with "
                "@keras.saving.register_keras_serializable(), before loading the model (for a function of a "
                "Lambda layer too: move it from the script into a module).",
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
