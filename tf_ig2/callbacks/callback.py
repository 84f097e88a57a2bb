"""Keras callbacks that log attributions and their diagnostics to TensorBoard during training.

Every ``freq`` epochs the callback explains a fixed batch of validation inputs with IG² (Zhuo & Ge,
TPAMI 2024, Eqs. 7-10), straight-line Integrated Gradients (Sundararajan et al., 2017) or Guided IG
(Kapishnikov et al., 2021) at the model's current weights, and writes with ``tf.summary`` at
``step=epoch``, in the run folder ``output_dir/<name>`` (``<name>`` defaults to the method):

- images ``(N, H, W[, C])``: ``<name>/panels``, one panel per explained input (the input, GradCF or
  the baseline, the signed attribution with its colour bar, the magnitude on the grey input), and
  ``<name>/overlay``, the input blended with its magnitude map;
- tabular rows ``(N, F)``: ``<name>/bars``, one bar chart of the feature attributions per row;
- token ids ``(N, T)`` (IG² with ``input_layer``, the path moving in the embedding space):
  ``<name>/tokens``, one heat strip of the per-token attributions ``sum_d A[t, d]`` per sentence
  (padding left out), and ``<name>/text``, the same as a Markdown table of tokens and values;
- ``<name>/path`` (images, ``path_strip=True``, IG² only): the GradPath of the first input towards
  its first reference at 0, 25, 50, 75 and 100% of the steps, a film strip
  (:func:`tf_ig2.visualize.path_strip`); that pair is explained once more with its whole path;
- ``<name>/grid``: the overlays, charts or strips of the epoch tiled into one image;
- ``<name>/completeness_delta``: mean ``|sum(A) - (f_c(x) - f_c(x'))|`` over the inputs;
- ``<name>/relative_completeness_delta``: median ``|delta| / |f_c(x) - f_c(x')|``;
- ``<name>/representation_distance``: mean distance ``||phi(GradCF) - phi(x_r)||`` left at the
  end of the GradPath (IG² only);
- ``<name>/target_score``: mean explained score ``f_c(x)``.

With several classes per input (``class_index`` ``(N, T)``, ``[[c_1, ..., c_T]]`` or ``"top-K"``; see
:mod:`tf_ig2.callbacks.targets`) one ``explain`` call per logged epoch explains them all, and every
tag but ``<name>/path`` and ``<name>/representation_distance`` (shared by the targets) is logged once
per target, its tag ending in the target: ``<name>/panels/class_3``, ``<name>/panels/top_1``, ...

``references="other_class"`` or ``"relevant_class"`` picks the references from a labelled pool (see
:mod:`tf_ig2.callbacks.pickers`). ``smooth="vargrad"`` (or a dict of noise tunnel settings) logs the
attributions smoothed by :func:`tf_ig2.smooth`; squares and variances have no completeness delta, so their
two completeness tags are not logged.

The pictures come from the displays of :mod:`tf_ig2.callbacks.displays`, the checks of
``validation_data`` from :mod:`tf_ig2.callbacks.inputs`. The arguments follow tf-explain's
``IntegratedGradientsCallback`` (``validation_data``, ``class_index``, ``output_dir``), so a
tf-explain user changes one line.
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import keras
import numpy as np

from tf_ig2 import defaults, diagnostics, folders, validation
from tf_ig2.callbacks import inputs as callback_inputs
from tf_ig2.callbacks import pickers
from tf_ig2.callbacks import targets as callback_targets
from tf_ig2.callbacks.displays import make_display
from tf_ig2.callbacks.inputs import INPUT_KINDS, choose_targets, split_validation_data
from tf_ig2.callbacks.targets import TargetChoice, choose
from tf_ig2.callbacks.writer import EventsWriter
from tf_ig2.explanation import Explanation
from tf_ig2.methods import registry as methods
from tf_ig2.methods.noise_tunnel import smooth as noise_tunnel
from tf_ig2.visualize import encode_images, encode_png, token_markdown

#: Public names; the input checks and picture helpers are defined elsewhere and kept importable from here.
__all__ = ["AttributionCallback", "EventsWriter", "IG2Callback", "INPUT_KINDS", "check_name", "choose_targets",
           "encode_images", "encode_png", "resolve_method", "split_validation_data", "token_markdown"]

logger = logging.getLogger("tf_ig2.callbacks")  # the public package's name, for users' logging settings

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")

#: What `method` may be: a registered method's name, an explainer class or a factory callable.
MethodChoice = Union[str, type, Callable[..., Any]]


def resolve_method(method: MethodChoice, options: Dict[str, Any]) -> Tuple[Callable[..., Any], str, Any]:
    """Returns ``(factory, default name, registered method or None)``; checks a registered method's options.

    Raises:
        TypeError, ValueError: On an unknown method or option, or a class without ``explain``.
    """
    if isinstance(method, str):
        registered = methods.get_method(method)
        registered.check_options(options)
        return registered.build, registered.name, registered
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


def check_name(name: Any) -> str:
    """The run folder and tag prefix: letters, digits, ``_``, ``-`` or ``.``."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError("`name` (the run folder and tag prefix) must be a non-empty string of letters, digits, "
                         f"'_', '-' or '.'; a factory without a usable __name__ needs one. Received: name={name!r}")
    return name


