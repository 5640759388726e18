"""The built-in demo behind ``mrc demo``: a sample model repository, its server and traffic.

:func:`build_sandbox` creates everything in a directory;
:meth:`Sandbox.start_background` serves the live release on the ``local``
target and starts the traffic generator. See :mod:`core.demo.sandbox`.
"""

from core.demo.sandbox import Background, Sandbox, SandboxError, build_sandbox

__all__ = ["Background", "Sandbox", "SandboxError", "build_sandbox"]
