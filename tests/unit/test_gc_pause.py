"""Garbage collection is held off while ``mrc`` starts and always turned back on."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tui import gc_pause
from tui.cli import main


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_hold_then_release_freezes_what_exists_and_collects_again() -> None:
    gc.unfreeze()
    gc_pause.hold()
    assert not gc.isenabled()
    gc_pause.release()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    gc_pause.release()  # a second release changes nothing
    assert gc.isenabled()


def test_a_collector_turned_off_by_someone_else_stays_off() -> None:
    gc.unfreeze()
    gc.disable()
    gc_pause.hold()
    gc_pause.release()
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_main_turns_collection_back_on_whatever_the_command_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])  # argparse exits before any command starts
    assert gc.isenabled()
    with pytest.raises(SystemExit):
        main(["no-such-command"])
    assert gc.isenabled()
    capsys.readouterr()
