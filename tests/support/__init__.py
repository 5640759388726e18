"""Helpers shared by the test suites: sample git repositories built with real git commands."""
