"""``python -m endoreview.interchange``: see :mod:`endoreview.interchange.cli`."""

import sys

from endoreview.interchange.cli import main

sys.exit(main())
