"""Keras callbacks that log attribution maps and their diagnostics to TensorBoard during training.

Every ``freq`` epochs the callback explains a fixed batch of validation images with IG² (Zhuo & Ge,
TPAMI 2024, Eqs. 7-10), straight-line Integrated Gradients (Sundararajan et al., 2017) or Guided IG
(Kapishnikov et al., 2021) at the model's current weights, and writes with ``tf.summary`` at
``step=epoch``, in the run folder ``output_dir/<name>`` (``<name>`` defaults to the method):

- ``<name>/overlay``: one image per explained input, the input blended with its magnitude map;
- ``<name>/grid``: all overlays tiled into one image;
- ``<name>/completeness_delta``: mean ``|sum(A) - (f_c(x) - f_c(x'))|`` over the inputs;
- ``<name>/representation_distance``: mean distance ``||phi(GradCF) - phi(x_r)||`` left at the
  end of the GradPath (IG² only);
- ``<name>/target_score``: mean explained score ``f_c(x)``.

The arguments follow tf-explain's ``IntegratedGradientsCallback`` (``validation_data``,
``class_index``, ``output_dir``), so a tf-explain user changes one line.
"""

from __future__ import annotations

import glob
import importlib
import inspect
import logging
import math
import numbers
import os
import re
import time
import uuid
import warnings
from typing import Any, Callable, Dict, Optional, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from . import defaults, validation, visualize
from .explanation import Explanation

logger = logging.getLogger(__name__)

#: The explainers a callback can be asked for by name: ``method -> (module, class name)``.
METHODS: Dict[str, Tuple[str, str]] = {
    "ig2": ("tf_ig2.gradpath", "IG2"),
    "ig": ("tf_ig2.straight", "IntegratedGradients"),
    "guided_ig": ("tf_ig2.guided_ig", "GuidedIG"),
}

#: Checks of the explainer options every explainer class shares by name, run in the constructor.
_OPTION_CHECKS: Dict[str, Callable[[Any], Any]] = {
    "steps": lambda value: validation.positive_int("steps", value),
    "batch_size": lambda value: validation.optional_positive_int("batch_size", value),
    "step_size": validation.step_size,
    "value_range": validation.value_range,
    "fraction": lambda value: validation.fraction("fraction", value, low_open=True),
    "max_dist": lambda value: validation.fraction("max_dist", value),
}

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")

Method = Union[str, type, Callable[..., Any]]


