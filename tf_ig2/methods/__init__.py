"""The attribution methods: the registry, their settings, the shared base and one module per method.

- :mod:`~tf_ig2.methods.registry`: every method's declaration: its frozen settings dataclass (every
  option, its default and its check, declared once) and its entry (:class:`Method`, :data:`METHODS`):
  its explainer, reference keyword, what the end of its path is called, its callback steps;
- :mod:`~tf_ig2.methods.settings`: the pieces settings are made of (:func:`~tf_ig2.methods.settings.option`,
  the shared fields and checks);
- :mod:`~tf_ig2.methods.base`: what every explainer shares (pairs of inputs and references,
  chunking, averaging, the diagnostics of the result);
- one module per method: :mod:`~tf_ig2.methods.ig2` (IG², with
  :mod:`~tf_ig2.methods.integration_rules`), :mod:`~tf_ig2.methods.integrated_gradients`,
  :mod:`~tf_ig2.methods.guided_ig`, ... (every ``explainer_path`` of :data:`METHODS`).

A new method is one module here plus one entry of :data:`METHODS`. May import the engine
(:mod:`tf_ig2.engine`), :mod:`tf_ig2.defaults`, :mod:`tf_ig2.validation`,
:mod:`tf_ig2.explanation` and :mod:`tf_ig2.diagnostics`; importing this package itself (the
registry and the settings) does not import TensorFlow.
"""

from tf_ig2.methods.registry import METHODS, Method, end_name, get_method, method_of

__all__ = ["METHODS", "Method", "end_name", "get_method", "method_of"]
