"""``python -m tui.cli``: the same as the ``mrc`` console script."""

import sys

from tui.cli import main

sys.exit(main())
