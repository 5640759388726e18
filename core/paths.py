"""Where the console keeps its files, following the XDG base directory spec.

* configuration: ``$XDG_CONFIG_HOME/mrc`` (``~/.config/mrc``)
* state (the journal, test output): ``$MRC_STATE_DIR``, else
  ``$XDG_STATE_HOME/mrc`` (``~/.local/state/mrc``)

Every function takes an optional ``environ`` mapping so tests and callers
can resolve locations without touching ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

APP = "mrc"
JOURNAL_FILE = "journal.sqlite3"


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _xdg(environ: Mapping[str, str] | None, variable: str, fallback: str) -> Path:
    env = _env(environ)
    value = env.get(variable, "")
    # The spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    home = env.get("HOME") or str(Path.home())
    return Path(home) / fallback


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the per-user configuration directory (not created)."""
    return _xdg(environ, "XDG_CONFIG_HOME", ".config") / APP


def user_config_file(environ: Mapping[str, str] | None = None) -> Path:
    """Return ``<config dir>/config.toml`` (it may not exist)."""
    return config_dir(environ) / "config.toml"


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the state directory: ``MRC_STATE_DIR`` if set, else the XDG one (not created)."""
    override = _env(environ).get("MRC_STATE_DIR", "")
    if override:
        return Path(override).expanduser()
    return _xdg(environ, "XDG_STATE_HOME", ".local/state") / APP


def ensure_dir(path: Path) -> Path:
    """Make ``path`` a directory private to the user (mode 0700); return it.

    A missing directory is created (its missing parents with the default
    mode). An existing one owned by the user that others may read, write or
    enter (any group or other permission bit) is tightened to 0700: the state
    directory holds the journal, test output and server logs. One owned by
    somebody else is left as it is. Raises OSError when it cannot be created
    or changed.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def journal_path(environ: Mapping[str, str] | None = None) -> Path:
    """Return the journal database path under the state directory (not created)."""
    return state_dir(environ) / JOURNAL_FILE
