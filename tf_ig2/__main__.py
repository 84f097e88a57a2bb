"""``python -m tf_ig2``: the ``tf-ig2`` command line (see :mod:`tf_ig2.cli`)."""

import sys

from tf_ig2.cli.command import main

if __name__ == "__main__":
    sys.exit(main())
