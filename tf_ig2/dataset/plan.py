"""Planning a run of :func:`~tf_ig2.dataset.explain_dataset`: references, targets and stored arrays.

:class:`Plan` checks the references (shared, per input or a callable) and targets once, names
the arrays stored per input, records every setting that decides the results as JSON (the model's
weights and the references by checksum) and explains one batch into per-input rows.
"""

from __future__ import annotations

import hashlib
import numbers
import re
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tf_ig2 import validation
from tf_ig2.dataset.results import ALWAYS_STORED
from tf_ig2.dataset.sources import as_array, is_array
from tf_ig2.methods import registry as methods
from tf_ig2.methods.base import PairExplainer


def _digest(array: np.ndarray) -> str:
    """sha1 of an array's values, shape and dtype (read in slices: memory maps stay flat)."""
    array = array if isinstance(array, np.ndarray) else np.asarray(array)
    digest = hashlib.sha1(f"{array.shape}{array.dtype}".encode())
    flat = array.reshape(len(array), -1) if array.ndim and len(array) else array.reshape(1, -1)
    rows = max(1, (1 << 24) // max(1, flat.shape[1] * flat.dtype.itemsize))
    for low in range(0, len(flat), rows):
        digest.update(np.ascontiguousarray(flat[low:low + rows]).tobytes())
    return digest.hexdigest()


def _callable_name(function: Callable) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', type(function).__name__)}"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 16 else {"shape": list(value.shape), "sha1": _digest(value)}
    if callable(value):
        return {"callable": _callable_name(value)}
    return repr(value)


def model_fingerprint(model: Any) -> Dict[str, Any]:
    """The model's name, parameter count and a checksum of its weights' names, shapes and values."""
    digest = hashlib.sha1()
    parameters = 0
    # A SavedModel's variables (read by its signature, untracked by Keras) count by value and shape:
    # their names change with every export.
    named = [(f"{weight.path if hasattr(weight, 'path') else weight.name}", weight) for weight in model.weights]
    unnamed = [("", variable) for variable in getattr(model, "signature_variables", [])]
    for name, weight in named + unnamed:
        values = np.asarray(weight.numpy())
        parameters += values.size
        digest.update(f"{name}{values.shape}".encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    return {"name": model.name, "parameters": int(parameters), "weights_sha1": digest.hexdigest()}


class Plan:
    """The references, targets and stored arrays of one run; explains a batch into per-input rows."""

    def __init__(self, explainer: PairExplainer, sample_shape: Tuple[int, ...], references: Any, targets: Any,
                 has_labels: bool, save_counterfactuals: bool):
        self.explainer = explainer
        self.sample_shape = sample_shape
        self.allow_scalar = methods.method_of(explainer).scalar_reference
        self.has_labels = has_labels
        self.save_counterfactuals = save_counterfactuals
        # references: "shared" (one array for all inputs), "per_input" (N, R, *S) or "callable".
        self.embedded = getattr(explainer.view, "input_layer", None) is not None
        if callable(references) and not is_array(references):
            self.reference_mode, self.references = "callable", references
        else:
            array = as_array(references) if tf.is_tensor(references) else references
            if not isinstance(array, np.ndarray):
                array = np.asarray(array)
            if array.ndim == len(sample_shape) + 2:
                if tuple(array.shape[2:]) != sample_shape or array.shape[1] == 0:
                    raise ValueError(
                        f"`references` given per input must have shape (N, R, {', '.join(map(str, sample_shape))}). "
                        f"Received: shape {tuple(array.shape)}"
                    )
                self.reference_mode, self.references = "per_input", array
            else:
                if not self.embedded:  # checked here once, not at the first batch
                    validation.references_array("references", array, (1,) + sample_shape,
                                                allow_scalar=self.allow_scalar)
                self.reference_mode, self.references = "shared", array
        # targets
        if isinstance(targets, str) and targets != "labels":
            if not re.fullmatch(r"top-[1-9]\d*", targets):
                raise ValueError(f"`targets` given as a string must be 'labels' or 'top-K' (the K highest logits of "
                                 f"each input, K >= 1). Received: targets={targets!r}")
            self.target_mode = "top"
        elif isinstance(targets, str):
            if not has_labels:
                raise ValueError("`targets='labels'` needs a dataset yielding (x, y) with labels y. Received: a "
                                 "dataset without labels")
            self.target_mode = "labels"
        elif targets is None or callable(targets):
            self.target_mode = "callable" if callable(targets) else "predicted"
        elif isinstance(targets, bool):
            raise TypeError(f"`targets` must be None, 'labels', an int, N ints or a callable. Received: {targets!r}")
        elif isinstance(targets, numbers.Integral):
            self.target_mode = "constant"
        else:
            array = as_array(targets)
            if array.ndim not in (1, 2) or not np.issubdtype(array.dtype, np.integer):
                raise TypeError(f"`targets` must be None, 'labels', 'top-K', an int, (N,) ints, (N, T) ints (T "
                                f"targets per input) or a callable. Received: {type(targets).__name__} of shape "
                                f"{array.shape} and dtype {array.dtype}")
            self.target_mode, targets = "array", array
        self.targets = targets
        arrays = list(ALWAYS_STORED)
        if self.target_mode != "callable":
            arrays.append("targets")
        if has_labels:
            arrays.append("labels")
        if "representation_distance" in methods.method_of(explainer).extra_outputs:
            arrays.append("representation_distance")
        if save_counterfactuals:
            arrays.append("counterfactuals")
        self.arrays = tuple(arrays)

    def settings(self, explainer: PairExplainer) -> Dict[str, Any]:
        """Everything that decides the stored results, as JSON values."""
        options = {name: _jsonable(value) for name, value in sorted(explainer.settings.as_dict().items())
                   if name != "batch_size"}
        if "representation" in methods.method_of(explainer).extra_outputs:
            options["representation"] = explainer.representation
        if self.reference_mode == "callable":
            references = {"callable": _callable_name(self.references)}
        else:
            references = {"layout": self.reference_mode, "shape": list(self.references.shape),
                          "sha1": _digest(self.references)}
        if self.target_mode == "array":
            targets: Any = {"shape": list(self.targets.shape), "sha1": _digest(self.targets)}
        elif self.target_mode == "callable":
            targets = {"callable": _callable_name(self.targets)}
        elif self.target_mode == "constant":
            targets = int(self.targets)
        elif self.target_mode == "top":
            targets = self.targets
        else:
            targets = self.target_mode
        return {
            "method": explainer.method,
            "explainer": type(explainer).__name__,
            "options": options,
            "model": model_fingerprint(explainer.model),
            "sample_shape": list(self.sample_shape),
            "references": references,
            "targets": targets,
            "arrays": list(self.arrays),
        }

    def _batch_targets(self, labels: Optional[np.ndarray], position: int, count: int) -> Any:
        if self.target_mode == "labels":
            labels = np.asarray(labels)
            if labels.ndim == 2 and labels.shape[1] == 1 and np.issubdtype(labels.dtype, np.integer):
                labels = labels[:, 0]
            if labels.ndim == 2:
                return np.argmax(labels, axis=1).astype(np.int64)
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError("`targets='labels'` needs labels that are (B,) class indices or (B, C) one-hot rows. "
                                 f"Received: labels of shape {labels.shape} and dtype {labels.dtype}")
            return labels.astype(np.int64)
        if self.target_mode == "array":
            if position + count > len(self.targets):
                raise ValueError(f"`targets` holds {len(self.targets)} class indices but the dataset yields more "
                                 f"inputs (at least {position + count})")
            return np.asarray(self.targets[position:position + count])
        if self.target_mode == "constant":
            return int(self.targets)
        return self.targets  # None, "top-K" or a callable

    def _batch_references(self, inputs: np.ndarray, class_indices: Optional[np.ndarray], position: int) -> np.ndarray:
        count = len(inputs)
        if self.reference_mode == "shared":
            return self.references
        if self.reference_mode == "per_input":
            if position + count > len(self.references):
                raise ValueError(f"`references` given per input holds {len(self.references)} rows but the dataset "
                                 f"yields more inputs (at least {position + count})")
            return np.asarray(self.references[position:position + count])
        return self.references(inputs, class_indices)

    def explain(self, inputs: np.ndarray, labels: Optional[np.ndarray], position: int) -> Dict[str, np.ndarray]:
        """Explains ``inputs`` ``(B, *S)`` (the dataset's inputs ``position ...``); returns ``(B, ...)`` rows."""
        explainer = self.explainer
        batch_targets = self._batch_targets(labels, position, len(inputs))
        class_indices = None
        if self.reference_mode == "callable":
            class_indices, _ = explainer.resolve_targets(batch_targets, inputs)
        references = self._batch_references(inputs, class_indices, position)
        if class_indices is not None:
            batch_targets = class_indices
        explanation = explainer.explain(inputs, references, batch_targets)
        rows = {
            "attributions": explanation.attributions,
            "target_scores": explanation.target_scores,
            "counterfactual_scores": explanation.counterfactual_scores,
            "delta": explanation.delta,
        }
        if "targets" in self.arrays:
            rows["targets"] = np.asarray(explanation.targets, np.int64)
        if "labels" in self.arrays:
            rows["labels"] = np.asarray(labels)
        if "representation_distance" in self.arrays:
            rows["representation_distance"] = np.asarray(explanation.representation_distance, np.float32)
        if "counterfactuals" in self.arrays:
            rows["counterfactuals"] = explanation.counterfactuals
        return rows
