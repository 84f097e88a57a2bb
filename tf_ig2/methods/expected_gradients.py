r"""Expected Gradients (Erion, Janizek, Sturmfels, Lundberg & Lee, "Improving performance of deep
learning models with axiomatic attribution priors and expected gradients", Nature Machine
Intelligence 3, 2021; SHAP's ``GradientExplainer``).

Integrated Gradients averaged over a distribution of references D, the pool given as
``references`` ``(R, *S)`` (or ``(N, R, *S)``, one pool per input), instead of one baseline::

    A(x) = E_{x' ~ U(pool), alpha ~ U(0, 1)} [ (x - x') * grad f_c(x' + alpha (x - x')) ]

estimated by Monte Carlo with ``samples`` draws, one gradient each::

    A(x) ~= (1 / K) sum_{s < K} (x - x'_{j_s}) * grad f_c(x'_{j_s} + alpha_s (x - x'_{j_s}))

**The draws** are made by a numpy generator from ``seed``, references first, then alphas
(:func:`draws`)::

    generator = np.random.default_rng(seed)
    indices = generator.integers(0, R, size=samples)     # j_s: the pool reference of draw s
    alphas = generator.random(samples).astype(np.float32)  # alpha_s, in [0, 1)

so an independent loop reproduces them. Every input of a call uses these same K draws (indices into
its own pool when pools are given per input): an input's attributions then do not depend on the
other inputs of the call, on ``batch_size``, nor on how :func:`tf_ig2.explain_dataset` or the
command line group the inputs (as for IG, whose result is deterministic). The estimate of each
input is unbiased; the errors of different inputs share the draws (common random numbers).

**Completeness** holds in expectation only. For one draw,
``E_alpha[(x - x') . grad f_c(x' + alpha (x - x'))] = f_c(x) - f_c(x')`` (the fundamental theorem of
calculus along the line), so ``delta = sum A(x) - (f_c(x) - mean_s f_c(x'_{j_s}))`` is the mean of K
zero-mean terms: zero on average, with a spread falling as ``1 / sqrt(samples)``, not a
discretisation error that a finer rule removes. ``counterfactual_scores`` is that
``mean_s f_c(x'_{j_s})`` over the draws (repeats counted), so ``delta`` is exactly this Monte Carlo
gap.

**Counterfactuals** are ``(N, 1, *S)``: the mean of the drawn references
``x_bar = mean_s x'_{j_s}`` (padding positions of token inputs stay the input's). It is EG's
effective baseline: on an affine model ``f(z) = w . z + b`` the estimate is exact for any draws,
``A(x) = w * (x - x_bar)``, and ``f_c(x_bar) = counterfactual_scores`` (delta is 0). It tends to the
pool mean as ``samples`` grows, and takes ``N * S`` memory whatever R and K are.

**Cost**: K gradients per input (one forward and T backward passes for T targets), plus forward
passes of the inputs and of the distinct drawn references. ``batch_size`` bounds the (input, draw)
points (and scored rows) computed at once; per-input sums are accumulated on the host in float64.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from tf_ig2 import defaults, diagnostics
from tf_ig2.engine.compiled_model import Batch, as_list
from tf_ig2.engine.model_view import ModelView, target_scores
from tf_ig2.explanation import Explanation
from tf_ig2.methods import registry
from tf_ig2.methods.base import PairExplainer
from tf_ig2.methods.integrated_gradients import score_gradient


def draws(seed: int, samples: int, pool_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(indices, alphas)``: the pool reference ``(samples,)`` int64 and alpha ``(samples,)`` float32 of each draw.

    Made by ``np.random.default_rng(seed)``: ``integers(0, pool_size, size=samples)``, then
    ``random(samples)`` cast to float32.
    """
    generator = np.random.default_rng(seed)
    indices = generator.integers(0, pool_size, size=samples).astype(np.int64)
    alphas = generator.random(samples).astype(np.float32)
    return indices, alphas


