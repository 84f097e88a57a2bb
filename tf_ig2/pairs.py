"""What every explainer shares: pairing inputs with references, chunking, averaging back.

An explanation of N inputs with R references each is computed over the N·R (input, reference)
pairs, at most ``batch_size`` pairs at a time, so memory never grows with N·R. Per-pair results
come back as ``(N, R, ...)`` arrays and attributions are averaged over the R references:
``attributions = mean_r A(x, x_r)``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from . import validation
from .explanation import Explanation
from .targets import ModelView, num_classes

PairFunction = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], Dict[str, tf.Tensor]]

#: How many compiled functions for callable targets an explainer keeps (the most recent ones).
CALLABLE_CACHE_SIZE = 4


class PairExplainer:
    """Base class: configuration, the model view and the cache of compiled functions.

    Subclasses implement :meth:`_build`, returning a compiled function that maps a chunk of
    pairs ``(inputs (P, *S), references (P, *S), targets (P,) int32)`` to a dict of ``(P, ...)``
    tensors holding at least ``attributions``, ``counterfactuals``, ``target_scores`` and
    ``counterfactual_scores``.
    """

    method: str = ""

    def __init__(self, model: Any, *, batch_size: Optional[int], representation_layer: Any = None,
                 need_representation: bool = False, input_layer: Any = None, output: Any = None):
        self.batch_size = validation.optional_positive_int("batch_size", batch_size)
        self._view = ModelView(model, representation_layer, input_layer=input_layer, output=output,
                               need_representation=need_representation)
        self._functions: Dict[Tuple[Any, ...], Any] = {}
        self._forward_functions: Dict[Tuple[Any, ...], Any] = {}
        #: Optional ``wrapper(function) -> function`` applied to every compiled per-pair function
        #: before it runs, e.g. to spread it over a ``tf.distribute`` strategy's replicas.
        self.pair_wrapper: Optional[Callable[[PairFunction], PairFunction]] = None

    @property
    def model(self) -> Any:
        """The explained Keras model."""
        return self._view.model

    @property
    def tracing_count(self) -> int:
        """How many times the compiled functions were traced (stays flat across repeated calls)."""
        functions = list(self._functions.values()) + list(self._forward_functions.values())
        return sum(function.experimental_get_tracing_count() for function in functions)

    # -- pieces for subclasses ---------------------------------------------------------------
    def _build(self, sample_shape: Tuple[int, ...], options: Tuple[Any, ...], score: Any) -> PairFunction:
        raise NotImplementedError

    def _function(self, sample_shape: Tuple[int, ...], options: Tuple[Any, ...], score: Any) -> PairFunction:
        """The compiled function for these shapes and options, built once and cached.

        A callable target is traced into the graph, so each new callable object gets its own
        function: pass the same callable to repeated calls to avoid tracing again. Only the
        most recent :data:`CALLABLE_CACHE_SIZE` callable-target functions are kept.
        """
        key = (sample_shape, options, score if callable(score) else None)
        if key not in self._functions:
            if callable(score):
                held = [other for other in self._functions if other[2] is not None]
                for stale in held[:max(0, len(held) - CALLABLE_CACHE_SIZE + 1)]:
                    del self._functions[stale]
            self._functions[key] = self._build(sample_shape, options, score)
        return self._functions[key]

    def _outputs(self, inputs: np.ndarray) -> Any:
        """Model outputs (softmax removed where possible) for ``(N, *S)`` inputs, chunked."""
        sample_shape = tuple(inputs.shape[1:])
        key = (sample_shape, inputs.dtype.str)
        if key not in self._forward_functions:
            view = self._view
            if view.input_layer is None:
                spec = tf.TensorSpec([None, *sample_shape], tf.float32)
                forward = lambda z: view(z, representation=False)[1]  # noqa: E731
            else:
                spec = tf.TensorSpec([None, *sample_shape], tf.as_dtype(inputs.dtype))
                forward = lambda z: view(None, model_inputs=z, representation=False)[1]  # noqa: E731
            self._forward_functions[key] = tf.function(forward, input_signature=[spec])
        forward = self._forward_functions[key]
        size = self.batch_size or len(inputs)
        chunks = [forward(tf.constant(inputs[start:start + size])) for start in range(0, len(inputs), size)]
        if len(chunks) == 1:
            return chunks[0]
        return tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *chunks)

    def _check_inputs(self, inputs: Any) -> np.ndarray:
        """Validates ``inputs`` (N, *S) as finite floats fitting the model's input shape."""
        inputs = validation.float_array("inputs", inputs)
        validation.fits_model_input("inputs", inputs.shape, self._view.input_shape)
        return inputs

    def _resolve_targets(self, targets: Any, inputs: np.ndarray) -> Tuple[Optional[np.ndarray], Any]:
        """Returns ``(class indices (N,) or None, score spec)``; runs one forward pass if needed."""
        if callable(targets):
            return None, targets
        outputs = self._outputs(inputs)
        self._view.warn_if_probabilities(outputs)
        classes = num_classes(outputs)
        checked = validation.targets(targets, len(inputs), classes)
        if checked is None:
            if classes is None:
                raise ValueError(
                    "`targets=None` explains the predicted class, which needs a model output of shape (N, C). "
                    "Pass a callable `targets` mapping the model output to N scores. Received: output of "
                    f"type {type(outputs).__name__}"
                )
            checked = np.argmax(np.asarray(outputs).reshape(len(inputs), -1), axis=1).astype(np.int64)
        return checked, "index"

    def _run_pairs(self, function: PairFunction, inputs: np.ndarray, references: np.ndarray,
                   targets: Optional[np.ndarray], input_extras: Sequence[np.ndarray] = (),
                   reference_extras: Sequence[np.ndarray] = ()) -> Dict[str, np.ndarray]:
        """Runs ``function`` over all N·R pairs; returns each output as ``(N, R, ...)``.

        ``function`` is called with ``(inputs, references, targets, *input_extras,
        *reference_extras)`` for each chunk of pairs, where ``input_extras`` are ``(N, ...)``
        arrays laid out like ``inputs`` and ``reference_extras`` like ``references``.
        """
        if self.pair_wrapper is not None:
            function = self.pair_wrapper(function)
        n, r = len(inputs), references.shape[1]
        total = n * r
        size = self.batch_size or total
        pair_targets = np.zeros((n,), np.int32) if targets is None else targets.astype(np.int32)
        results: Dict[str, np.ndarray] = {}
        for start in range(0, total, size):
            index = np.arange(start, min(start + size, total))
            input_index, reference_index = index // r, index % r
            owner = input_index if references.shape[0] == n else np.zeros_like(input_index)
            chunk = function(
                tf.constant(inputs[input_index]),
                tf.constant(references[owner, reference_index]),
                tf.constant(pair_targets[input_index]),
                *(tf.constant(extra[input_index]) for extra in input_extras),
                *(tf.constant(extra[owner, reference_index]) for extra in reference_extras),
            )
            for name, value in chunk.items():
                value = value.numpy()
                if len(index) == total:  # a single chunk: keep the array, no copy
                    results[name] = value
                    continue
                if name not in results:
                    results[name] = np.empty((total,) + value.shape[1:], value.dtype)
                results[name][start:start + len(index)] = value
        return {name: value.reshape((n, r) + value.shape[1:]) for name, value in results.items()}

    def _explanation(self, results: Dict[str, np.ndarray], targets: Optional[np.ndarray],
                     **extra: Any) -> Explanation:
        attributions = results["attributions"].mean(axis=1, dtype=np.float64).astype(np.float32)
        target_scores = results["target_scores"][:, 0].astype(np.float32)
        counterfactual_scores = results["counterfactual_scores"].mean(axis=1, dtype=np.float64).astype(np.float32)
        summed = attributions.reshape(len(attributions), -1).sum(axis=1, dtype=np.float64)
        delta = (summed - (target_scores.astype(np.float64) - counterfactual_scores)).astype(np.float32)
        return Explanation(
            attributions=attributions,
            counterfactuals=results["counterfactuals"].astype(np.float32),
            target_scores=target_scores,
            counterfactual_scores=counterfactual_scores,
            delta=delta,
            targets=targets,
            method=self.method,
            **extra,
        )