# -- validation data and targets (shared with the tf-explain style explainer) -------------------
def split_validation_data(validation_data: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Splits ``x`` or ``(x, y)`` (tf-explain's convention) into images and labels.

    Args:
        validation_data: An ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)`` float array or
            tensor, or a tuple ``(x,)``, ``(x, None)`` or ``(x, y)`` with ``y`` ``(N,)`` integer
            labels or ``(N, C)`` one-hot (or probability) rows.

    Returns:
        ``(x, labels)``: ``x`` float32 ``(N, ...)`` and ``labels`` int64 ``(N,)`` or ``None``.

    Raises:
        TypeError, ValueError: On anything else.
    """
    if isinstance(validation_data, tuple):
        if len(validation_data) not in (1, 2):
            raise ValueError(
                "`validation_data` must be x or a tuple (x, y). "
                f"Received: a tuple of {len(validation_data)} items"
            )
        images, labels = validation_data[0], (validation_data[1] if len(validation_data) == 2 else None)
    else:
        images, labels = validation_data, None
    if images is None:
        raise TypeError("`validation_data` must hold images x. Received: x=None")
    images = validation.float_array("validation_data", images, min_rank=3)
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3))):
        raise ValueError(
            "`validation_data` must hold images (N, H, W), (N, H, W, 1) or (N, H, W, 3). "
            f"Received: shape {images.shape}"
        )
    if labels is None:
        return images, None
    label_array = validation._as_numpy("validation_data[1]", labels)
    if label_array.dtype == object or label_array.dtype == np.bool_ or not (
            np.issubdtype(label_array.dtype, np.integer) or np.issubdtype(label_array.dtype, np.floating)):
        raise TypeError("`validation_data[1]` (labels) must hold numbers. "
                        f"Received: {validation._describe(label_array)}")
    if label_array.ndim == 2 and label_array.shape[1] == 1:
        label_array = label_array[:, 0]
    if label_array.ndim == 2:
        label_array = np.argmax(label_array, axis=1)  # one-hot (or probability) rows
    elif label_array.ndim != 1 or not np.all(np.isfinite(label_array)) or np.any(np.mod(label_array, 1) != 0):
        raise ValueError(
            "`validation_data[1]` (labels) must be (N,) integer labels or (N, C) one-hot rows. "
            f"Received: {validation._describe(label_array)}"
        )
    if len(label_array) != len(images):
        raise ValueError(
            f"`validation_data` must hold as many labels as images. Received: {len(images)} images and "
            f"{len(label_array)} labels"
        )
    if np.any(label_array < 0):
        raise ValueError(f"`validation_data[1]` (labels) must be >= 0. Received: minimum {int(label_array.min())}")
    return images, label_array.astype(np.int64)


def choose_targets(class_index: Any, labels: Optional[np.ndarray], count: int) -> Optional[np.ndarray]:
    """The explained classes: ``class_index`` if given, else the labels, else ``None`` (predicted).

    Args:
        class_index: ``None``, one int >= 0, or ``count`` ints >= 0.
        labels: ``(count,)`` int64 labels, or ``None``.
        count: N, the number of images.

    Returns:
        ``(count,)`` int64 class indices, or ``None`` for the predicted class.

    Raises:
        TypeError, ValueError: If ``class_index`` is not one of the above.
    """
    if class_index is None:
        return labels
    if isinstance(class_index, bool) or callable(class_index):
        raise TypeError("`class_index` must be None, an int or one int per image. "
                        f"Received: class_index={class_index!r}")
    if isinstance(class_index, (numbers.Integral, np.integer)):
        if class_index < 0:
            raise ValueError(f"`class_index` must be >= 0. Received: class_index={class_index!r}")
        return np.full((count,), int(class_index), np.int64)
    try:
        indices = validation.targets(class_index, count, None)
    except (TypeError, ValueError) as error:
        raise type(error)(str(error).replace("`targets`", "`class_index`")) from error
    if np.any(indices < 0):
        raise ValueError(f"`class_index` must be >= 0. Received: minimum {int(indices.min())}")
    return indices


def _explain_parameters(explain: Callable[..., Any]) -> Dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(explain).parameters)
    except (TypeError, ValueError):
        return {}


def _reference_keyword(explain: Callable[..., Any]) -> Tuple[Optional[str], bool]:
    """``(keyword, required)``: whether ``explain`` takes ``references`` or ``baselines``."""
    parameters = _explain_parameters(explain)
    for keyword in ("references", "baselines"):
        if keyword in parameters:
            return keyword, parameters[keyword].default is inspect.Parameter.empty
    return None, False


def encode_images(images: np.ndarray) -> np.ndarray:
    """Encodes uint8 RGB images as the TensorBoard images plugin stores them.

    The record is a string vector ``[width, height, png_1, ..., png_k]``, as written by
    ``tf.summary.image``; encoding the PNGs with OpenCV up front, instead of with eager
    per-image TensorFlow ops, makes logging a few small images several times cheaper.

    Args:
        images: ``(k, H, W, 3)`` uint8 RGB.

    Returns:
        ``(k + 2,)`` numpy array of bytes.
    """
    import cv2

    encoded = [str(int(images.shape[2])).encode(), str(int(images.shape[1])).encode()]
    for image in images:
        written, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not written:
            raise ValueError(f"Could not encode an image of shape {image.shape} as PNG")
        encoded.append(png.tobytes())
    return np.array(encoded, dtype=object)


class AttributionCallback(keras.callbacks.Callback):
    """Logs attribution maps of a fixed batch of validation images to TensorBoard every few epochs.

    The explainer (and its compiled function) is built once, when training begins, and reused
    every epoch: it reads the model's live weights, runs it in inference mode and changes no
    weight, optimizer slot or metric. A failure while logging becomes a warning and training
    goes on.

    Args:
        method: ``"ig2"``, ``"ig"`` or ``"guided_ig"``; an explainer class taking
            ``(model, **explainer_options)``; or a factory ``factory(model, **explainer_options)``
            returning an object with an ``explain(inputs, references or baselines, targets)``
            method returning an :class:`~tf_ig2.Explanation`.
        validation_data: Images ``x`` or ``(x, y)``: ``x`` ``(N, H, W)``, ``(N, H, W, 1)`` or
            ``(N, H, W, 3)`` floats, ``y`` ``(N,)`` int labels or ``(N, C)`` one-hot rows. The
            first ``max_outputs`` images are explained.
        references: IG² references ``(R, H, W[, C])`` shared by all images or ``(N, R, H, W[, C])``
            per image (required for IG²); the baselines of IG and Guided IG (a scalar, one
            image, ``(R, ...)`` or ``(N, R, ...)``; ``None`` for the explainer's default).
        class_index: The explained class: one int or ``N`` ints. ``None``: the labels ``y`` if
            given, else the predicted class.
        output_dir: Log folder; the callback writes to the run folder ``output_dir/<name>``, so
            the log folder of ``keras.callbacks.TensorBoard`` shows both side by side.
        freq: Log at the end of every epoch whose index is a multiple of ``freq`` (0, freq, ...).
        max_outputs: The most images explained and logged per epoch.
        name: The run folder and tag prefix; defaults to the method's name (``"ig2"``, ...).
            Give two callbacks of the same method different names.
        alpha: Weight of the coloured map in the overlays, in [0, 1].
        percentile: Per-image percentile of the magnitude that saturates the colour map.
        colormap: ``"inferno"``, ``"viridis"`` or ``"jet"``.
        columns: Images per row of the grid; ``None`` for ``ceil(sqrt(n))``.
        min_display_size: Small images are enlarged (integer factor, nearest neighbour) until
            their shorter side is at least this many pixels; 1 keeps them as they are.
        **explainer_options: Settings of the explainer, e.g. IG²'s ``steps``, ``step_size``,
            ``value_range``, ``representation_layer``, ``batch_size``.

    Raises:
        TypeError, ValueError: In the constructor, on any malformed argument; when training
            begins, if the explainer cannot be built for the model (e.g. an unknown
            ``representation_layer``).

    Example:
        >>> callbacks = [
        ...     tf_ig2.callbacks.AttributionCallback("ig2", (x_val, y_val), references=refs, steps=64),
        ...     tf_ig2.callbacks.AttributionCallback("ig", (x_val, y_val), references=0.0, steps=32),
        ...     keras.callbacks.TensorBoard("logs"),
        ... ]
    """

    def __init__(self, method: Method, validation_data: Any, references: Any = None, class_index: Any = None,
                 output_dir: Union[str, "os.PathLike[str]"] = defaults.CALLBACK_OUTPUT_DIR, freq: int = 1,
                 max_outputs: int = defaults.CALLBACK_MAX_OUTPUTS, *, name: Optional[str] = None,
                 alpha: float = defaults.OVERLAY_ALPHA, percentile: float = defaults.HEATMAP_PERCENTILE,
                 colormap: str = defaults.HEATMAP_COLORMAP, columns: Optional[int] = None,
                 min_display_size: int = defaults.CALLBACK_MIN_DISPLAY_SIZE, **explainer_options: Any):
        super().__init__()
        self._factory, default_name, explain = self._resolve_method(method, explainer_options)
        self.name = self._check_name(name if name is not None else default_name)
        self.freq = validation.positive_int("freq", freq)
        self.max_outputs = validation.positive_int("max_outputs", max_outputs)
        if not isinstance(output_dir, (str, os.PathLike)):
            raise TypeError(f"`output_dir` must be a path (str or os.PathLike). Received: output_dir={output_dir!r}")
        self.output_dir = os.fspath(output_dir)
        self.run_dir = os.path.join(self.output_dir, self.name)
        self.alpha = validation.fraction("alpha", alpha)
        self.percentile = visualize._percentile_argument(percentile)
        visualize._colormap_argument(colormap)
        self.colormap = colormap
        self.columns = validation.optional_positive_int("columns", columns)
        self.min_display_size = validation.positive_int("min_display_size", min_display_size)

        images, labels = split_validation_data(validation_data)
        total = len(images)
        self.images = images[:self.max_outputs]
        count = len(self.images)
        targets = choose_targets(class_index, labels, total)
        self.class_index = class_index
        self.targets = None if targets is None else targets[:count]
        self._reference_keyword, required = _reference_keyword(explain) if explain is not None else (None, False)
        self.references = self._check_references(references, images.shape, required)
        bounds = validation.value_range(explainer_options.get("value_range"))
        validation.fits_value_range("validation_data", self.images, bounds, images.shape[1:])
        if self.references is not None and self.references.ndim > 0:
            validation.fits_value_range("references", self.references, bounds, images.shape[1:])
        self.explainer_options = dict(explainer_options)
        self._explainer = None
        self._writer = None
        self._events_file: Optional[str] = None
        self._summary_functions: Dict[Tuple[Tuple[str, ...], Tuple[str, ...]], Callable[..., Any]] = {}
        self._training = False

    # -- constructor helpers ---------------------------------------------------------------------
    @staticmethod
    def _resolve_method(method: Method, options: Dict[str, Any]) -> Tuple[Callable[..., Any], str, Any]:
        """Returns ``(factory, default name, explain function or None if unknown yet)``."""
        if isinstance(method, str):
            if method not in METHODS:
                raise ValueError(f"`method` must be one of {sorted(METHODS)}, an explainer class or a factory. "
                                 f"Received: method={method!r}")
            module_name, class_name = METHODS[method]
            method = getattr(importlib.import_module(module_name), class_name)
        if isinstance(method, type):
            if not callable(getattr(method, "explain", None)):
                raise TypeError(f"`method` must be an explainer class with an `explain` method. "
                                f"Received: class {method.__name__}")
            AttributionCallback._check_options(method, options)
            default_name = getattr(method, "method", "") or method.__name__.lower()
            return method, default_name, method.explain
        if callable(method):
            default_name = getattr(method, "__name__", "")
            if not _NAME_PATTERN.match(default_name or "-<>"):
                default_name = ""
            return method, default_name, None
        raise TypeError("`method` must be 'ig2', 'ig', 'guided_ig', an explainer class or a factory callable. "
                        f"Received: {type(method).__name__}")

    @staticmethod
    def _check_options(explainer_class: type, options: Dict[str, Any]) -> None:
        parameters = dict(inspect.signature(explainer_class.__init__).parameters)
        accepts_any = any(item.kind is inspect.Parameter.VAR_KEYWORD for item in parameters.values())
        known = [key for key, item in parameters.items() if key not in ("self", "model")
                 and item.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        unknown = sorted(set(options) - set(known))
        if unknown and not accepts_any:
            raise TypeError(f"Unknown option(s) {unknown} for {explainer_class.__name__}; expected some of "
                            f"{known} (or the callback's own arguments). Received: {sorted(options)}")
        for key, value in options.items():
            if key in _OPTION_CHECKS:
                _OPTION_CHECKS[key](value)
        if "rule" in options:
            from .straight import RULES
            if options["rule"] not in RULES:
                raise ValueError(f"`rule` must be one of {RULES}. Received: rule={options['rule']!r}")

    @staticmethod
    def _check_name(name: Any) -> str:
        if not isinstance(name, str) or not _NAME_PATTERN.match(name):
            raise ValueError("`name` (the run folder and tag prefix) must be a non-empty string of letters, digits, "
                             f"'_', '-' or '.'; a factory without a usable __name__ needs one. Received: name={name!r}")
        return name

    def _check_references(self, references: Any, inputs_shape: Tuple[int, ...], required: bool) -> Optional[np.ndarray]:
        keyword = self._reference_keyword
        if references is None:
            if required:
                raise ValueError(f"`references` is required by this method (its explain takes `{keyword}`); pass "
                                 "e.g. a few training images of other classes. Received: references=None")
            return None
        per_input = np.ndim(references) == len(inputs_shape) + 1
        array = validation.references_array("references", references, inputs_shape,
                                            allow_scalar=keyword != "references")
        if per_input:
            return array[:len(self.images)]
        return array[0]

    # -- the explainer ---------------------------------------------------------------------------
    @property
    def explainer(self) -> Any:
        """The explainer built for the current model (``None`` before training begins)."""
        return self._explainer

    def _ensure_explainer(self) -> Any:
        model = self.model
        if model is None:
            raise ValueError("The callback has no model; it is set by `model.fit(callbacks=[...])`.")
        if self._explainer is None or getattr(self._explainer, "model", model) is not model:
            explainer = self._factory(model, **self.explainer_options)
            if not callable(getattr(explainer, "explain", None)):
                raise TypeError(f"The explainer factory must return an object with an `explain` method. "
                                f"Received: {type(explainer).__name__}")
            if self._reference_keyword is None:
                self._reference_keyword, required = _reference_keyword(explainer.explain)
                if required and self.references is None:
                    raise ValueError(f"The explainer needs `{self._reference_keyword}`; pass `references`. "
                                     "Received: references=None")
            self._explainer = explainer
        return self._explainer

    def explain(self) -> Explanation:
        """Explains the logged images at the model's current weights.

        Returns:
            The :class:`~tf_ig2.Explanation` of the first ``max_outputs`` validation images
            (``(n, H, W[, C])`` attributions).
        """
        explainer = self._ensure_explainer()
        arguments: Dict[str, Any] = {"targets": self.targets}
        if self.references is not None:
            if self._reference_keyword is not None:
                arguments[self._reference_keyword] = self.references
            else:
                return explainer.explain(self.images, self.references, **arguments)
        return explainer.explain(self.images, **arguments)

    # -- what is logged --------------------------------------------------------------------------
    def display_factor(self) -> int:
        """The integer enlargement applied to the logged images."""
        shorter = min(int(self.images.shape[1]), int(self.images.shape[2]))
        return max(1, math.ceil(self.min_display_size / shorter))

    def summaries(self, explanation: Explanation) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
        """The images and scalars logged for one explanation.

        Returns:
            ``(images, scalars)``: ``{tag: (k, H', W', 3) uint8 RGB}`` (the enlarged overlays,
            and their grid as ``k = 1``) and ``{tag: float}``.
        """
        overlays, tiles = visualize.display_images(
            self.images, explanation.attributions, alpha=self.alpha, percentile=self.percentile,
            colormap=self.colormap, factor=self.display_factor(), columns=self.columns)
        images = {f"{self.name}/overlay": overlays, f"{self.name}/grid": tiles[None]}
        scalars = {
            f"{self.name}/completeness_delta": float(np.mean(np.abs(explanation.delta))),
            f"{self.name}/target_score": float(np.mean(explanation.target_scores)),
        }
        if explanation.representation_distance is not None:
            scalars[f"{self.name}/representation_distance"] = float(
                np.mean(explanation.representation_distance[..., -1]))
        return images, scalars

    def _open_writer(self) -> None:
        """Creates the summary writer and remembers the events file it writes to."""
        suffix = f".{uuid.uuid4().hex[:12]}.v2"
        writer = tf.summary.create_file_writer(self.run_dir, filename_suffix=suffix)
        self._writer = writer
        self._summary_functions = {}  # compiled writes hold the writer they were traced with
        found = glob.glob(os.path.join(glob.escape(self.run_dir), f"*{suffix}"))
        self._events_file = found[0] if found else None

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        self._summary_functions = {}
        if writer is not None:
            writer.flush()
            writer.close()

    def _summary_function(self, image_tags: Tuple[str, ...], scalar_tags: Tuple[str, ...]) -> Callable[..., Any]:
        """One compiled function writing every summary of an epoch (one call instead of many eager ops)."""
        key = (image_tags, scalar_tags)
        if key not in self._summary_functions:
            from tensorboard.plugins.image import metadata

            image_metadata = metadata.create_summary_metadata(display_name=None, description=None)
            signature = ([tf.TensorSpec([], tf.int64)] + [tf.TensorSpec([None], tf.string)] * len(image_tags)
                         + [tf.TensorSpec([len(scalar_tags)], tf.float32)])

            @tf.function(input_signature=signature)
            def write(step, *values):
                for tag, encoded in zip(image_tags, values[:-1]):
                    tf.summary.write(tag, encoded, step=step, metadata=image_metadata)
                for index, tag in enumerate(scalar_tags):
                    tf.summary.scalar(tag, values[-1][index], step=step)

            self._summary_functions[key] = write
        return self._summary_functions[key]

    def _write(self, epoch: int) -> None:
        start = time.perf_counter()
        self.log_explanation(self.explain(), epoch)
        logger.debug("Logged %s attributions for epoch %d in %.3f s", self.name, epoch, time.perf_counter() - start)

    def log_explanation(self, explanation: Explanation, epoch: int) -> None:
        """Writes the images and scalars of ``explanation`` at ``step=epoch`` and flushes.

        Called by :meth:`on_epoch_end` with :meth:`explain`'s result; opens the summary writer if
        none is open.

        Raises:
            OSError: If the events file disappeared (the folder was removed or replaced).
            Exception: Whatever TensorFlow raises when the folder cannot be written.
        """
        images, scalars = self.summaries(explanation)
        if self._writer is None:
            self._open_writer()
        write = self._summary_function(tuple(images), tuple(scalars))
        with self._writer.as_default():
            write(tf.constant(epoch, tf.int64), *[tf.constant(encode_images(value)) for value in images.values()],
                  tf.constant(list(scalars.values()), tf.float32))
        self._writer.flush()
        if self._events_file is not None and not os.path.isfile(self._events_file):
            # The folder was removed or replaced: the open file handle writes nowhere visible.
            lost, self._writer = self._writer, None
            try:
                lost.close()
            except Exception:  # noqa: BLE001 - the file is gone; a new writer opens next time
                pass
            raise OSError(f"the events file {self._events_file!r} has disappeared; a new one is opened at the "
                          "next logged epoch")

    def _warn(self, what: str, error: Exception) -> None:
        warnings.warn(f"{type(self).__name__} could not {what} in {self.run_dir!r}: {type(error).__name__}: {error}",
                      RuntimeWarning, stacklevel=3)

    # -- Keras hooks -----------------------------------------------------------------------------
    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        """Builds the explainer (errors in its settings raise) and opens the summary writer."""
        self._ensure_explainer()
        self._training = True
        if self._writer is None:
            try:
                self._open_writer()
            except Exception as error:  # noqa: BLE001 - logging must not stop training
                self._writer = None
                self._warn("open its log (training goes on; logging is retried every logged epoch)", error)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Explains and logs every ``freq`` epochs; a failure warns and training goes on."""
        if not self._training or epoch % self.freq != 0:
            return
        try:
            self._write(epoch)
        except Exception as error:  # noqa: BLE001 - logging must not stop training
            self._warn(f"log {self.name} attributions at epoch {epoch}", error)

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        """Flushes and closes the summary writer."""
        self._training = False
        try:
            self._close_writer()
        except Exception as error:  # noqa: BLE001 - logging must not stop training
            self._warn("close its log", error)


class IG2Callback(AttributionCallback):
    """Logs IG² attribution maps to TensorBoard; tf-explain's ``IntegratedGradientsCallback`` for IG².

    Args:
        validation_data: Images ``x`` or ``(x, y)`` (see :class:`AttributionCallback`).
        references: ``(R, H, W[, C])`` references shared by all images, or
            ``(N, R, H, W[, C])`` per image.
        class_index: One int or ``N`` ints; ``None`` for the labels, else the predicted class.
        output_dir: Log folder; the run folder is ``output_dir/ig2`` (or ``output_dir/<name>``).
        freq: Log every ``freq`` epochs.
        max_outputs: The most images explained and logged per epoch.
        **options: IG² settings (``steps``, ``step_size``, ``value_range``,
            ``representation_layer``, ``batch_size``) and the display settings of
            :class:`AttributionCallback` (``name``, ``alpha``, ``percentile``, ``colormap``,
            ``columns``, ``min_display_size``).

    Example:
        >>> model.fit(x, y, epochs=5, callbacks=[
        ...     tf_ig2.callbacks.IG2Callback((x_val, y_val), references=x_train[:4], steps=64,
        ...                                  value_range=(0.0, 1.0), output_dir="logs")])
    """

    def __init__(self, validation_data: Any, references: Any, class_index: Any = None,
                 output_dir: Union[str, "os.PathLike[str]"] = defaults.CALLBACK_OUTPUT_DIR, freq: int = 1,
                 max_outputs: int = defaults.CALLBACK_MAX_OUTPUTS, **options: Any):
        super().__init__("ig2", validation_data, references=references, class_index=class_index,
                         output_dir=output_dir, freq=freq, max_outputs=max_outputs, **options)
