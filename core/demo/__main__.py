"""``python -m core.demo [--dir PATH] [--serve]``: build (and serve) the demo sandbox."""

from core.demo.sandbox import _main

_main()