def expected_gradients_points(view: ModelView, inputs: Any, references: Any, alphas: Any, targets: Any, *,
                              model_inputs: Any = None) -> Any:
    r"""The Expected Gradients term of each (input, draw) point; a pure tensor function.

    ``(x - x') * grad f_c(x' + alpha (x - x'))`` for P points; their mean over draws is the
    attribution.

    Args:
        view: The model's score (:class:`~tf_ig2.engine.model_view.ModelView`).
        inputs: ``(P, *S)`` float32 explained inputs x, or a list with one ``(P, *S_i)`` tensor per
            model input.
        references: Like ``inputs``: the drawn references x'.
        alphas: ``(P,)`` float32, where on the line from x' to x the gradient is taken.
        targets: ``(P,)`` int32 class indices or a callable; for T targets, ``(P, T)`` class indices
            or a callable returning ``(P, T)`` scores.
        model_inputs: With ``input_layer``\ s, the raw model inputs (one entry or ``None`` per input).

    Returns:
        Like ``inputs``: ``(P, *S_i)`` per input, or ``(P, T, *S_i)`` for T targets.
    """
    single = not isinstance(inputs, (list, tuple))
    inputs, references = as_list(inputs), as_list(references)
    alphas = tf.convert_to_tensor(alphas, tf.float32)
    differences = [x - reference for x, reference in zip(inputs, references)]
    points = [reference + tf.reshape(alphas, [-1] + [1] * (len(difference.shape) - 1)) * difference
              for reference, difference in zip(references, differences)]
    _, gradients = score_gradient(view, points, targets, model_inputs)
    attributions = [(tf.expand_dims(difference, 1) if len(gradient.shape) > len(difference.shape) else difference)
                    * gradient for difference, gradient in zip(differences, gradients)]
    return attributions[0] if single else attributions


