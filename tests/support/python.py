"""Run Python code in a fresh interpreter, as a program that imports the project would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(code: str, packages: tuple[str, ...]) -> Any:
    """Run ``code`` in a new interpreter at the repository root; return what it printed last
    as JSON, followed by the sorted names of the loaded modules that are one of ``packages``
    or inside one.

    ``code`` prints nothing or one JSON document on its last line (returned as the first
    item, None when nothing). Raises AssertionError with its stderr when it fails.
    """
    script = (
        f"{code}\n"
        "import json as _json, sys as _sys\n"
        f"_p = {packages!r}\n"
        "print(_json.dumps(sorted(m for m in _sys.modules\n"
        "    if any(m == p or m.startswith(p + '.') for p in _p))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    printed = json.loads(lines[-2]) if len(lines) > 1 else None
    return printed, json.loads(lines[-1])
