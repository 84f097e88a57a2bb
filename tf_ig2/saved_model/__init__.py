"""Saved models: loading ``.keras``, ``.h5`` and SavedModel files, and explaining them.

- :mod:`~tf_ig2.saved_model.loading`: :func:`load_model` (Keras 3, tf_keras and SavedModel
  signatures as :class:`SavedModelFunction`), :func:`model_format`;
- :mod:`~tf_ig2.saved_model.explain`: :func:`explain_saved_model`, :func:`explain_model` and the
  explainer they build.

May import the methods and everything below them.
"""

from tf_ig2.saved_model.explain import (
    FORMATS,
    MissingClassError,
    SavedModelFunction,
    build_explainer,
    expected_input_shape,
    explain_model,
    explain_saved_model,
    input_specs,
    load_model,
    model_format,
)

__all__ = ["FORMATS", "MissingClassError", "SavedModelFunction", "build_explainer", "expected_input_shape",
           "explain_model", "explain_saved_model", "input_specs", "load_model", "model_format"]
