"""``python -m tf_ig2``: the ``tf-ig2`` command line (see :mod:`tf_ig2.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
