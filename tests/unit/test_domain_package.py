"""``core.domain`` exports every type from its modules, each loaded on first use."""

from __future__ import annotations

import importlib

import pytest

import core.domain
from tests.support.python import loaded_after


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
    _, modules = loaded_after("from core.domain import Marker", ("core.domain",))
    assert modules == ["core.domain", "core.domain.metrics"]