class ExpectedGradients(PairExplainer):
    """Expected Gradients with the same targets, inputs and result as the other methods.

    Args:
        model: A Keras model.
        samples: Monte Carlo draws of a (reference, alpha) pair per input, one gradient each
            (default :data:`tf_ig2.defaults.EXPECTED_GRADIENTS_SAMPLES`, SHAP's ``nsamples``).
        seed: Seed of the numpy generator making the draws (see :func:`draws`; default
            :data:`tf_ig2.defaults.EXPECTED_GRADIENTS_SEED`). The same seed gives the same result.
        batch_size: The most (input, draw) points processed at once; ``None`` for all.
        output: For a model with several outputs, the one to explain (a name or an index).
        input_layer: For token ids, the embedding layer whose output space the lines live in (as
            for :class:`~tf_ig2.IG2`); references are token ids, attributions are summed per token.
        padding_id: With ``input_layer``, the id of padding positions, which never move and get
            zero attribution.

    Example:
        >>> explainer = ExpectedGradients(model, samples=200)
        >>> explanation = explainer.explain(images, references=x_train[:100])
    """

    method = "eg"
    reference_name = "references"

    def __init__(self, model: Any, samples: int = defaults.EXPECTED_GRADIENTS_SAMPLES, *,
                 seed: int = defaults.EXPECTED_GRADIENTS_SEED, batch_size: Optional[int] = None,
                 output: Union[None, str, int] = None, input_layer: Any = None,
                 padding_id: Optional[int] = defaults.PADDING_ID):
        self.settings = registry.ExpectedGradientsSettings(samples=samples, seed=seed, batch_size=batch_size,
                                                           output=output, input_layer=input_layer,
                                                           padding_id=padding_id)
        self.samples, self.seed = self.settings.samples, self.settings.seed
        super().__init__(model, batch_size=self.settings.batch_size, output=output, input_layer=input_layer,
                         padding_id=self.settings.padding_id)

    def _completeness_advice(self) -> str:
        return (f"Expected Gradients adds up only in expectation: delta is the Monte Carlo error of "
                f"{self.samples} draws, which falls as 1/sqrt(samples) (samples='{4 * self.samples}' halves it); "
                f"it is not a bias that a finer rule removes.")

    # -- compiled functions -------------------------------------------------------------------
    def _functions(self, batch: Batch, score: Any, width: Optional[int]) -> Tuple[Callable, Callable]:
        """``(scores, terms)``: compiled per-row functions for these shapes and targets, built once."""
        signature = self._signature(batch)
        points, _, targets, raw, _, _ = self._specs(signature, width)
        view = self.view

        def build_scores() -> Callable:
            @tf.function(input_signature=[points, targets, raw])
            def scores(values, targets, model_inputs):
                outputs = view(list(values), model_inputs=self._full_raw(model_inputs), representation=False)[1]
                return {"scores": target_scores(outputs, score if callable(score) else targets)}

            return scores

        def build_terms() -> Callable:
            @tf.function(input_signature=[points, points, tf.TensorSpec([None], tf.float32), targets, raw])
            def terms(inputs, references, alphas, targets, model_inputs):
                attributions = expected_gradients_points(view, list(inputs), list(references), alphas,
                                                         score if callable(score) else targets,
                                                         model_inputs=self._full_raw(model_inputs))
                return {"attributions": attributions}

            return terms

        return (self._compiled.function(("eg_scores", signature, width), build_scores, score),
                self._compiled.function(("eg_terms", signature, width), build_terms, score))

    # -- running --------------------------------------------------------------------------------
    def _run(self, function: Callable, total: int,
             arguments: Callable[[np.ndarray], tuple]) -> Iterator[Tuple[np.ndarray, Dict[str, Any]]]:
        """Yields ``(row indices, numpy outputs)`` of ``function`` over ``total`` rows, ``batch_size`` at a time."""
        if self.pair_wrapper is not None:
            function = self.pair_wrapper(function)
        size = self.batch_size or total
        for start in range(0, total, size):
            index = np.arange(start, min(start + size, total))
            yield index, tf.nest.map_structure(lambda value: value.numpy(), function(*arguments(index)))

    @staticmethod
    def _references(batch: Batch, rows: np.ndarray, pool_indices: np.ndarray) -> List[np.ndarray]:
        """Per model input, reference ``pool_indices[p]`` of input ``rows[p]``; padding keeps the input's values."""
        found = []
        for points, pool, movable in zip(batch.points, batch.references, batch.movable):
            owner = rows if pool.shape[0] == batch.count else np.zeros_like(rows)
            values = pool[owner, pool_indices]
            if movable is not None:  # padding never moves: its reference is the input itself
                mask = movable[rows] > 0
                values = np.where(mask.reshape(mask.shape + (1,)), values, points[rows])
            found.append(values)
        return found

    @staticmethod
    def _raw(batch: Batch, rows: np.ndarray) -> List[tf.Tensor]:
        return [tf.constant(batch.raw[index][rows]) for index in batch.embedded]

    def explain(self, inputs: Any, references: Any, targets: Any = None, *,
                top_k: Optional[int] = None) -> Explanation:
        """Explains ``inputs`` against the reference pool ``references``.

        Args:
            inputs: ``(N, *S)`` float array or tensor; for a model with several inputs, a list or
                dict with one ``(N, *S_i)`` array per input; token ids ``(N, T)`` with an
                ``input_layer``.
            references: The pool the references are drawn from: ``(R, *S)`` shared by all inputs
                or ``(N, R, *S)`` per input, in the structure of ``inputs`` (token ids ``(R, T)``
                or ``(N, R, T)`` with an ``input_layer``), e.g. a sample of training data.
            targets: As for :meth:`tf_ig2.IntegratedGradients.explain`: ``None`` (the predicted
                class), an int, ``(N,)`` ints, ``(N, T)`` ints, ``"top-K"`` or a callable.
            top_k: K, to explain the K highest logits of each input, highest first.

        Returns:
            An :class:`~tf_ig2.Explanation` with ``attributions`` shaped like ``inputs`` (``(N, L)``
            per token with an ``input_layer``), or ``(N, T, *S)`` for T targets; ``target_scores``
            f_c(x); ``counterfactual_scores`` the mean of f_c over the drawn references;
            ``counterfactuals`` ``(N, 1, *S)`` the mean of the drawn references (see the module).

        Raises:
            TypeError, ValueError: On malformed inputs, references or targets; ValueError when a
                score or gradient is not finite (naming the input and the pool reference).

        Warns:
            DegenerateWarning, CompletenessWarning: Once per explainer.
        """
        batch = self._prepare(inputs, references)
        class_indices, score = self._batch_targets(targets, batch, top_k)
        width = None if class_indices is None or class_indices.ndim == 1 else int(class_indices.shape[1])
        scores, terms = self._functions(batch, score, width)
        count, pool = batch.count, int(batch.references[0].shape[1])
        indices, alphas = draws(self.seed, self.samples, pool)
        drawn, counts = np.unique(indices, return_counts=True)
        weights = counts / self.samples
        row_targets = np.zeros((count,), np.int32) if class_indices is None else class_indices.astype(np.int32)

        # f_c(x), and f_c(x'_u) for every input and distinct drawn reference u: (N,) and (N, U) (T more).
        input_scores = self._score(scores, batch, np.arange(count), None, row_targets)
        pairs = np.arange(count * len(drawn))
        reference_scores = self._score(scores, batch, pairs // len(drawn), drawn[pairs % len(drawn)], row_targets)
        reference_scores = reference_scores.reshape((count, len(drawn)) + reference_scores.shape[1:])
        by_pool = np.zeros((count, pool) + reference_scores.shape[2:], np.float32)
        by_pool[:, drawn] = reference_scores
        finite = {"target_scores": input_scores[:, None], "counterfactual_scores": by_pool, "attributions": []}
        check = dict(end_name=registry.end_name(self.method), input_names=self.view.inputs.names)
        diagnostics.check_finite(finite, **check)  # before the gradients: the ends first

        totals, broken = self._sum_terms(terms, batch, indices, alphas, row_targets)
        finite["attributions"] = [np.where(flags, np.float32(np.nan), np.float32(0.0)) for flags in broken]
        diagnostics.check_finite(finite, **check)  # names the input and pool reference of a bad gradient

        attributions = [(total / self.samples)[:, None] for total in totals]
        means = self._mean_references(batch, drawn, weights)
        single = len(batch.points) == 1
        results = {
            "attributions": attributions[0] if single else attributions,
            "target_scores": input_scores[:, None],
            "counterfactual_scores": np.einsum("nu...,u->n...", reference_scores.astype(np.float64), weights)[:, None],
            "counterfactuals": means[0] if single else means,
        }
        return self._explanation(results, class_indices, batch)

    def _score(self, function: Callable, batch: Batch, rows: np.ndarray, pool_indices: Optional[np.ndarray],
               targets: np.ndarray) -> np.ndarray:
        """``(P,)`` (or ``(P, T)``) ``f_c`` at input ``rows[p]``, or at its reference ``pool_indices[p]``."""
        def arguments(index: np.ndarray) -> tuple:
            chosen = rows[index]
            values = ([points[chosen] for points in batch.points] if pool_indices is None
                      else self._references(batch, chosen, pool_indices[index]))
            return [tf.constant(value) for value in values], tf.constant(targets[chosen]), self._raw(batch, chosen)

        return np.concatenate([values["scores"] for _, values in self._run(function, len(rows), arguments)])

    def _sum_terms(self, function: Callable, batch: Batch, indices: np.ndarray, alphas: np.ndarray,
                   targets: np.ndarray) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """Per model input, the sum over the draws of each input's terms ``(N, [T,] *S_i)`` float64, and
        ``(N, R)`` flags of the (input, pool reference) pairs with a non-finite term.

        Point ``p`` of the ``N * samples`` is draw ``p % samples`` of input ``p // samples``; a chunk's
        points of one input are summed on the host (``np.add.reduceat``) as they come.
        """
        count, samples, pool = batch.count, self.samples, int(batch.references[0].shape[1])
        totals: List[Optional[np.ndarray]] = [None] * len(batch.points)
        broken = [np.zeros((count, pool), bool) for _ in batch.points]

        def arguments(index: np.ndarray) -> tuple:
            rows, draw = index // samples, index % samples
            return ([tf.constant(points[rows]) for points in batch.points],
                    [tf.constant(values) for values in self._references(batch, rows, indices[draw])],
                    tf.constant(alphas[draw]), tf.constant(targets[rows]), self._raw(batch, rows))

        for index, values in self._run(function, count * samples, arguments):
            rows = index // samples
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            for position, value in enumerate(as_list(values["attributions"])):
                if totals[position] is None:
                    totals[position] = np.zeros((count,) + value.shape[1:], np.float64)
                totals[position][rows[starts]] += np.add.reduceat(value.astype(np.float64), starts, axis=0)
                bad = ~np.isfinite(value.reshape(len(value), -1)).all(axis=1)
                broken[position][rows[bad], indices[index[bad] % samples]] = True
        return totals, broken

    @staticmethod
    def _mean_references(batch: Batch, drawn: np.ndarray, weights: np.ndarray) -> List[np.ndarray]:
        """Per model input, ``(N, 1, *S_i)`` float32: the mean of the drawn references (padding: the input)."""
        means = []
        for points, pool, movable in zip(batch.points, batch.references, batch.movable):
            mean = np.zeros((pool.shape[0],) + pool.shape[2:], np.float64)
            for reference, weight in zip(drawn, weights):  # one pool row at a time: no (N, U, *S) copy
                mean += weight * pool[:, reference]
            mean = np.broadcast_to(mean, points.shape).astype(np.float32)
            if movable is not None:
                mean = np.where((movable > 0).reshape(movable.shape + (1,)), mean, points)
            means.append(mean[:, None])
        return means
