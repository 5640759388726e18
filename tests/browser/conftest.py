"""Debian's chromium, driven headless by Playwright, for the tests of ``mrc serve``.

Playwright is pointed at the system chromium (``tests/services/install.sh``
installs it); no browser build is ever downloaded. Outside CI a browser that
cannot start skips the test with the reason; with CI=true it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"browser unavailable: {reason}", pytrace=False)
    pytest.skip(f"{reason} -- install with `bash tests/services/install.sh`")


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Debian chromium, launched by Playwright, for one test.

    Not shared across tests: while Playwright's sync API is open it keeps an
    event loop running in this thread, and every asyncio test after it (the
    console's Pilot tests) would fail to start its own.
    """
    executable = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if executable is None:
        _unavailable("Debian's chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        _unavailable(f"playwright is not installed ({error})")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=executable, headless=True, args=["--no-sandbox"]
            )
        except Exception as error:
            _unavailable(f"chromium did not start: {error}")
        try:
            yield chromium
        finally:
            chromium.close()
