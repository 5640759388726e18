"""Core of the Model Release Console: every backend and all logic, no UI.

Nothing in this package imports ``textual``; the console (``tui``), the
scripting CLI and the tests all drive the same functions defined here.
"""

__version__ = "0.1.0"
