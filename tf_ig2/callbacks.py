"""Keras callbacks that log attributions and their diagnostics to TensorBoard during training.

Every ``freq`` epochs the callback explains a fixed batch of validation inputs with IG² (Zhuo & Ge,
TPAMI 2024, Eqs. 7-10), straight-line Integrated Gradients (Sundararajan et al., 2017) or Guided IG
(Kapishnikov et al., 2021) at the model's current weights, and writes with ``tf.summary`` at
``step=epoch``, in the run folder ``output_dir/<name>`` (``<name>`` defaults to the method):

- images ``(N, H, W[, C])``: ``<name>/overlay``, one image per explained input, the input blended
  with its magnitude map;
- tabular rows ``(N, F)``: ``<name>/bars``, one bar chart of the feature attributions per row;
- token ids ``(N, T)`` (IG² with ``input_layer``, the path moving in the embedding space):
  ``<name>/tokens``, one heat strip of the per-token attributions ``sum_d A[t, d]`` per sentence
  (padding left out), and ``<name>/text``, the same as a Markdown table of tokens and values;
- ``<name>/grid``: all the pictures of the epoch tiled into one image;
- ``<name>/completeness_delta``: mean ``|sum(A) - (f_c(x) - f_c(x'))|`` over the inputs;
- ``<name>/representation_distance``: mean distance ``||phi(GradCF) - phi(x_r)||`` left at the
  end of the GradPath (IG² only);
- ``<name>/target_score``: mean explained score ``f_c(x)``.

The arguments follow tf-explain's ``IntegratedGradientsCallback`` (``validation_data``,
``class_index``, ``output_dir``), so a tf-explain user changes one line.
"""

from __future__ import annotations

import glob
import logging
import math
import numbers
import os
import re
import struct
import time
import uuid
import warnings
import zlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from . import defaults, diagnostics, methods, validation, visualize
from .explanation import Explanation

logger = logging.getLogger(__name__)

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")

#: Characters escaped in the Markdown of the text summaries (TensorBoard renders Markdown, then
#: removes any HTML it does not allow, so ``<`` and ``&`` become entities).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|])")

Method = Union[str, type, Callable[..., Any]]


# -- validation data and targets (shared with the tf-explain style explainer) -------------------
def _split_pair(validation_data: Any) -> Tuple[Any, Any]:
    """``x`` or ``(x,)``, ``(x, None)``, ``(x, y)`` -> ``(x, y or None)``."""
    if isinstance(validation_data, tuple):
        if len(validation_data) not in (1, 2):
            raise ValueError(
                "`validation_data` must be x or a tuple (x, y). "
                f"Received: a tuple of {len(validation_data)} items"
            )
        return validation_data[0], (validation_data[1] if len(validation_data) == 2 else None)
    return validation_data, None


def _check_images(images: Any) -> np.ndarray:
    images = validation.float_array("validation_data", images, min_rank=3)
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3))):
        raise ValueError(
            "`validation_data` must hold images (N, H, W), (N, H, W, 1) or (N, H, W, 3). "
            f"Received: shape {images.shape}"
        )
    return images


def _check_rows(rows: Any) -> np.ndarray:
    rows = validation.float_array("validation_data", rows, min_rank=2)
    if rows.ndim != 2:
        raise ValueError("`validation_data` must hold tabular rows (N, F) of floats. "
                         f"Received: shape {rows.shape}")
    return rows


def _check_token_ids(token_ids: Any) -> np.ndarray:
    token_ids = validation.model_input_array("validation_data", token_ids)
    if token_ids.ndim != 2:
        raise ValueError("`validation_data` must hold token ids (N, T). "
                         f"Received: {validation._describe(token_ids)}")
    if np.issubdtype(token_ids.dtype, np.floating) and np.any(np.mod(token_ids, 1) != 0):
        raise ValueError("`validation_data` must hold whole token ids (integers, or floats without a fraction). "
                         f"Received: {validation._describe(token_ids)} with fractional values")
    if np.any(token_ids < 0):
        raise ValueError(f"`validation_data` token ids must be >= 0. Received: minimum {token_ids.min()}")
    return token_ids


#: The kinds of inputs the callbacks can show: ``kind -> (input check, what one input is called)``.
INPUT_KINDS: Dict[str, Tuple[Callable[[Any], np.ndarray], str]] = {
    "images": (_check_images, "images"),
    "tabular": (_check_rows, "rows"),
    "tokens": (_check_token_ids, "sentences"),
}


