"""The ``tf-ig2`` command line.

- :mod:`~tf_ig2.cli.command`: the parser, :func:`main` and what keeps stderr readable;
- :mod:`~tf_ig2.cli.explain`: ``tf-ig2 explain``, in memory or streamed, and the checks made before
  TensorFlow is imported;
- :mod:`~tf_ig2.cli.files` (reading inputs), :mod:`~tf_ig2.cli.output` (the output folder and
  ``summary.json``), :mod:`~tf_ig2.cli.report` (pictures and ``index.html``),
  :mod:`~tf_ig2.cli.stream` (``--stream``), :mod:`~tf_ig2.cli.targets` (``--target``,
  ``--targets``, ``--top-k``), :mod:`~tf_ig2.cli.pool` (references drawn from ``--reference-pool``);
- :mod:`~tf_ig2.cli.demo`: ``tf-ig2 demo``.

The top of the import graph: may import everything else in the package; nothing imports it.
Importing it does not import TensorFlow, so that usage errors answer at once.
"""

from tf_ig2.cli.command import main

__all__ = ["main"]