class AttributionCallback(keras.callbacks.Callback):
    """Logs attributions of a fixed batch of validation inputs to TensorBoard every few epochs.

    Images, tabular rows and token ids are shown each by their display
    (:mod:`tf_ig2.callbacks.displays`; see the module docstring for the tags).
    The explainer (and its compiled function) is built once, when
    training begins, and reused every epoch: it reads the model's live weights, runs it in
    inference mode and changes no weight, optimizer slot or metric. A failure while logging
    becomes a warning and training goes on.

    Args:
        method: A name of :data:`tf_ig2.methods.METHODS` (``"ig2"``, ``"ig"``, ...); an explainer class taking
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
            default). Or a picker's name, ``"other_class"`` or ``"relevant_class"``: the callback
            picks ``references_per_input`` references per input from ``reference_pool`` or the
            labelled ``validation_data`` (see :mod:`tf_ig2.callbacks.pickers`).
        class_index: The explained classes. One per input: one int, or ``N`` ints (a flat
            sequence is always one class per input). Several per input: an ``(N, T)`` array or
            list of lists, ``[[c_1, ..., c_T]]`` (shape ``(1, T)``) for the same T classes for
            every input, or ``"top-K"`` for each input's K highest-scoring classes at each logged
            epoch. ``None``: the labels ``y`` if given, else the predicted class. See
            :mod:`tf_ig2.callbacks.targets`.
        output_dir: Log folder; the callback writes to the run folder ``output_dir/<name>``, so
            the log folder of ``keras.callbacks.TensorBoard`` shows both side by side.
        freq: Log at the end of every epoch whose index is a multiple of ``freq`` (0, freq, ...).
        max_outputs: The most inputs explained and logged per epoch (default
            ``defaults.CALLBACK_INPUTS``).
        max_references: The most references (or baselines) per input used, the first ones;
            ``None`` for all (default ``defaults.CALLBACK_REFERENCES``). Without a ``steps``
            option, IG² runs ``defaults.CALLBACK_STEPS`` steps (see docs/callback.md for the cost).
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
        path_strip: Images and IG² only: also log ``<name>/path``, the film strip of the first
            input's GradPath towards its first reference. Only that pair's path is kept
            (``steps + 1`` points), explained again with ``return_path=True`` each logged epoch.
        reference_pool: With a picker's name as ``references``: ``(x_pool, y_pool)``, candidate
            references shaped like the inputs and their labels (``(M,)`` ints or ``(M, C)``
            one-hot); ``None`` picks from ``validation_data``, which must then hold labels.
        references_per_input: With a picker: R, the references picked per input (``None``:
            ``defaults.REFERENCES_PER_INPUT``). ``max_references`` does not apply to them.
        references_seed: With a picker: the seed of every pick (``None``:
            ``defaults.REFERENCES_SEED``), so that the logs are reproducible.
        smooth: ``None``, or the logged attributions smoothed by a noise tunnel (:func:`tf_ig2.smooth`):
            its kind (``"smoothgrad"``, ``"smoothgrad_sq"``, ``"vargrad"``) or a dict of some of ``kind``,
            ``samples`` (default ``defaults.CALLBACK_SMOOTH_SAMPLES``), ``noise`` and ``seed``. Logging then
            costs ``samples`` explanations per input. Not for token inputs.
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
        >>> top3 = tf_ig2.callbacks.IG2Callback((x_val, y_val), references="relevant_class", class_index="top-3",
        ...                                     reference_pool=(x_train, y_train), value_range=(0.0, 1.0))
    """

    def __init__(self, method: MethodChoice, validation_data: Any, references: Any = None, class_index: Any = None,
                 output_dir: Union[str, "os.PathLike[str]"] = defaults.CALLBACK_OUTPUT_DIR, freq: int = 1,
                 max_outputs: int = defaults.CALLBACK_INPUTS, *,
                 max_references: Optional[int] = defaults.CALLBACK_REFERENCES, name: Optional[str] = None,
                 alpha: float = defaults.OVERLAY_ALPHA, percentile: float = defaults.HEATMAP_PERCENTILE,
                 colormap: str = defaults.HEATMAP_COLORMAP, columns: Optional[int] = None,
                 min_display_size: int = defaults.CALLBACK_MIN_DISPLAY_SIZE, input_kind: Optional[str] = None,
                 feature_names: Optional[Sequence[str]] = None, top: Optional[int] = None,
                 vocabulary: Union[None, Sequence[str], Mapping[int, str]] = None, path_strip: bool = False,
                 reference_pool: Optional[Tuple[Any, Any]] = None, references_per_input: Optional[int] = None,
                 references_seed: Optional[int] = None, smooth: Any = None, **explainer_options: Any):
        super().__init__()
        self._factory, default_name, self._method = resolve_method(method, explainer_options)
        self.name = check_name(name if name is not None else default_name)
        self.freq = validation.positive_int("freq", freq)
        self.max_outputs = validation.positive_int("max_outputs", max_outputs)
        self.max_references = validation.optional_positive_int("max_references", max_references)
        if not isinstance(output_dir, (str, os.PathLike)):
            raise TypeError(f"`output_dir` must be a path (str or os.PathLike). Received: output_dir={output_dir!r}")
        self.output_dir = os.fspath(output_dir)
        self.run_dir = os.path.join(self.output_dir, self.name)
        self.input_kind = callback_inputs.resolve_input_kind(input_kind, validation_data, explainer_options,
                                                             feature_names=feature_names, top=top,
                                                             vocabulary=vocabulary)
        inputs, labels = split_validation_data(validation_data, self.input_kind)
        self.inputs = inputs[:self.max_outputs]
        if self.input_kind == "tokens":
            callback_inputs.check_token_method(self._method, explainer_options)
        self.display = make_display(
            self.input_kind, self.name, self.inputs, columns=columns, alpha=alpha, percentile=percentile,
            colormap=colormap, min_display_size=min_display_size, value_range=explainer_options.get("value_range"),
            feature_names=feature_names, top=top, vocabulary=vocabulary,
            padding_id=callback_inputs.padding_id(explainer_options.get("padding_id", defaults.PADDING_ID)))
        self.path_strip = callback_inputs.check_path_strip(path_strip, self.input_kind, self._method, self.name)
        #: The noise tunnel's settings (:class:`tf_ig2.methods.noise_tunnel.SmoothSettings`), or ``None``.
        self.smooth = callback_inputs.check_smooth(smooth, self.input_kind)
        self.class_index = class_index
        self.target_choice: TargetChoice = choose(class_index, labels, len(inputs)).head(len(self.inputs))
        self._reference_keyword = None if self._method is None else self._method.reference_keyword
        self.picker = pickers.from_arguments(references, reference_pool, references_per_input, references_seed,
                                             inputs, labels, lambda pair: split_validation_data(pair, self.input_kind))
        self.explainer_options = dict(explainer_options)
        if self.picker is None:
            self.references = callback_inputs.check_references(
                references, inputs, self.input_kind, keyword=self._reference_keyword,
                required=self._method is not None and self._method.references_required, count=len(self.inputs),
                max_references=self.max_references)
        if self.input_kind != "tokens":  # for token ids, value_range bounds the embedding space
            bounds = validation.value_range(explainer_options.get("value_range"))
            validation.fits_value_range("validation_data", self.inputs, bounds, inputs.shape[1:])
            if self.picker is not None:
                validation.fits_value_range(self.picker.source, self.picker.pool, bounds, inputs.shape[1:])
            elif self.references is not None and self.references.ndim > 0:
                validation.fits_value_range("references", self.references, bounds, inputs.shape[1:])
        if self.picker is not None:  # picked now when the classes are known, else at every logged epoch
            fixed = self.target_choice.fixed
            explained = None if not fixed else self.targets.reshape(len(self.inputs), -1)
            self.picker.check_enough(explained, self.target_choice.count or 1)
            self.references = None if self.picker.needs_model(fixed) else self._checked_picks(
                self.picker.pick(self.targets))
        if self._method is not None and self._method.callback_steps is not None and "steps" not in explainer_options:
            self.explainer_options["steps"] = self._method.callback_steps
        self._explainer = self._tunnel = None
        self._writer: Optional[EventsWriter] = None
        self._lock: Optional[folders.FolderLock] = None
        self._training = False

    @property
    def targets(self) -> Optional[np.ndarray]:
        """The explained classes of the logged inputs: ``(n,)``, ``(n, T)``, or ``None`` when the model
        chooses them at each logged epoch (its predicted class, or ``"top-K"``)."""
        return self.target_choice.indices

    @property
    def top_k(self) -> Optional[int]:
        """K for ``class_index="top-K"``, else ``None``."""
        return self.target_choice.top_k

    @property
    def target_tags(self) -> Optional[Tuple[str, ...]]:
        """The last tag component of each target (``"class_3"``, ``"top_1"``, ...); ``None`` for one target."""
        return self.target_choice.tag_suffixes()

    def _checked_picks(self, picked: Any) -> np.ndarray:
        """Picked ``(n, R, *S)`` references checked like given ones (token ids cast to the inputs' dtype)."""
        return callback_inputs.check_references(picked, self.inputs, self.input_kind, keyword=self._reference_keyword,
                                                required=False, count=len(self.inputs), max_references=None)

    @property
    def images(self) -> np.ndarray:
        """The explained inputs ``(n, ...)`` (the name dates from when only images were shown)."""
        return self.inputs

    # Settings of the display, kept as attributes of the callback.
    alpha = property(lambda self: getattr(self.display, "alpha", None))
    percentile = property(lambda self: getattr(self.display, "percentile", None))
    colormap = property(lambda self: getattr(self.display, "colormap", None))
    columns = property(lambda self: self.display.columns)
    min_display_size = property(lambda self: getattr(self.display, "min_display_size", None))
    feature_names = property(lambda self: getattr(self.display, "feature_names", None))
    top = property(lambda self: getattr(self.display, "top", None))
    vocabulary = property(lambda self: getattr(self.display, "vocabulary", None))
    padding_id = property(lambda self: getattr(self.display, "padding_id", None))

    def token_texts(self, index: int) -> Tuple[list, np.ndarray]:
        """Token inputs: the shown tokens of logged sentence ``index`` and their positions."""
        return self.display.token_texts(index)

    def display_factor(self) -> int:
        """The integer enlargement applied to the logged images (1 for tabular and token inputs)."""
        return self.display.factor()

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
            self._explainer, self._reference_keyword = callback_inputs.build_explainer(
                self._factory, model, self.explainer_options, self._reference_keyword, self.references)
            self._tunnel = None if self.smooth is None else noise_tunnel(self._explainer, **self.smooth.as_dict())
        return self._explainer

    def explain(self) -> Explanation:
        """Explains the logged inputs at the model's current weights, every target in one call.

        With a picker that needs the model (``"relevant_class"``, or ``"other_class"`` for classes
        the model chooses), the classes are first scored and the references picked anew (they
        are then :attr:`references`). With ``smooth``, through the noise tunnel over the explainer.

        Returns:
            The :class:`~tf_ig2.Explanation` of the first ``max_outputs`` validation inputs:
            attributions ``(n, H, W[, C])`` for images, ``(n, F)`` for tabular rows, ``(n, L)``
            per token for token ids; ``(n, T, ...)`` for T targets per input.
        """
        explainer = self._ensure_explainer()
        targets = self.target_choice.explain_targets()
        if self.picker is not None and self.picker.needs_model(self.target_choice.fixed):
            if not self.target_choice.fixed:
                targets = self.model_targets()
            self.references = self._checked_picks(self.picker.pick(
                targets, model=self.model, inputs=self.inputs, options=self.explainer_options))
        arguments: Dict[str, Any] = {"targets": targets}
        explainer = explainer if self._tunnel is None else self._tunnel
        if self.references is not None:
            if self._reference_keyword is not None:
                arguments[self._reference_keyword] = self.references
            else:
                return explainer.explain(self.images, self.references, **arguments)
        return explainer.explain(self.images, **arguments)

    def model_targets(self) -> np.ndarray:
        """The classes the model gives the logged inputs now: ``(n,)`` predicted, or ``(n, K)`` for ``"top-K"``
        (:func:`tf_ig2.callbacks.targets.model_targets`); the fixed ones when ``class_index`` or labels give them."""
        return self.targets if self.target_choice.fixed else callback_targets.model_targets(
            self.target_choice, self._ensure_explainer(), self.model, self.inputs)

    def explain_path(self) -> Explanation:
        """The first logged input against its first reference, with its whole path (for ``path_strip``).

        Returns:
            An :class:`~tf_ig2.Explanation` of one input and one reference whose ``path`` is
            ``(1, 1, steps + 1, H, W[, C])``. IG²'s completeness warning is not repeated for it.
        """
        from tf_ig2.diagnostics import CompletenessWarning

        explainer = self._ensure_explainer()
        if self.references is None and self.picker is not None:  # picked at each logged epoch: pick them now
            self.explain()
        references = self.references
        first = references[:1, :1] if references.ndim == self.inputs.ndim + 1 else references[:1]
        # The path does not depend on the target: the first input's first (or predicted) class is explained.
        targets = None if self.targets is None else self.targets.reshape(len(self.inputs), -1)[:1, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CompletenessWarning)
            return explainer.explain(self.inputs[:1], **{self._reference_keyword: first}, targets=targets,
                                     return_path=True)

    # -- what is logged --------------------------------------------------------------------------
    def summaries(self, explanation: Explanation,
                  path_explanation: Optional[Explanation] = None) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
        """The images and scalars logged for one explanation.

        Args:
            explanation: :meth:`explain`'s result.
            path_explanation: :meth:`explain_path`'s result, for ``<name>/path``; ``None`` for none.

        Returns:
            ``(images, scalars)``: ``{tag: (k, H', W', 3) uint8 RGB}`` from the display (see
            :mod:`tf_ig2.callbacks.displays`) and ``{tag: float}``. With T targets per input, each
            target's pictures and scalars, their tags ending in ``/<target>`` (:attr:`target_tags`).
        """
        images: Dict[str, np.ndarray] = {}
        scalars: Dict[str, float] = {}
        for suffix, one in callback_targets.per_target(explanation, self.target_choice):
            if not np.all(np.isnan(one.delta)):  # smoothed squares and variances add up to no score gap
                scalars.update({
                    f"{self.name}/completeness_delta{suffix}": float(np.mean(np.abs(one.delta))),
                    f"{self.name}/relative_completeness_delta{suffix}": diagnostics.median_relative_delta(one),
                })
            scalars[f"{self.name}/target_score{suffix}"] = float(np.mean(one.target_scores))
            images.update({f"{tag}{suffix}": value for tag, value in self.display.images(one).items()})
        if explanation.representation_distance is not None:  # the path's, shared by the targets
            scalars[f"{self.name}/representation_distance"] = float(
                np.mean(explanation.representation_distance[..., -1]))
        if path_explanation is not None:
            images.update(self.display.path_images(path_explanation))
        return images, scalars

    def text_summaries(self, explanation: Explanation) -> Dict[str, str]:
        """The Markdown texts logged for one explanation (``<name>/text`` for token inputs; per target
        ``<name>/text/<target>``)."""
        texts: Dict[str, str] = {}
        for suffix, one in callback_targets.per_target(explanation, self.target_choice):
            texts.update({f"{tag}{suffix}": value for tag, value in self.display.texts(one).items()})
        return texts

    def log_explanation(self, explanation: Explanation, epoch: int,
                        path_explanation: Optional[Explanation] = None) -> None:
        """Writes the images, scalars and texts of ``explanation`` at ``step=epoch`` and flushes.

        Called by :meth:`on_epoch_end` with :meth:`explain`'s result (and, with ``path_strip``,
        :meth:`explain_path`'s); opens the summary writer if none is open.

        Raises:
            OSError: If the events file disappeared (the folder was removed or replaced).
            Exception: Whatever TensorFlow raises when the folder cannot be written.
        """
        images, scalars = self.summaries(explanation, path_explanation)
        texts = self.text_summaries(explanation)
        if self._lock is not None and not self._lock.held:
            raise OSError("another callback of this process took the run folder over")
        if self._writer is None:
            self._writer = EventsWriter(self.run_dir)
        try:
            self._writer.write(epoch, images, scalars, texts)
        except OSError:
            self._writer = None
            raise

    def _write(self, epoch: int) -> None:
        start = time.perf_counter()
        self.log_explanation(self.explain(), epoch, self.explain_path() if self.path_strip else None)
        logger.debug("Logged %s attributions for epoch %d in %.3f s", self.name, epoch, time.perf_counter() - start)

    def _warn(self, what: str, error: Exception) -> None:
        """Warns in one line that logging failed; the full traceback goes to the logger at DEBUG level."""
        message = f"{type(self).__name__} could not {what} in {self.run_dir!r}: {type(error).__name__}: {error}"
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        logger.debug("%s", message, exc_info=(type(error), error, error.__traceback__))

    # -- Keras hooks -----------------------------------------------------------------------------
    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        """Builds the explainer (errors in its settings raise), takes the run folder and opens the writer.

        A writer left open by a ``fit`` that did not end (another callback raised) is closed
        first, so each ``fit`` writes its own events file.

        Raises:
            ValueError: If the explainer cannot be built for the model, or ``class_index`` names a
                class (or ``"top-K"`` more classes) than the model's ``(N, C)`` output has.
            tf_ig2.folders.FolderInUseError: If another process is logging to the run folder.
        """
        self._close()
        self._ensure_explainer()
        callback_targets.check_classes(self.target_choice, self.class_index, self.model, self.explainer_options)
        self._take_run_folder()
        self._training = True
        if self._writer is None:
            try:
                self._writer = EventsWriter(self.run_dir)
            except Exception as error:  # noqa: BLE001 - logging must not stop training
                self._writer = None
                self._warn("open its log (training goes on; logging is retried every logged epoch)", error)

    def _take_run_folder(self) -> None:
        """Takes the run folder's lock; from another callback of this process whose ``fit`` did not end too."""
        try:
            os.makedirs(self.run_dir, exist_ok=True)
            holder = folders.held_lock(self.run_dir)
            owner = holder.owner() if holder is not None and holder.owner is not None else None
            if isinstance(owner, AttributionCallback) and owner is not self:
                warnings.warn(f"{type(self).__name__} takes the run folder {self.run_dir!r} over from another "
                              "callback of this process; give callbacks logging at once different names",
                              RuntimeWarning, stacklevel=3)
                owner._close()
            self._lock = folders.FolderLock(self.run_dir, owner=self).acquire()
        except folders.FolderInUseError:
            raise
        except OSError as error:  # an unwritable folder: logging warns every logged epoch, training goes on
            self._lock = None
            self._warn("lock its run folder", error)

    def _close(self) -> None:
        """Closes the writer and releases the run folder; a failure to close warns."""
        self._training = False
        writer, self._writer = self._writer, None
        lock, self._lock = self._lock, None
        try:
            if writer is not None:
                writer.close()
        except Exception as error:  # noqa: BLE001 - logging must not stop training
            self._warn("close its log", error)
        finally:
            if lock is not None:
                lock.release()

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Explains and logs every ``freq`` epochs; a failure warns and training goes on."""
        if not self._training or epoch % self.freq != 0:
            return
        try:
            self._write(epoch)
        except Exception as error:  # noqa: BLE001 - logging must not stop training
            self._warn(f"log {self.name} attributions at epoch {epoch}", error)

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        """Flushes and closes the summary writer and releases the run folder."""
        self._close()

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
            (token ids for token inputs); or ``"other_class"`` / ``"relevant_class"`` to have them
            picked (``reference_pool``, ``references_per_input``, ``references_seed``).
        class_index: One int or ``N`` ints (one class per input); ``(N, T)`` ints,
            ``[[c_1, ..., c_T]]`` or ``"top-K"`` for T classes per input; ``None`` for the labels,
            else the predicted class.
        output_dir: Log folder; the run folder is ``output_dir/ig2`` (or ``output_dir/<name>``).
        freq: Log every ``freq`` epochs.
        max_outputs: The most inputs explained and logged per epoch.
        **options: IG² settings (``steps``, default ``defaults.CALLBACK_STEPS``; ``step_size``,
            ``value_range``, ``representation_layer``, ``batch_size``, ``input_layer``,
            ``padding_id``, ``output``), ``max_references`` and the display settings of
            :class:`AttributionCallback` (``name``,
            ``alpha``, ``percentile``, ``colormap``, ``columns``, ``min_display_size``,
            ``input_kind``, ``feature_names``, ``top``, ``vocabulary``, and ``path_strip``: also
            log ``<name>/path``, the GradPath film strip of the first input and reference), and the
            picker's ``reference_pool``, ``references_per_input`` and ``references_seed``.

    Example:
        >>> model.fit(x, y, epochs=5, callbacks=[
        ...     tf_ig2.callbacks.IG2Callback((x_val, y_val), references=x_train[:4], steps=64,
        ...                                  value_range=(0.0, 1.0), output_dir="logs")])
        >>> picked = tf_ig2.callbacks.IG2Callback((x_val, y_val), "other_class", class_index=[[3, 5]],
        ...                                       value_range=(0.0, 1.0))   # ig2/panels/class_3, .../class_5
    """

    def __init__(self, validation_data: Any, references: Any, class_index: Any = None,
                 output_dir: Union[str, "os.PathLike[str]"] = defaults.CALLBACK_OUTPUT_DIR, freq: int = 1,
                 max_outputs: int = defaults.CALLBACK_INPUTS, **options: Any):
        super().__init__("ig2", validation_data, references=references, class_index=class_index,
                         output_dir=output_dir, freq=freq, max_outputs=max_outputs, **options)
