"""What the callbacks (and the tf-explain style explainer) are given: inputs, labels, targets.

``validation_data`` follows tf-explain's convention, ``x`` or ``(x, y)``; ``x`` holds images, tabular
rows or token ids (the *input kind*), ``y`` integer labels or one-hot rows. These checks are shared by
:mod:`tf_ig2.callbacks` and :mod:`tf_ig2.callbacks.tf_explain`.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from tf_ig2 import defaults, validation
from tf_ig2.callbacks.targets import choose
from tf_ig2.methods import registry as methods
from tf_ig2.methods.noise_tunnel import SmoothSettings


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
                         f"Received: {validation.describe(token_ids)}")
    return validation.token_ids("validation_data", token_ids)


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
    label_array = validation.as_numpy("validation_data[1]", labels)
    if label_array.dtype == object or label_array.dtype == np.bool_ or not (
            np.issubdtype(label_array.dtype, np.integer) or np.issubdtype(label_array.dtype, np.floating)):
        raise TypeError("`validation_data[1]` (labels) must hold numbers. "
                        f"Received: {validation.describe(label_array)}")
    if label_array.ndim == 2 and label_array.shape[1] == 1:
        label_array = label_array[:, 0]
    if label_array.ndim == 2:
        label_array = np.argmax(label_array, axis=1)  # one-hot (or probability) rows
    elif label_array.ndim != 1 or not np.all(np.isfinite(label_array)) or np.any(np.mod(label_array, 1) != 0):
        raise ValueError(
            "`validation_data[1]` (labels) must be (N,) integer labels or (N, C) one-hot rows. "
            f"Received: {validation.describe(label_array)}"
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
    """The explained class of each input: ``class_index`` if given, else the labels, else ``None`` (predicted).

    One class per input only; the callbacks also take several (:func:`tf_ig2.callbacks.targets.choose`).

    Args:
        class_index: ``None``, one int >= 0, or ``count`` ints >= 0.
        labels: ``(count,)`` int64 labels, or ``None``.
        count: N, the number of images.

    Returns:
        ``(count,)`` int64 class indices, or ``None`` for the predicted class.

    Raises:
        TypeError, ValueError: If ``class_index`` is not one of the above (several classes per input
            included).
    """
    choice = choose(class_index, labels, count)
    if choice.several:
        raise ValueError("`class_index` must name one class per input here: None, an int or "
                         f"{count} ints. Received: class_index={validation.describe(class_index)}; to explain "
                         "several classes per input, pass (N, T) targets or 'top-K' to an explainer's explain")
    return choice.indices


def padding_id(value: Any) -> Optional[int]:
    """The ``padding_id`` option (token ids not shown) as an int or ``None``; raises TypeError otherwise."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer))):
        raise TypeError(f"`padding_id` must be None or an int. Received: padding_id={value!r}")
    return None if value is None else int(value)


def resolve_input_kind(input_kind: Any, validation_data: Any, options: Dict[str, Any], *,
                       feature_names: Any, top: Any, vocabulary: Any) -> str:
    """The kind of the inputs: given, or inferred from the arguments and ``x``'s rank and dtype.

    Args:
        input_kind: ``None`` (infer), ``"images"``, ``"tabular"`` or ``"tokens"``.
        validation_data: ``x`` or ``(x, y)``.
        options: The explainer's options (an ``input_layer`` makes rank-2 ``x`` token ids).
        feature_names, top: Tabular settings (given: tabular).
        vocabulary: Token setting (given: tokens).

    Returns:
        The input kind.

    Raises:
        TypeError, ValueError: On an unknown kind, settings of another kind, or rank-2 floats
            that could be either tabular rows or token ids.
    """
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
            inputs = validation.as_numpy("validation_data", inputs)
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


