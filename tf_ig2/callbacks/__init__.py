"""Keras callbacks that log attributions to TensorBoard while a model trains.

- :mod:`~tf_ig2.callbacks.callback`: :class:`AttributionCallback` and :class:`IG2Callback`;
- :mod:`~tf_ig2.callbacks.writer`: :class:`EventsWriter`, the one summary writer;
- :mod:`~tf_ig2.callbacks.inputs`: the checks of ``validation_data`` and references, by input kind;
- :mod:`~tf_ig2.callbacks.displays`: how each kind of input is shown (one small display class each);
- :mod:`~tf_ig2.callbacks.targets`: ``class_index`` read as one class per input, several, or ``"top-K"``,
  and the tag of each target;
- :mod:`~tf_ig2.callbacks.pickers`: ``references="other_class"`` / ``"relevant_class"``, picked from a
  labelled pool with :mod:`tf_ig2.references`;
- :mod:`~tf_ig2.callbacks.tf_explain`: :class:`TfExplainIG2`, a tf-explain style ``explain`` /
  ``save`` adapter.

May import the methods, the visualisations, :mod:`tf_ig2.folders`, :mod:`tf_ig2.references` and
everything below them; the command line and saved models do not come in here.
"""

from tf_ig2.callbacks.callback import AttributionCallback, IG2Callback

__all__ = ["AttributionCallback", "IG2Callback"]