def split_validation_data(validation_data: Any, input_kind: str = "images") -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Splits ``x`` or ``(x, y)`` (tf-explain's convention) into inputs and labels.

    Args:
        validation_data: ``x`` or a tuple ``(x,)``, ``(x, None)`` or ``(x, y)``, with ``y``
            ``(N,)`` integer labels or ``(N, C)`` one-hot (or probability) rows, and ``x``, by
            ``input_kind``:

            - ``"images"``: ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)`` floats;
            - ``"tabular"``: ``(N, F)`` floats, one row of F features per input;
            - ``"tokens"``: ``(N, T)`` token ids >= 0 (integers, or floats holding whole numbers
              for models whose input is float-typed).
        input_kind: ``"images"``, ``"tabular"`` or ``"tokens"``.

    Returns:
        ``(x, labels)``: ``x`` ``(N, ...)`` (float32 for images and rows; token ids keep their
        dtype) and ``labels`` int64 ``(N,)`` or ``None``.

    Raises:
        TypeError, ValueError: On anything else.
    """
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"`input_kind` must be one of {sorted(INPUT_KINDS)}. Received: input_kind={input_kind!r}")
    check, noun = INPUT_KINDS[input_kind]
    inputs, labels = _split_pair(validation_data)
    if inputs is None:
        raise TypeError(f"`validation_data` must hold {noun} x. Received: x=None")
    inputs = check(inputs)
    if labels is None:
        return inputs, None
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
    if len(label_array) != len(inputs):
        raise ValueError(
            f"`validation_data` must hold as many labels as {noun}. Received: {len(inputs)} {noun} and "
            f"{len(label_array)} labels"
        )
    if np.any(label_array < 0):
        raise ValueError(f"`validation_data[1]` (labels) must be >= 0. Received: minimum {int(label_array.min())}")
    return inputs, label_array.astype(np.int64)


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


def _padding_id(value: Any) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer))):
        raise TypeError(f"`padding_id` must be None or an int. Received: padding_id={value!r}")
    return None if value is None else int(value)


def _markdown_text(text: str) -> str:
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))
    return escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def token_markdown(tokens: Sequence[str], attributions: Any, *,
                   emphasis: float = defaults.CALLBACK_TEXT_EMPHASIS) -> str:
    """A two-row Markdown table of tokens and their attributions, as TensorBoard's text tab shows it.

    TensorBoard renders text summaries as Markdown (tables included) and strips raw HTML styling,
    so the colours of :func:`tf_ig2.visualize.token_html` cannot be used there; instead each
    attribution is written out (signed, 3 significant digits) and those whose magnitude is at
    least ``emphasis`` times the largest in the sentence are bold.

    Args:
        tokens: T token strings.
        attributions: ``(T,)`` per-token attributions.
        emphasis: In [0, 1]; the fraction of the largest magnitude from which values are bold.

    Returns:
        Markdown text: a header row ``| token | t_1 | ... |`` and a row ``| attribution | a_1 | ... |``;
        ``*(no tokens)*`` for an empty sentence.
    """
    values = np.asarray(attributions, np.float64).reshape(-1)
    if len(tokens) != len(values):
        raise ValueError(f"`tokens` and `attributions` must have the same length. Received: "
                         f"{len(tokens)} tokens and {len(values)} attributions")
    if not len(values):
        return "*(no tokens)*"
    largest = float(np.max(np.abs(values)))
    cells = []
    for value in values:
        cell = f"{value:+.3g}"
        cells.append(f"**{cell}**" if largest > 0 and abs(value) >= emphasis * largest else cell)
    header = "| token | " + " | ".join(_markdown_text(token) for token in tokens) + " |"
    rule = "| --- | " + " | ".join("---:" for _ in tokens) + " |"
    row = "| attribution | " + " | ".join(cells) + " |"
    return "\n".join([header, rule, row])


def _tile(pictures: np.ndarray, columns: int, gap: int = 4, fill: int = 255, line: int = 217) -> np.ndarray:
    """Tiles ``(k, H, W, 3)`` uint8 pictures row by row on a white sheet, ``gap`` grey pixels apart."""
    count, height, width = pictures.shape[:3]
    rows = math.ceil(count / columns)
    sheet = np.full((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3), line, np.uint8)
    for index in range(rows * columns):
        top, left = (index // columns) * (height + gap), (index % columns) * (width + gap)
        sheet[top:top + height, left:left + width] = pictures[index] if index < count else fill
    return sheet


def _to_uint8(picture: Any) -> np.ndarray:
    return np.clip(np.round(np.asarray(picture) * 255.0), 0, 255).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """Encodes one ``(H, W, 3)`` uint8 RGB image as PNG (no row filter, zlib level 1).

    Attribution maps are blocky and compress well without PNG's adaptive row filters, which
    are what makes general-purpose encoders slow on many small images.
    """
    height, width, channels = image.shape
    rows = np.empty((height, width * channels + 1), np.uint8)
    rows[:, 0] = 0  # filter type 0 (none) for every row
    rows[:, 1:] = image.reshape(height, width * channels)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
            + chunk(b"IEND", b""))


def encode_images(images: np.ndarray) -> np.ndarray:
    """Encodes uint8 RGB images as the TensorBoard images plugin stores them.

    The record is a string vector ``[width, height, png_1, ..., png_k]``, as written by
    ``tf.summary.image``; encoding the PNGs up front (:func:`encode_png`), instead of with
    eager per-image TensorFlow ops, makes logging a few small images several times cheaper.

    Args:
        images: ``(k, H, W, 3)`` uint8 RGB.

    Returns:
        ``(k + 2,)`` numpy array of bytes.
    """
    images = np.ascontiguousarray(images, dtype=np.uint8)
    encoded = [str(int(images.shape[2])).encode(), str(int(images.shape[1])).encode()]
    encoded.extend(encode_png(image) for image in images)
    return np.array(encoded, dtype=object)


class AttributionCallback(keras.callbacks.Callback):
    """Logs attributions of a fixed batch of validation inputs to TensorBoard every few epochs.

    Images, tabular rows and token ids are shown each in their own way (see the module
    docstring for the tags). The explainer (and its compiled function) is built once, when
    training begins, and reused every epoch: it reads the model's live weights, runs it in
    inference mode and changes no weight, optimizer slot or metric. A failure while logging
    becomes a warning and training goes on.

    Args:
        method: ``"ig2"``, ``"ig"`` or ``"guided_ig"``; an explainer class taking
            ``(model, **explainer_options)``; or a factory ``factory(model, **explainer_options)``
            returning an object with an ``explain(inputs, references or baselines, targets)``
            method returning an :class:`~tf_ig2.Explanation`.
        validation_data: Inputs ``x`` or ``(x, y)``, ``y`` ``(N,)`` int labels or ``(N, C)``
            one-hot rows; ``x`` is ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)`` float
            images, ``(N, F)`` float tabular rows, or ``(N, T)`` token ids (see ``input_kind``).
            The first ``max_outputs`` inputs are explained.
        references: IG² references ``(R, *S)`` shared by all inputs or ``(N, R, *S)`` per input
            (required for IG²; token ids for token inputs); the baselines of IG and Guided IG (a
            scalar, one input, ``(R, ...)`` or ``(N, R, ...)``; ``None`` for the explainer's
            default).
        class_index: The explained class: one int or ``N`` ints. ``None``: the labels ``y`` if
            given, else the predicted class.
        output_dir: Log folder; the callback writes to the run folder ``output_dir/<name>``, so
            the log folder of ``keras.callbacks.TensorBoard`` shows both side by side.
        freq: Log at the end of every epoch whose index is a multiple of ``freq`` (0, freq, ...).
        max_outputs: The most inputs explained and logged per epoch.
        name: The run folder and tag prefix; defaults to the method's name (``"ig2"``, ...).
            Give two callbacks of the same method different names.
        alpha: Weight of the coloured map in the image overlays, in [0, 1].
        percentile: Per-image percentile of the magnitude that saturates the colour map.
        colormap: ``"inferno"``, ``"viridis"`` or ``"jet"``.
        columns: Pictures per row of the grid; ``None`` for ``ceil(sqrt(n))`` (one column of
            token strips for token inputs).
        min_display_size: Small images are enlarged (integer factor, nearest neighbour) until
            their shorter side is at least this many pixels; 1 keeps them as they are.
        input_kind: ``"images"``, ``"tabular"`` or ``"tokens"``; ``None`` infers it: tabular
            when ``feature_names`` or ``top`` is given; tokens when ``vocabulary`` is given, or
            ``x`` is ``(N, T)`` integers, or ``(N, T)`` with an ``input_layer`` option; else images.
            Rank-2 floats are not taken for tabular rows unless told (pass ``feature_names``).
        feature_names: Tabular inputs: F names for the bar charts; ``None`` for ``"x0"``, ...,
            ``"x{F-1}"``.
        top: Tabular inputs: show the ``top`` features of largest attribution magnitude in each
            bar chart; ``None`` shows all.
        vocabulary: Token inputs: the token of each id, as a sequence (``vocabulary[id]``, e.g.
            ``TextVectorization.get_vocabulary()``) or a mapping ``{id: token}``; ``None`` shows
            the ids. Padding positions (``padding_id``, an IG² option, default 0) are not shown.
        **explainer_options: Settings of the explainer, e.g. IG²'s ``steps``, ``step_size``,
            ``value_range``, ``representation_layer``, ``batch_size``, ``input_layer``,
            ``padding_id``, ``output``.

    Raises:
        TypeError, ValueError: In the constructor, on any malformed argument; when training
            begins, if the explainer cannot be built for the model (e.g. an unknown
            ``representation_layer`` or ``input_layer``).

    Example:
        >>> callbacks = [
        ...     tf_ig2.callbacks.AttributionCallback("ig2", (x_val, y_val), references=refs, steps=64),
        ...     tf_ig2.callbacks.AttributionCallback("ig", (x_val, y_val), references=0.0, steps=32),
        ...     keras.callbacks.TensorBoard("logs"),
        ... ]
        >>> text = tf_ig2.callbacks.IG2Callback((ids_val, y_val), references=other_ids, input_layer="embedding",
        ...                                     vocabulary=vectorizer.get_vocabulary(), steps=64)
        >>> rows = tf_ig2.callbacks.IG2Callback((rows_val, y_val), references=rows_other, top=10,
        ...                                     feature_names=data.feature_names, value_range=(low, high))
    """

    def __init__(self, method: Method, validation_data: Any, references: Any = None, class_index: Any = None,
                 output_dir: Union[str, "os.PathLike[str]"] = defaults.CALLBACK_OUTPUT_DIR, freq: int = 1,
                 max_outputs: int = defaults.CALLBACK_MAX_OUTPUTS, *, name: Optional[str] = None,
                 alpha: float = defaults.OVERLAY_ALPHA, percentile: float = defaults.HEATMAP_PERCENTILE,
                 colormap: str = defaults.HEATMAP_COLORMAP, columns: Optional[int] = None,
                 min_display_size: int = defaults.CALLBACK_MIN_DISPLAY_SIZE, input_kind: Optional[str] = None,
                 feature_names: Optional[Sequence[str]] = None, top: Optional[int] = None,
                 vocabulary: Union[None, Sequence[str], Mapping[int, str]] = None, **explainer_options: Any):
        super().__init__()
        self._factory, default_name, self._method = self._resolve_method(method, explainer_options)
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
        self.top = validation.optional_positive_int("top", top)
        self.padding_id = _padding_id(explainer_options.get("padding_id", defaults.PADDING_ID))

        self.input_kind = self._resolve_input_kind(input_kind, validation_data, explainer_options,
                                                   feature_names=feature_names, top=top, vocabulary=vocabulary)
        inputs, labels = split_validation_data(validation_data, self.input_kind)
        total = len(inputs)
        self.inputs = inputs[:self.max_outputs]
        count = len(self.inputs)
        self.feature_names = (self._check_feature_names(feature_names, inputs.shape[1])
                              if self.input_kind == "tabular" else None)
        self.vocabulary = self._check_vocabulary(vocabulary) if self.input_kind == "tokens" else None
        if self.input_kind == "tokens":
            self._check_token_explainer(explainer_options)
            for row in range(count):
                self.token_texts(row)  # every shown id has a token
        targets = choose_targets(class_index, labels, total)
        self.class_index = class_index
        self.targets = None if targets is None else targets[:count]
        self._reference_keyword = None if self._method is None else self._method.reference_keyword
        required = self._method is not None and self._method.references_required
        self.references = self._check_references(references, inputs.shape, required)
        if self.input_kind != "tokens":  # for token ids, value_range bounds the embedding space
            bounds = validation.value_range(explainer_options.get("value_range"))
            validation.fits_value_range("validation_data", self.inputs, bounds, inputs.shape[1:])
            if self.references is not None and self.references.ndim > 0:
                validation.fits_value_range("references", self.references, bounds, inputs.shape[1:])
        self.explainer_options = dict(explainer_options)
        self._explainer = None
        self._writer = None
        self._events_file: Optional[str] = None
        self._summary_functions: Dict[Tuple[Tuple[str, ...], ...], Callable[..., Any]] = {}
        self._training = False

    @property
    def images(self) -> np.ndarray:
        """The explained inputs ``(n, ...)`` (the name dates from when only images were shown)."""
        return self.inputs

    # -- constructor helpers ---------------------------------------------------------------------
    @staticmethod
    def _resolve_input_kind(input_kind: Any, validation_data: Any, options: Dict[str, Any], *,
                            feature_names: Any, top: Any, vocabulary: Any) -> str:
        """The kind of the inputs: given, or inferred from the arguments and ``x``'s rank and dtype."""
        tabular_arguments = [name for name, value in (("feature_names", feature_names), ("top", top))
                             if value is not None]
        if input_kind is None:
            if tabular_arguments and vocabulary is not None:
                named = ", ".join(f"`{name}`" for name in tabular_arguments)
                raise ValueError(f"`vocabulary` (token inputs) and {named} (tabular inputs) exclude each other. "
                                 "Received: both")
            inputs = _split_pair(validation_data)[0]
            dtype = getattr(inputs, "dtype", None)
            if dtype is None or not hasattr(inputs, "shape"):
                inputs = validation._as_numpy("validation_data", inputs)
                dtype = inputs.dtype
            dtype = np.dtype(getattr(dtype, "as_numpy_dtype", dtype))
            rank = len(inputs.shape)
            integer = np.issubdtype(dtype, np.integer)
            if tabular_arguments:
                return "tabular"
            if vocabulary is not None or (rank == 2 and (integer or options.get("input_layer") is not None)):
                return "tokens"
            if rank == 2 and not integer:
                raise ValueError(
                    f"`validation_data` holds rank-2 floats of shape {tuple(inputs.shape)}: pass `feature_names` (or "
                    "`input_kind='tabular'`) to log them as tabular rows (N, F), or `input_layer` for token ids; "
                    "images must be (N, H, W), (N, H, W, 1) or (N, H, W, 3)"
                )
            return "images"
        if not isinstance(input_kind, str):
            raise TypeError(f"`input_kind` must be None or one of {sorted(INPUT_KINDS)}. "
                            f"Received: input_kind={input_kind!r}")
        if input_kind not in INPUT_KINDS:
            raise ValueError(f"`input_kind` must be None or one of {sorted(INPUT_KINDS)}. "
                             f"Received: input_kind={input_kind!r}")
        if tabular_arguments and input_kind != "tabular":
            raise ValueError(f"{', '.join(f'`{name}`' for name in tabular_arguments)} apply to tabular inputs only. "
                             f"Received: input_kind={input_kind!r}")
        if vocabulary is not None and input_kind != "tokens":
            raise ValueError(f"`vocabulary` applies to token inputs only. Received: input_kind={input_kind!r}")
        return input_kind

    @staticmethod
    def _check_feature_names(feature_names: Any, count: int) -> List[str]:
        if feature_names is None:
            return [f"x{index}" for index in range(count)]
        if isinstance(feature_names, (str, bytes)) or not isinstance(feature_names, (Sequence, np.ndarray)):
            raise TypeError("`feature_names` must be a sequence of F names (one per column). "
                            f"Received: {validation._describe(feature_names)}")
        if len(feature_names) != count:
            raise ValueError(f"`feature_names` must name each of the {count} features of `validation_data`. "
                             f"Received: {len(feature_names)} names")
        return [str(item) for item in feature_names]

    @staticmethod
    def _check_vocabulary(vocabulary: Any) -> Union[None, List[str], Dict[int, str]]:
        if vocabulary is None:
            return None
        if isinstance(vocabulary, Mapping):
            keys = list(vocabulary)
            if not all(isinstance(key, (numbers.Integral, np.integer)) and not isinstance(key, bool) for key in keys):
                hint = (" (it maps tokens to ids; pass {index: token for token, index in vocabulary.items()})"
                        if all(isinstance(key, str) for key in keys) else "")
                raise TypeError(f"`vocabulary` as a mapping must map int token ids to tokens{hint}. "
                                f"Received: keys such as {keys[:3]!r}")
            return {int(key): str(value) for key, value in vocabulary.items()}
        if isinstance(vocabulary, (str, bytes)) or not isinstance(vocabulary, (Sequence, np.ndarray)):
            raise TypeError("`vocabulary` must be None, a sequence of tokens (indexed by id) or a mapping "
                            f"{{id: token}}. Received: {validation._describe(vocabulary)}")
        return [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in vocabulary]

    def _check_token_explainer(self, options: Dict[str, Any]) -> None:
        """A registered method must be told which ``input_layer`` the token ids go through."""
        if self._method is None:
            return  # a factory or an unregistered class: its needs are unknown until it is built
        if "input_layer" not in self._method.settings.names():
            raise ValueError(f"`method` {self._method.name!r} cannot explain token ids: it has no `input_layer` "
                             "to move in the embedding space. Received: validation_data of token ids")
        if options.get("input_layer") is None:
            raise ValueError("`input_layer` is required to explain token ids (N, T): name the model's Embedding "
                             "layer (its output space is where the path moves). Received: input_layer=None")

    def token_texts(self, index: int) -> Tuple[List[str], np.ndarray]:
        """The shown tokens of logged sentence ``index`` and their positions (padding left out).

        Returns:
            ``(tokens, positions)``: the token strings and the ``(T',)`` int positions in the
            sentence they come from.

        Raises:
            ValueError: If the vocabulary has no token for one of the ids.
        """
        ids = self.inputs[index]
        keep = np.ones(ids.shape, bool) if self.padding_id is None else ids != self.padding_id
        positions = np.flatnonzero(keep)
        tokens = []
        for token_id in (int(value) for value in ids[positions]):
            if self.vocabulary is None:
                tokens.append(str(token_id))
            elif isinstance(self.vocabulary, dict):
                if token_id not in self.vocabulary:
                    raise ValueError(f"`vocabulary` has no token for id {token_id} (in sentence {index} of "
                                     f"`validation_data`). Received: a mapping of {len(self.vocabulary)} ids")
                tokens.append(self.vocabulary[token_id])
            else:
                if token_id >= len(self.vocabulary):
                    raise ValueError(f"`vocabulary` has no token for id {token_id} (in sentence {index} of "
                                     f"`validation_data`). Received: {len(self.vocabulary)} tokens")
                tokens.append(self.vocabulary[token_id])
        return tokens, positions

    @staticmethod
    def _resolve_method(method: Method, options: Dict[str, Any]) -> Tuple[Callable[..., Any], str, Any]:
        """Returns ``(factory, default name, registered method or None)``; checks a registered method's options."""
        if isinstance(method, str):
            registered = methods.get(method)
            registered.check_options(options)
            return registered.explainer, registered.name, registered
        if isinstance(method, type):
            if not callable(getattr(method, "explain", None)):
                raise TypeError(f"`method` must be an explainer class with an `explain` method. "
                                f"Received: class {method.__name__}")
            declared = getattr(method, "method", None)
            registered = methods.METHODS.get(declared) if isinstance(declared, str) else None
            if registered is not None:
                registered.check_options(options)
            default_name = declared if isinstance(declared, str) and declared else method.__name__.lower()
            return method, default_name, registered
        if callable(method):
            default_name = getattr(method, "__name__", "")
            if not _NAME_PATTERN.match(default_name or "-<>"):
                default_name = ""
            return method, default_name, None
        raise TypeError(f"`method` must be one of {sorted(methods.METHODS)}, an explainer class or a factory "
                        f"callable. Received: {type(method).__name__}")

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
        if self.input_kind == "tokens":
            array = self._token_references(references, inputs_shape)
        else:
            array = validation.references_array("references", references, inputs_shape,
                                                allow_scalar=keyword != "references")
        if per_input:
            return array[:len(self.images)]
        return array[0]

    def _token_references(self, references: Any, inputs_shape: Tuple[int, ...]) -> np.ndarray:
        """Token-id references ``(1 or N, R, T)`` as whole ids >= 0 of the inputs' dtype."""
        array = validation.references_array("references", references, inputs_shape, integer=True)
        if np.issubdtype(array.dtype, np.floating) and np.any(np.mod(array, 1) != 0):
            raise ValueError("`references` must hold whole token ids like `validation_data`. "
                             f"Received: {validation._describe(array)} with fractional values")
        if np.any(array < 0):
            raise ValueError(f"`references` token ids must be >= 0. Received: minimum {array.min()}")
        return array.astype(self.inputs.dtype, copy=False)

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
                registered = methods.METHODS.get(getattr(explainer, "method", None))
                self._reference_keyword = (registered.reference_keyword if registered is not None
                                           else getattr(explainer, "reference_name", None))
                if registered is not None and registered.references_required and self.references is None:
                    raise ValueError(f"The explainer needs `{self._reference_keyword}`; pass `references`. "
                                     "Received: references=None")
            self._explainer = explainer
        return self._explainer

    def explain(self) -> Explanation:
        """Explains the logged inputs at the model's current weights.

        Returns:
            The :class:`~tf_ig2.Explanation` of the first ``max_outputs`` validation inputs:
            attributions ``(n, H, W[, C])`` for images, ``(n, F)`` for tabular rows, ``(n, T)``
            per token for token ids.
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
        """The integer enlargement applied to the logged images (1 for tabular and token inputs)."""
        if self.input_kind != "images":
            return 1
        shorter = min(int(self.images.shape[1]), int(self.images.shape[2]))
        return max(1, math.ceil(self.min_display_size / shorter))

    def summaries(self, explanation: Explanation) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
        """The images and scalars logged for one explanation.

        Returns:
            ``(images, scalars)``: ``{tag: (k, H', W', 3) uint8 RGB}`` and ``{tag: float}``.
            Images: the enlarged overlays (``<name>/overlay``); tabular rows: one bar chart per
            row (``<name>/bars``); token ids: one heat strip per sentence, padded with white to
            the widest (``<name>/tokens``); and, for all, their grid as ``k = 1`` (``<name>/grid``).
        """
        if self.input_kind == "images":
            overlays, tiles = visualize.display_images(
                self.images, explanation.attributions, alpha=self.alpha, percentile=self.percentile,
                colormap=self.colormap, factor=self.display_factor(), columns=self.columns)
            images = {f"{self.name}/overlay": overlays, f"{self.name}/grid": tiles[None]}
        elif self.input_kind == "tabular":
            charts = np.stack([_to_uint8(visualize.feature_bars(self.feature_names, row, top=self.top))
                               for row in np.asarray(explanation.attributions)])
            columns = self.columns or math.ceil(math.sqrt(len(charts)))
            images = {f"{self.name}/bars": charts, f"{self.name}/grid": _tile(charts, columns)[None]}
        else:
            strips = self.token_strips(explanation.attributions)
            images = {f"{self.name}/tokens": strips, f"{self.name}/grid": _tile(strips, self.columns or 1)[None]}
        scalars = {
            f"{self.name}/completeness_delta": float(np.mean(np.abs(explanation.delta))),
            f"{self.name}/relative_completeness_delta": diagnostics.median_relative_delta(explanation),
            f"{self.name}/target_score": float(np.mean(explanation.target_scores)),
        }
        if explanation.representation_distance is not None:
            scalars[f"{self.name}/representation_distance"] = float(
                np.mean(explanation.representation_distance[..., -1]))
        return images, scalars

    def token_strips(self, attributions: Any) -> np.ndarray:
        """Token heat strips of the logged sentences, padding left out, all as wide as the widest.

        Args:
            attributions: ``(n, T)`` per-token attributions of the logged sentences.

        Returns:
            ``(n, H, W, 3)`` uint8 RGB strips (:func:`tf_ig2.visualize.token_strip`), each padded
            on the right with white.
        """
        attributions = np.asarray(attributions)
        strips = []
        for index in range(len(self.inputs)):
            tokens, positions = self.token_texts(index)
            strips.append(_to_uint8(visualize.token_strip(tokens, attributions[index][positions])))
        width = max(strip.shape[1] for strip in strips)
        return np.stack([np.pad(strip, ((0, 0), (0, width - strip.shape[1]), (0, 0)), constant_values=255)
                         for strip in strips])

    def text_summaries(self, explanation: Explanation) -> Dict[str, str]:
        """The Markdown text logged for one explanation: ``{"<name>/text": ...}`` for token inputs.

        One section per logged sentence: its index, explained class, score ``f_c(x)``,
        counterfactual score and completeness delta, then :func:`token_markdown`'s table of the
        tokens (padding left out) and their attributions. Empty for images and tabular rows.
        """
        if self.input_kind != "tokens":
            return {}
        attributions = np.asarray(explanation.attributions)
        sections = []
        for index in range(len(self.inputs)):
            tokens, positions = self.token_texts(index)
            target = "" if explanation.targets is None else f"class {int(explanation.targets[index])}, "
            sections.append(
                f"**Sentence {index}**: {target}score {float(explanation.target_scores[index]):.4g}, "
                f"counterfactual score {float(explanation.counterfactual_scores[index]):.4g}, "
                f"completeness delta {float(explanation.delta[index]):+.3g}\n\n"
                + token_markdown(tokens, attributions[index][positions]))
        return {f"{self.name}/text": "\n\n".join(sections)}

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

    def _summary_function(self, image_tags: Tuple[str, ...], scalar_tags: Tuple[str, ...],
                          text_tags: Tuple[str, ...] = ()) -> Callable[..., Any]:
        """One compiled function writing every summary of an epoch (one call instead of many eager ops)."""
        key = (image_tags, scalar_tags, text_tags)
        if key not in self._summary_functions:
            from tensorboard.plugins.image import metadata

            image_metadata = metadata.create_summary_metadata(display_name=None, description=None)
            signature = ([tf.TensorSpec([], tf.int64)] + [tf.TensorSpec([None], tf.string)] * len(image_tags)
                         + [tf.TensorSpec([len(scalar_tags)], tf.float32)]
                         + [tf.TensorSpec([], tf.string)] * len(text_tags))

            @tf.function(input_signature=signature)
            def write(step, *values):
                images, scalars, texts = values[:len(image_tags)], values[len(image_tags)], values[len(image_tags) + 1:]
                for tag, encoded in zip(image_tags, images):
                    tf.summary.write(tag, encoded, step=step, metadata=image_metadata)
                for index, tag in enumerate(scalar_tags):
                    tf.summary.scalar(tag, scalars[index], step=step)
                for tag, text in zip(text_tags, texts):
                    tf.summary.text(tag, text, step=step)

            self._summary_functions[key] = write
        return self._summary_functions[key]

    def _write(self, epoch: int) -> None:
        start = time.perf_counter()
        self.log_explanation(self.explain(), epoch)
        logger.debug("Logged %s attributions for epoch %d in %.3f s", self.name, epoch, time.perf_counter() - start)

    def log_explanation(self, explanation: Explanation, epoch: int) -> None:
        """Writes the images, scalars and texts of ``explanation`` at ``step=epoch`` and flushes.

        Called by :meth:`on_epoch_end` with :meth:`explain`'s result; opens the summary writer if
        none is open.

        Raises:
            OSError: If the events file disappeared (the folder was removed or replaced).
            Exception: Whatever TensorFlow raises when the folder cannot be written.
        """
        images, scalars = self.summaries(explanation)
        texts = self.text_summaries(explanation)
        if self._writer is None:
            self._open_writer()
        write = self._summary_function(tuple(images), tuple(scalars), tuple(texts))
        with self._writer.as_default():
            write(tf.constant(epoch, tf.int64), *[tf.constant(encode_images(value)) for value in images.values()],
                  tf.constant(list(scalars.values()), tf.float32), *[tf.constant(text) for text in texts.values()])
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
        """Warns in one line that logging failed; the full traceback goes to the logger at DEBUG level."""
        message = f"{type(self).__name__} could not {what} in {self.run_dir!r}: {type(error).__name__}: {error}"
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        logger.debug("%s", message, exc_info=(type(error), error, error.__traceback__))

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

    # tf_keras (Keras 2) asks its callbacks which per-batch hooks they implement: none.
    def _implements_train_batch_hooks(self) -> bool:
        return False

    def _implements_test_batch_hooks(self) -> bool:
        return False

    def _implements_predict_batch_hooks(self) -> bool:
        return False


class IG2Callback(AttributionCallback):
    """Logs IG² attributions to TensorBoard; tf-explain's ``IntegratedGradientsCallback`` for IG².

    Args:
        validation_data: Images, tabular rows or token ids ``x``, or ``(x, y)`` (see
            :class:`AttributionCallback`).
        references: ``(R, *S)`` references shared by all inputs, or ``(N, R, *S)`` per input
            (token ids for token inputs).
        class_index: One int or ``N`` ints; ``None`` for the labels, else the predicted class.
        output_dir: Log folder; the run folder is ``output_dir/ig2`` (or ``output_dir/<name>``).
        freq: Log every ``freq`` epochs.
        max_outputs: The most inputs explained and logged per epoch.
        **options: IG² settings (``steps``, ``step_size``, ``value_range``,
            ``representation_layer``, ``batch_size``, ``input_layer``, ``padding_id``,
            ``output``) and the display settings of :class:`AttributionCallback` (``name``,
            ``alpha``, ``percentile``, ``colormap``, ``columns``, ``min_display_size``,
            ``input_kind``, ``feature_names``, ``top``, ``vocabulary``).

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