def check_references(references: Any, inputs: np.ndarray, kind: str, *, keyword: Optional[str], required: bool,
                     count: int, max_references: Optional[int]) -> Optional[np.ndarray]:
    """The callback's references (or baselines) for its first ``count`` inputs.

    Args:
        references: ``None``, ``(R, *S)`` shared, ``(N, R, *S)`` per input, or (baselines only,
            ``keyword != "references"``) a scalar or one input.
        inputs: All ``(N, *S)`` validation inputs.
        kind: The input kind; token references are whole token ids of the inputs' dtype.
        keyword: The explainer's name for them (``"references"`` or ``"baselines"``).
        required: Whether the method needs them.
        count: How many inputs are logged.
        max_references: Keep the first ``max_references`` per input; ``None`` keeps all.

    Returns:
        ``(R', *S)`` shared or ``(count, R', *S)`` per input, or ``None``.

    Raises:
        TypeError, ValueError: If they are missing while required, or malformed.
    """
    if references is None:
        if required:
            raise ValueError(f"`references` is required by this method (its explain takes `{keyword}`); pass "
                             "e.g. a few training images of other classes. Received: references=None")
        return None
    per_input = np.ndim(references) == inputs.ndim + 1
    if kind == "tokens":
        array = validation.references_array("references", references, inputs.shape, integer=True)
        if np.issubdtype(array.dtype, np.floating) and np.any(np.mod(array, 1) != 0):
            raise ValueError("`references` must hold whole token ids like `validation_data`. "
                             f"Received: {validation.describe(array)} with fractional values")
        if np.any(array < 0):
            raise ValueError(f"`references` token ids must be >= 0. Received: minimum {array.min()}")
        array = array.astype(inputs.dtype, copy=False)
    else:
        array = validation.references_array("references", references, inputs.shape,
                                            allow_scalar=keyword != "references")
    array = array[:, :max_references]
    return array[:count] if per_input else array[0]


def check_token_method(method: Any, options: Dict[str, Any]) -> None:
    """A registered method explaining token ids needs an ``input_layer`` setting, and it must be given."""
    if method is None:
        return  # a factory or an unregistered class: its needs are unknown until it is built
    if "input_layer" not in method.settings.names():
        raise ValueError(f"`method` {method.name!r} cannot explain token ids: it has no `input_layer` "
                         "to move in the embedding space. Received: validation_data of token ids")
    if options.get("input_layer") is None:
        raise ValueError("`input_layer` is required to explain token ids (N, T): name the model's Embedding "
                         "layer (its output space is where the path moves). Received: input_layer=None")


def check_path_strip(path_strip: Any, input_kind: str, method: Any, name: str) -> bool:
    """``path_strip`` checked: a bool, for image inputs explained by a method that returns its path."""
    if not isinstance(path_strip, bool):
        raise TypeError(f"`path_strip` must be a bool. Received: path_strip={path_strip!r}")
    if path_strip and input_kind != "images":
        raise ValueError(f"`path_strip` draws the GradPath of images (N, H, W[, C]). Received: {input_kind} inputs")
    if path_strip and (method is None or "path" not in method.extra_outputs):
        takers = ", ".join(repr(key) for key, entry in methods.METHODS.items() if "path" in entry.extra_outputs)
        raise ValueError(f"`path_strip` needs a method that returns its path ({takers}). Received: method {name!r}")
    return path_strip


def check_smooth(smooth: Any, input_kind: str) -> Optional[SmoothSettings]:
    """``smooth`` checked: ``None``, a kind (``"smoothgrad"``, ``"smoothgrad_sq"``, ``"vargrad"``) or a dict of
    some of ``kind``, ``samples``, ``noise`` and ``seed`` (:func:`tf_ig2.smooth`); ``samples`` defaults to
    :data:`tf_ig2.defaults.CALLBACK_SMOOTH_SAMPLES`, the others to the noise tunnel's defaults.

    Raises:
        TypeError, ValueError: On a malformed setting, or token inputs (noise cannot move token ids).
    """
    if smooth is None:
        return None
    options = {"kind": smooth} if isinstance(smooth, str) else smooth
    if isinstance(options, dict):
        options = {"samples": defaults.CALLBACK_SMOOTH_SAMPLES, **options}
    settings = SmoothSettings.from_options(options, "smooth")
    if input_kind == "tokens":
        raise ValueError(f"`smooth` adds Gaussian noise to float inputs, which token ids are not; log token "
                         f"attributions without it. Received: smooth={smooth!r} for token inputs")
    return settings


def build_explainer(factory: Any, model: Any, options: Dict[str, Any], reference_keyword: Optional[str],
                    references: Any) -> Tuple[Any, Optional[str]]:
    """``(explainer, reference keyword)``: the callback's explainer for ``model``, built by ``factory``.

    An unregistered explainer's reference keyword is read from the method it declares, or its
    ``reference_name``, once it exists.

    Raises:
        TypeError: If the factory returns no explainer.
        ValueError: If the explainer needs references and none were given.
    """
    explainer = factory(model, **options)
    if not callable(getattr(explainer, "explain", None)):
        raise TypeError(f"The explainer factory must return an object with an `explain` method. "
                        f"Received: {type(explainer).__name__}")
    if reference_keyword is None:
        registered = methods.METHODS.get(getattr(explainer, "method", None))
        reference_keyword = (registered.reference_keyword if registered is not None
                             else getattr(explainer, "reference_name", None))
        if registered is not None and registered.references_required and references is None:
            raise ValueError(f"The explainer needs `{reference_keyword}`; pass `references`. Received: references=None")
    return explainer, reference_keyword

