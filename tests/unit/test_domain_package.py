"""``core.domain`` exports every type from its modules, each loaded on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import core.domain

ROOT = Path(__file__).resolve().parents[2]


def test_every_exported_name_is_the_type_its_module_defines() -> None:
    for name, module in core.domain._HOME.items():
        value = getattr(core.domain, name)
        assert value is getattr(importlib.import_module(f"core.domain.{module}"), name)
        assert value.__module__ == f"core.domain.{module}" and value.__name__ == name
        assert name in dir(core.domain)


def test_every_type_its_modules_define_is_exported() -> None:
    for module in set(core.domain._HOME.values()):
        defined = {
            name
            for name, value in vars(importlib.import_module(f"core.domain.{module}")).items()
            if isinstance(value, type) and value.__module__ == f"core.domain.{module}"
        }
        assert defined <= set(core.domain._HOME), module


def test_an_unknown_name_is_an_attribute_and_an_import_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = core.domain.Nope  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        from core.domain import Nope  # type: ignore[attr-defined] # noqa: F401


def test_a_name_loads_only_its_own_module() -> None:
    code = (
        "import sys\n"
        "from core.domain import Marker\n"
        "print(sorted(m for m in sys.modules if m.startswith('core.domain.')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['core.domain.metrics']"
