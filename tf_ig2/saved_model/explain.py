"""Explaining models saved to disk: ``.keras`` files, legacy ``.h5`` files and SavedModel folders.

:func:`load_model` (:mod:`tf_ig2.saved_model.loading`) turns any of the three into a Keras object the
explainers accept (a Keras 3 model, a tf_keras model when only tf_keras reads the file, or a
SavedModel signature), and :func:`explain_saved_model` explains inputs with a registered method
(:mod:`tf_ig2.methods`), by default IG² (Zhuo & Ge, TPAMI 2024, Eqs. 7-10), after checking that they
fit the model's expected input shape, before any gradient is computed.

A SavedModel keeps functions, not layers: it is served through one of its signatures (by default
``serving_default``), wrapped in :class:`SavedModelFunction`. With no layer to pick a
representation from, GradPath then moves in the space of the model output (the explained
scores), ``representation_layer="output"``, unless the signature returns a named features output
and the caller asks for it by name; :attr:`Explanation.representation` says which one was used.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from tf_ig2 import defaults, validation
from tf_ig2.engine.model_view import Targets
from tf_ig2.explanation import Explanation
from tf_ig2.methods import registry as methods
from tf_ig2.saved_model.loading import FORMATS, MissingClassError, SavedModelFunction, load_model, model_format

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

__all__ = ["FORMATS", "MissingClassError", "SavedModelFunction", "build_explainer", "expected_input_shape",
           "explain_model", "explain_saved_model", "input_specs", "load_model", "model_format"]

PathLike = Union[str, "os.PathLike[str]"]

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


def input_specs(model: Any) -> Dict[str, Tuple[Optional[Tuple[Optional[int], ...]], str]]:
    """The model's inputs by name, in the order the explainers flatten them: ``name -> (shape, dtype)``.

    Args:
        model: A Keras model or a :class:`SavedModelFunction`.

    Returns:
        One entry per model input: its batch-first shape (``None`` entries: any size; ``None``
        when unknown) and its declared dtype name (``"float32"`` when unknown). A dict model's
        inputs are keyed by its dict keys, a list model's by its input tensors' names, a
        SavedModel signature's by its input name.
    """
    if isinstance(model, SavedModelFunction):
        dtype = model.signature_input_dtype
        return {model.input_name: (model.input_shape_expected, getattr(dtype, "name", None) or str(dtype))}
    from tf_ig2.engine.model_graph import ModelInputs

    inputs = ModelInputs(model)
    return {name: (shape, dtype) for name, shape, dtype in zip(inputs.names, inputs.shapes, inputs.dtypes)}


def _concatenated(values: List[Any]) -> Any:
    """Per-input parts of one result joined along the inputs: arrays, or lists or dicts of arrays."""
    first = values[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(values, axis=0)
    if isinstance(first, dict):
        return {key: np.concatenate([value[key] for value in values], axis=0) for key in first}
    if isinstance(first, list):
        return [np.concatenate([value[index] for value in values], axis=0) for index in range(len(first))]
    return first


def _merge(parts: List[Explanation]) -> Explanation:
    if len(parts) == 1:
        return parts[0]
    return Explanation(**{field.name: _concatenated([getattr(part, field.name) for part in parts])
                          for field in dataclasses.fields(Explanation)})


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

    The explainer comes from the method registry (:func:`tf_ig2.methods.get_method`). A
    :class:`SavedModelFunction` serves its scores output and must accept free batch sizes; for
    IG² it defaults to ``representation_layer="output"`` (or the named signature output).

    Args:
        model: A Keras (or tf_keras) model or a :class:`SavedModelFunction`.
        options: The method's settings (:attr:`tf_ig2.methods.Method.settings`).
        method: A name of :data:`tf_ig2.methods.METHODS` (``"ig2"``, ``"ig"``, ...).

    Returns:
        ``(explainer, description of the representation GradPath moves in)``; the description
        is ``None`` for methods without a representation.

    Raises:
        TypeError, ValueError: On an unknown method, unknown or malformed options, or a
            SavedModel signature with a fixed batch size.
    """
    entry = methods.get_method(method)
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

    Gives exactly what ``methods.get_method(method).build(model, **options).explain(inputs, references,
    targets)`` gives (``tf_ig2.IG2(model, **options).explain(...)`` for IG²), with three
    differences: the inputs are checked against the model's declared input shapes before any
    work; a :class:`SavedModelFunction` defaults to ``representation_layer="output"`` for IG²;
    and when ``batch_size`` is set the inputs are explained a few at a time (each group a whole
    number of pair batches, so the numbers are the same) with ``progress(done, total)`` called
    after each group.

    Args:
        model: A Keras model or a :class:`SavedModelFunction` (see :func:`load_model`).
        inputs: ``(N, *S)`` floats (token ids ``(N, T)`` with an ``input_layer``); for a model
            with several inputs, a dict keyed by the input names (:func:`input_specs`) or a
            list in the model's input order, one ``(N, *S_i)`` array per input.
        references: ``(R, *S)`` shared by all inputs, or ``(N, R, *S)`` per input, in the
            structure of ``inputs``; for methods taking baselines (``ig``, ``guided_ig``) also a
            scalar or an ``S``-shaped array.
        targets: ``None`` (predicted class), an int, ``(N,)`` ints or a callable returning ``(N,)``
            scores; for T targets per input, as in :meth:`tf_ig2.IG2.explain`, ``(N, T)`` ints,
            ``"top-K"`` (the K highest logits of each input, highest first) or a callable returning
            ``(N, T)`` scores.
        method: The registered method (a name of :data:`tf_ig2.methods.METHODS`): ``"ig2"``
            (default), ``"ig"``, ...
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
        representation distances ``(N, R, 2)``; for T targets per input attributions
        ``(N, T, *S)`` and scores, deltas and targets ``(N, T)``.

    Raises:
        TypeError, ValueError: On an unknown method or options, inputs that do not fit the
            model, an unknown representation layer (the message lists the available ones) or
            malformed arguments.
    """
    entry = methods.get_method(method)
    entry.check_options(options)
    if progress is not None and not callable(progress):
        raise TypeError(f"`progress` must be None or a callable (done, total). Received: progress={progress!r}")
    if return_path and "path" not in entry.extra_outputs:
        raise TypeError(f"`return_path` is for methods that return their path (ig2). Received: return_path=True "
                        f"with method={method!r}")
    if len(input_specs(model)) > 1:
        explainer, description = build_explainer(model, options, method)
        names = explainer.view.inputs.names
        checked = explainer.check_inputs(inputs)  # one array per input, in the model's input order
        if not (isinstance(references, numbers.Real) and not isinstance(references, bool)):
            references = dict(zip(names, explainer.view.inputs.flatten("references", references)))
        if not callable(targets):
            targets, _ = explainer.resolve_targets(targets, checked, several=True)
        inputs = dict(zip(names, checked))
        count, per_input = len(checked[0]), _references_per_input(inputs, references)
    else:
        embedded = options.get("input_layer") is not None
        if embedded:  # raw model inputs such as token ids; the path moves in the input layer's output space
            inputs = validation.model_input_array("inputs", inputs)
        else:
            inputs = validation.float_array("inputs", inputs)
        validation.fits_model_input("inputs", inputs.shape, expected_input_shape(model))
        explainer, description = build_explainer(model, options, method)
        if embedded:  # token ids checked against the vocabulary before the model reads them
            inputs = explainer.check_inputs(inputs)
        references = validation.references_array("references", references, inputs.shape, integer=embedded,
                                                 allow_scalar=entry.scalar_reference and not embedded)
        if not embedded and "value_range" in entry.settings.names():
            validation.fits_value_range("inputs", inputs, explainer.value_range, inputs.shape[1:])
            validation.fits_value_range("references", references, explainer.value_range, inputs.shape[1:])
        if not callable(targets):
            targets, _ = explainer.resolve_targets(targets, inputs, several=True)
        count, per_input = len(inputs), references.shape[1]
    group = count
    if explainer.batch_size is not None:
        pairs = per_input * explainer.batch_size // math.gcd(per_input, explainer.batch_size)
        group = max(1, pairs // per_input)
    extra = {"return_path": return_path} if "path" in entry.extra_outputs else {}
    parts = []
    for start in range(0, count, group):
        stop = min(start + group, count)
        chunk_targets = targets if callable(targets) else targets[start:stop]
        parts.append(explainer.explain(_rows(inputs, start, stop, count),
                                       _rows(references, start, stop, count, inputs), chunk_targets, **extra))
        logger.info("Explained %d of %d inputs", stop, count)
        if progress is not None:
            progress(stop, count)
    return dataclasses.replace(_merge(parts), representation=description)


def _references_per_input(inputs: Dict[str, np.ndarray], references: Any) -> int:
    """R for a model with several inputs: the references of its first input, ``(R, *S)`` or ``(N, R, *S)``."""
    if not isinstance(references, dict):
        return 1
    name = next(iter(inputs))
    first = np.asarray(references[name])
    if first.ndim == inputs[name].ndim + 1:
        return int(first.shape[1])
    return int(first.shape[0]) if first.ndim == inputs[name].ndim else 1


def _rows(value: Any, start: int, stop: int, count: int, inputs: Any = None) -> Any:
    """Rows ``start:stop`` of the inputs (``inputs`` None), or the references for those rows.

    Several inputs are dicts of arrays. References given per input, ``(N, R, *S)`` with one
    row per input, are sliced; ``(1, R, *S)`` gives its one row; references shared by all
    inputs (``(R, *S)``, a scalar) are passed as they are.
    """
    if isinstance(value, dict):
        return {key: _rows(item, start, stop, count, None if inputs is None else inputs[key])
                for key, item in value.items()}
    if inputs is None:
        return value if start == 0 and stop == count else value[start:stop]
    if np.ndim(value) == np.ndim(inputs) + 1:
        if len(value) == count:
            return value[start:stop]
        if len(value) == 1:
            return value[0]
    return value


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
            model output to ``(N,)`` scores; for T targets per input ``(N, T)`` ints, ``"top-K"`` or
            a callable returning ``(N, T)`` scores (see :func:`explain_model`).
        method: The registered method (a name of :data:`tf_ig2.methods.METHODS`): ``"ig2"``
            (default), ``"ig"``, ...
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
    methods.get_method(method).check_options(options)
    model = load_model(path, safe_mode=safe_mode, signature=signature, output_name=output_name)
    return explain_model(model, inputs, references, targets, method=method, return_path=return_path,
                         progress=progress, **options)
