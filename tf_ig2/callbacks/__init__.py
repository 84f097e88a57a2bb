"""Keras callbacks that log attributions to TensorBoard while a model trains.

- :mod:`~tf_ig2.callbacks.callback`: :class:`AttributionCallback`, :class:`IG2Callback` and the one
  summary writer;
- :mod:`~tf_ig2.callbacks.inputs`: the checks of ``validation_data`` and references, by input kind;
- :mod:`~tf_ig2.callbacks.displays`: how each kind of input is shown (one small display class each);
- :mod:`~tf_ig2.callbacks.tf_explain`: :class:`TfExplainIG2`, a tf-explain style ``explain`` /
  ``save`` adapter.

May import the methods, the visualisations, :mod:`tf_ig2.folders` and everything below them; the
command line and saved models do not come in here.
"""

from tf_ig2.callbacks.callback import AttributionCallback, IG2Callback

__all__ = ["AttributionCallback", "IG2Callback"]
