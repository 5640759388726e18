"""Command-line entry point ``mrc``."""

from __future__ import annotations

import argparse
import sys

from core import __version__


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``mrc`` and its subcommands."""
    parser = argparse.ArgumentParser(prog="mrc", description="Model Release Console")
    parser.add_argument("--version", action="version", version=f"mrc {__version__}")
    parser.add_argument("--config", metavar="PATH", help="configuration file (TOML)")
    parser.add_argument("--read-only", action="store_true", help="disable every mutating action")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``mrc``; return the process exit code."""
    build_parser().parse_args(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
