"""IG²: GradPath search fused with path integration (Zhuo & Ge, TPAMI 2024, Eqs. 7-10).

For an input x, a reference x_r, a representation phi, a target score f_c, k steps of length eta
and bounds [lo, hi]::

    gamma_0     = x
    g_j         = grad_z ||phi(z) - phi(x_r)||^2  at z = gamma_j
    gamma_{j+1} = clip(gamma_j - eta * g_j / ||g_j||_2, lo, hi)          (GradPath; a zero g_j: no move)
    GradCF_r    = gamma_k                                                   (the counterfactual baseline)
    A(x)        = mean_r sum_{j<k} (gamma_j - gamma_{j+1}) * grad f_c(gamma_j)   (IG² attribution)

Completeness: ``sum A(x) = f_c(x) - mean_r f_c(GradCF_r)`` up to the discretisation error that
:class:`~tf_ig2.Explanation` reports as ``delta``. Each step costs one forward pass and two
gradients, and runs inside one compiled ``tf.while_loop`` over a batch of pairs: there is no host
round trip per step and the path is not stored unless asked for.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from . import defaults, validation
from .explanation import Explanation
from .pairs import PairExplainer
from .targets import LayerSpec, ModelView, Targets, target_scores

Bounds = Optional[Tuple[np.ndarray, np.ndarray]]


def _squared_distance(representation: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
    difference = tf.cast(representation, tf.float32) - reference
    return tf.reduce_sum(tf.reshape(tf.square(difference), [tf.shape(difference)[0], -1]), axis=1)


def _per_pair_norm(values: tf.Tensor, rank: int) -> tf.Tensor:
    """``(P, 1, ..., 1)`` L2 norm over all non-batch axes."""
    return tf.sqrt(tf.reduce_sum(tf.square(values), axis=list(range(1, rank + 1)), keepdims=True))


def integrate_gradpath(
    view: ModelView,
    inputs: tf.Tensor,
    references: tf.Tensor,
    targets: Any,
    *,
    steps: int,
    step_size: Union[str, float] = defaults.AUTO,
    value_range: Bounds = None,
    return_path: bool = False,
    model_inputs: Any = None,
    reference_model_inputs: Any = None,
    movable: Optional[tf.Tensor] = None,
) -> Dict[str, tf.Tensor]:
    """Searches the GradPath of each (input, reference) pair and integrates along it.

    A pure tensor function: run it eagerly, or inside ``tf.function`` as :class:`IG2` does.

    Args:
        view: The model's representation and score (:class:`~tf_ig2.targets.ModelView`).
        inputs: ``(P, *S)`` float32, the explained input of each pair.
        references: ``(P, *S)`` float32, the reference of each pair.
        targets: ``(P,)`` int32 class indices, or a callable mapping outputs to ``(P,)`` scores.
        steps: k, the number of path steps.
        step_size: eta, or ``"auto"`` for ``AUTO_STEP_FACTOR * ||x - x_r||_2 / steps`` per pair.
        value_range: ``(low, high)`` arrays or tensors broadcastable to ``S``, or ``None`` for no
            clipping.
        return_path: Also return the ``(P, steps + 1, *S)`` path.
        model_inputs: With a view that has an ``input_layer`` (e.g. an embedding), the raw
            ``(P, ...)`` model inputs of the explained side; ``inputs`` and ``references`` are
            then points in that layer's output space.
        reference_model_inputs: The raw model inputs of the references, likewise.
        movable: Optional ``(P, *S)`` (or broadcastable) 0/1 mask; features where it is 0 never
            move (padding tokens), so they receive exactly zero attribution.

    Returns:
        A dict of tensors: ``attributions`` ``(P, *S)`` (one pair's sum, not yet averaged),
        ``counterfactuals`` ``(P, *S)`` GradCF, ``target_scores`` ``(P,)`` f_c(x),
        ``counterfactual_scores`` ``(P,)`` f_c(GradCF), ``representation_distance`` ``(P, 2)``
        Euclidean distance to phi(x_r) at the start and the end, and ``path`` when asked for.
    """
    rank = len(inputs.shape) - 1
    reference_representation, _ = view(references, model_inputs=reference_model_inputs)
    reference_representation = tf.stop_gradient(tf.cast(reference_representation, tf.float32))
    if step_size == defaults.AUTO:
        eta = defaults.AUTO_STEP_FACTOR * _per_pair_norm(inputs - references, rank) / steps
    else:
        eta = tf.constant(float(step_size), tf.float32)
    low = high = None
    if value_range is not None:
        low, high = (tf.convert_to_tensor(bound, tf.float32) for bound in value_range)

    def distance_and_score(point: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        representation, outputs = view(point, model_inputs=model_inputs)
        return _squared_distance(representation, reference_representation), target_scores(outputs, targets)

    def step(j, point, total, first_score, first_distance, path):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(point)
            distance, score = distance_and_score(point)
        distance_gradient = tape.gradient(distance, point, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        score_gradient = tape.gradient(score, point, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        del tape
        if movable is not None:
            distance_gradient = distance_gradient * movable
        direction = tf.math.divide_no_nan(distance_gradient, _per_pair_norm(distance_gradient, rank))
        following = point - eta * direction
        if low is not None:
            following = tf.minimum(tf.maximum(following, low), high)
        total = total + (point - following) * score_gradient
        first = tf.equal(j, 0)
        first_score = tf.where(first, score, first_score)
        first_distance = tf.where(first, distance, first_distance)
        if return_path:
            path = path.write(j + 1, following)
        return j + 1, following, total, first_score, first_distance, path

    pairs = tf.shape(inputs)[0]
    path = tf.TensorArray(tf.float32, size=steps + 1, element_shape=inputs.shape) if return_path else tf.zeros([0])
    if return_path:
        path = path.write(0, inputs)
    zeros = tf.zeros([pairs], tf.float32)
    _, end, total, start_score, start_distance, path = tf.while_loop(
        lambda j, *_: j < steps,
        step,
        (tf.constant(0), inputs, tf.zeros_like(inputs), zeros, zeros, path),
        parallel_iterations=1,
    )
    end_distance, end_score = distance_and_score(end)
    results = {
        "attributions": total,
        "counterfactuals": end,
        "target_scores": start_score,
        "counterfactual_scores": end_score,
        "representation_distance": tf.sqrt(tf.stack([start_distance, end_distance], axis=1)),
    }
    if return_path:
        results["path"] = tf.transpose(path.stack(), [1, 0] + list(range(2, rank + 2)))
    return results


class IG2(PairExplainer):
    """IG² explainer for a Keras model; holds the settings and the compiled GradPath loop.

    Args:
        model: A Keras model (Sequential, functional or subclassed) taking float inputs
            ``(N, *S)`` and returning ``(N, C)`` scores (or anything a callable target reads).
        representation_layer: Where GradPath measures the distance to the reference: ``None``
            for the input of the model's last layer (the penultimate representation), a layer
            name, an index into ``model.layers``, a Keras layer, or ``"output"``.
        steps: k, the number of GradPath steps (default :data:`tf_ig2.defaults.IG2_STEPS`).
        step_size: eta, a positive float, or ``"auto"``: ``2 * ||x - x_r||_2 / steps`` per pair,
            so the path is about twice as long as the straight line to the reference.
        value_range: ``(low, high)`` scalars or arrays broadcastable to one input; every path
            point is clipped to it. ``None`` for no clipping.
        batch_size: The most (input, reference) pairs processed at once; ``None`` for all.
        input_layer: For inputs that cannot move along a gradient (token ids), the layer whose
            output space the path lives in, typically an ``Embedding``: a name, an index, or the
            layer. Inputs and references are then raw model inputs (e.g. ``(N, T)`` token ids),
            ``value_range=None`` clips to the per-dimension range of the embedding table, and
            the attribution of each token is the sum over the embedding axis.
        padding_id: With ``input_layer``, the input value of padding positions, which never move
            and get zero attribution (``None``: no padding).
        output: For a model with several outputs (a list or a dict), the output to explain: a
            name or an index.

    Example:
        >>> explainer = tf_ig2.IG2(model, steps=64, value_range=(0.0, 1.0))
        >>> explanation = explainer.explain(images, references)
        >>> explanation.attributions.shape == images.shape
    """

    method = "ig2"

    def __init__(self, model: Any, *, representation_layer: LayerSpec = None, steps: int = defaults.IG2_STEPS,
                 step_size: Union[str, float] = defaults.AUTO, value_range: Any = None,
                 batch_size: Optional[int] = None, input_layer: LayerSpec = None,
                 padding_id: Optional[int] = defaults.PADDING_ID, output: Union[None, str, int] = None):
        self.steps = validation.positive_int("steps", steps)
        self.step_size = validation.step_size(step_size)
        self.value_range = validation.value_range(value_range)
        if padding_id is not None and (isinstance(padding_id, bool) or not isinstance(padding_id, (int, np.integer))):
            raise TypeError(f"`padding_id` must be None or an int. Received: padding_id={padding_id!r}")
        self.padding_id = padding_id
        super().__init__(model, batch_size=batch_size, representation_layer=representation_layer,
                         need_representation=True, input_layer=input_layer, output=output)
        #: With an embedding ``input_layer`` and no ``value_range``, the path is clipped to the
        #: per-dimension range of the embedding table, read inside the compiled graph so that it
        #: follows the table as training changes it.
        self._table = None
        if self._view.input_layer is not None and self.value_range is None:
            self._table = getattr(self._view.input_layer, "embeddings", None)

    @property
    def representation(self) -> str:
        """A description of the representation GradPath moves in."""
        return self._view.representation_description

    def _build(self, sample_shape, options, score):
        return_path, raw = options
        view, steps, step_size, bounds = self._view, self.steps, self.step_size, self.value_range
        spec = tf.TensorSpec([None, *sample_shape], tf.float32)
        target_spec = tf.TensorSpec([None], tf.int32)
        settings = dict(steps=steps, step_size=step_size, value_range=bounds, return_path=return_path)
        if raw is None:
            @tf.function(input_signature=[spec, spec, target_spec])
            def search(inputs, references, targets):
                return integrate_gradpath(view, inputs, references, score if callable(score) else targets, **settings)
            return search

        raw_shape, raw_dtype = raw
        raw_spec = tf.TensorSpec([None, *raw_shape], raw_dtype)
        mask_spec = tf.TensorSpec([None, *raw_shape], tf.float32)

        table = self._table

        @tf.function(input_signature=[spec, spec, target_spec, raw_spec, mask_spec, raw_spec])
        def search_embedded(inputs, references, targets, model_inputs, movable, reference_model_inputs):
            movable = tf.reshape(movable, tf.concat([tf.shape(movable), [1] * (len(sample_shape) - len(raw_shape))], 0))
            options = dict(settings)
            if table is not None:
                values = tf.cast(table, tf.float32)
                options["value_range"] = (tf.reduce_min(values, axis=0), tf.reduce_max(values, axis=0))
            return integrate_gradpath(view, inputs, references, score if callable(score) else targets,
                                      model_inputs=model_inputs, reference_model_inputs=reference_model_inputs,
                                      movable=movable, **options)
        return search_embedded

    def _embed(self, model_inputs: np.ndarray) -> np.ndarray:
        """``input_layer`` outputs ``(M, *T, D)`` for raw inputs ``(M, *T)``, chunked and compiled."""
        key = ("embed", model_inputs.shape[1:], model_inputs.dtype.str)
        if key not in self._forward_functions:
            spec = tf.TensorSpec([None, *model_inputs.shape[1:]], tf.as_dtype(model_inputs.dtype))
            self._forward_functions[key] = tf.function(self._view.embed, input_signature=[spec])
        embed = self._forward_functions[key]
        size = self.batch_size or len(model_inputs)
        return np.concatenate([embed(tf.constant(model_inputs[start:start + size])).numpy()
                               for start in range(0, len(model_inputs), size)])

    def explain(self, inputs: Any, references: Any, targets: Targets = None, *,
                return_path: bool = False) -> Explanation:
        """Explains ``inputs`` against ``references``.

        Args:
            inputs: ``(N, *S)`` float array or tensor.
            references: ``(R, *S)`` shared by all inputs, or ``(N, R, *S)`` per input.
            targets: ``None`` (the predicted class), an int, ``(N,)`` ints, or a callable mapping
                the model output to ``(N,)`` scores.
            return_path: Also return the whole ``(N, R, steps + 1, *S)`` path. Memory then grows
                with ``steps``: the peak is about 3 to 5 times the path's own size (the compiled
                loop's buffer, its stacked copy and the result); use ``batch_size`` to bound it.

        Returns:
            An :class:`~tf_ig2.Explanation` with ``attributions`` ``(N, *S)``, ``counterfactuals``
            (GradCF) ``(N, R, *S)``, the scores, ``delta`` and ``representation_distance``
            ``(N, R, 2)``.

        Raises:
            TypeError, ValueError: On malformed inputs, references, targets or value ranges.
        """
        if not isinstance(return_path, bool):
            raise TypeError(f"`return_path` must be a bool. Received: return_path={return_path!r}")
        if self._view.input_layer is not None:
            return self._explain_embedded(inputs, references, targets, return_path)
        inputs = self._check_inputs(inputs)
        references = validation.references_array("references", references, inputs.shape)
        validation.fits_value_range("inputs", inputs, self.value_range, inputs.shape[1:])
        validation.fits_value_range("references", references, self.value_range, inputs.shape[1:])
        class_indices, score = self._resolve_targets(targets, inputs)
        function = self._function(tuple(inputs.shape[1:]), (return_path, None), score)
        results = self._run_pairs(function, inputs, references, class_indices)
        return self._finish(results, class_indices)

    def _explain_embedded(self, model_inputs: Any, references: Any, targets: Targets,
                          return_path: bool) -> Explanation:
        """IG² in ``input_layer``'s output space; attributions are summed over its last axis."""
        model_inputs = validation.model_input_array("inputs", model_inputs)
        validation.fits_model_input("inputs", model_inputs.shape, self._view.input_shape)
        references = validation.references_array("references", references, model_inputs.shape, integer=True)
        if references.dtype != model_inputs.dtype:
            raise TypeError(f"`references` must have the dtype of `inputs` ({model_inputs.dtype}). "
                            f"Received: {references.dtype}")
        points = self._embed(model_inputs)
        reference_points = self._embed(references.reshape((-1,) + references.shape[2:]))
        reference_points = reference_points.reshape(references.shape[:2] + reference_points.shape[1:])
        # Rows of the embedding table lie inside the table's range; a user range must hold them too.
        validation.fits_value_range("inputs", points, self.value_range, points.shape[1:])
        validation.fits_value_range("references", reference_points, self.value_range, points.shape[1:])
        movable = np.ones(model_inputs.shape, np.float32)
        if self.padding_id is not None:
            movable[model_inputs == self.padding_id] = 0.0
        class_indices, score = self._resolve_targets(targets, model_inputs)
        raw = (tuple(model_inputs.shape[1:]), tf.as_dtype(model_inputs.dtype))
        function = self._function(tuple(points.shape[1:]), (return_path, raw), score)
        results = self._run_pairs(function, points, reference_points, class_indices,
                                  input_extras=(model_inputs, movable), reference_extras=(references,))
        explanation = self._finish(results, class_indices)
        token_axis = explanation.attributions.ndim - 1
        return dataclasses.replace(explanation, attributions=explanation.attributions.sum(axis=token_axis))

    def _finish(self, results: Dict[str, np.ndarray], class_indices: Optional[np.ndarray]) -> Explanation:
        return self._explanation(
            results, class_indices,
            representation_distance=results["representation_distance"].astype(np.float32),
            path=results.get("path"),
            representation=self.representation,
        )


#: The explainers behind :func:`ig2`, most recently used last; bounded, since each holds its model.
_EXPLAINERS: "collections.OrderedDict[Tuple[Any, ...], IG2]" = collections.OrderedDict()
_CACHE_SIZE = 8


def _options_key(options: Dict[str, Any]) -> Tuple[Any, ...]:
    key = []
    for name in sorted(options):
        value = options[name]
        if isinstance(value, (list, tuple)):
            value = tuple(np.asarray(item, np.float32).tobytes() + str(np.shape(item)).encode() for item in value)
        elif not isinstance(value, (str, int, float, type(None))):
            value = id(value)
        key.append((name, value))
    return tuple(key)


def ig2(model: Any, inputs: Any, references: Any, targets: Targets = None, *, return_path: bool = False,
        **options: Any) -> Explanation:
    """Explains ``inputs`` with IG²; the functional form of :class:`IG2`.

    The compiled loop is cached per model and settings, so repeated calls with inputs of the same
    shape do not retrace.

    Args:
        model: A Keras model.
        inputs: ``(N, *S)`` float array or tensor.
        references: ``(R, *S)`` or ``(N, R, *S)``.
        targets: ``None``, an int, ``(N,)`` ints or a callable (see :meth:`IG2.explain`).
        return_path: Also return the ``(N, R, steps + 1, *S)`` path.
        **options: Any of :class:`IG2`'s settings (``representation_layer``, ``steps``,
            ``step_size``, ``value_range``, ``batch_size``, ``input_layer``, ``padding_id``,
            ``output``).

    Returns:
        An :class:`~tf_ig2.Explanation`.
    """
    settings = [name for name in inspect.signature(IG2.__init__).parameters if name not in ("self", "model")]
    unknown = set(options) - set(settings)
    if unknown:
        raise TypeError(f"ig2() got unknown option(s) {sorted(unknown)}; expected IG2's settings "
                        f"{', '.join(settings)}")
    key = (id(model),) + _options_key(options)
    explainer = _EXPLAINERS.get(key)
    if explainer is None or explainer.model is not model:
        explainer = IG2(model, **options)
    _EXPLAINERS[key] = explainer
    _EXPLAINERS.move_to_end(key)
    while len(_EXPLAINERS) > _CACHE_SIZE:
        _EXPLAINERS.popitem(last=False)
    return explainer.explain(inputs, references, targets, return_path=return_path)
