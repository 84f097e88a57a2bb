"""The model as every method sees it (internal).

- :mod:`~tf_ig2.engine.model_graph`: reading a Keras model's graph: its inputs, nested models, the
  layer producing the explained output, a representation layer;
- :mod:`~tf_ig2.engine.layer_hooks`: per-thread hooks that substitute or record a layer's output;
- :mod:`~tf_ig2.engine.model_view`: the model view: one inference-mode call returning the
  representation and the outputs (as logits), and the target scores;
- :mod:`~tf_ig2.engine.compiled_model`: compiled functions cached by value per model and settings,
  chunked forward passes, and the checks of inputs, references and targets at the public boundary.

May import: TensorFlow, Keras, :mod:`tf_ig2.defaults`, :mod:`tf_ig2.validation`. Nothing above it
(methods, callbacks, saved models, datasets, the command line) is imported from here.
"""