class BaselineExplainer(PairExplainer):
    """Base class of the methods integrating from baselines to inputs (IG, Guided IG).

    Subclasses implement :meth:`_integrate`, a pure tensor function of one chunk of pairs.
    """

    def _integrate(self, inputs: tf.Tensor, baselines: tf.Tensor, targets: Any) -> Dict[str, tf.Tensor]:
        raise NotImplementedError

    def _build(self, sample_shape: Tuple[int, ...], options: Tuple[Any, ...], score: Any) -> PairFunction:
        spec = tf.TensorSpec([None, *sample_shape], tf.float32)

        @tf.function(input_signature=[spec, spec, tf.TensorSpec([None], tf.int32)])
        def integrate(inputs, baselines, targets):
            return self._integrate(inputs, baselines, score if callable(score) else targets)

        return integrate

    def explain(self, inputs: Any, baselines: Any = 0.0, targets: Any = None) -> Explanation:
        """Explains ``inputs`` against ``baselines``.

        Args:
            inputs: ``(N, *S)`` float array or tensor.
            baselines: A scalar or an ``S``-shaped array (one baseline for all), ``(R, *S)``
                (R baselines shared by all inputs, attributions averaged over them) or
                ``(N, R, *S)`` (per input). A single per-input baseline is ``(N, 1, *S)``.
            targets: ``None`` (the predicted class), an int, ``(N,)`` ints or a callable mapping
                the model output to ``(N,)`` scores.

        Returns:
            An :class:`~tf_ig2.Explanation` with ``attributions`` ``(N, *S)``; ``counterfactuals``
            holds the baselines ``(N, R, *S)``.

        Raises:
            TypeError, ValueError: On malformed inputs, baselines or targets.
        """
        inputs = self._check_inputs(inputs)
        baselines = validation.references_array("baselines", baselines, inputs.shape, allow_scalar=True)
        class_indices, score = self._resolve_targets(targets, inputs)
        function = self._function(tuple(inputs.shape[1:]), (), score)
        results = self._run_pairs(function, inputs, baselines, class_indices)
        return self._explanation(results, class_indices)
