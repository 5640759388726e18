"""The core/front-end boundary, enforced on the source.

Nothing under core/ imports textual or the front ends (``tui``), and core's
library code never prints, prompts, parses arguments or exits: that is the
front ends' job. The child-process programs core starts (the local proxy, the
demo traffic generator, the process guard, the sandbox builder) keep their
own small entry points; they are allowed by (module, function) in
:data:`ENTRY_POINTS`, nothing else is.
"""

from __future__ import annotations

import ast
import pathlib

from tests.support.python import loaded_after

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORE = ROOT / "core"

#: Copied into the demo's sample repository as files; not core modules.
NOT_CORE = (CORE / "demo" / "files",)

#: Where core may do what only a program's entry point does: (module, scope) ->
#: the constructs allowed there. A scope is a function's qualified name,
#: "__main__" for the body of ``if __name__ == "__main__":`` and "<module>" for
#: other module-level code.
ENTRY_POINTS: dict[tuple[str, str], set[str]] = {
    ("core.targets.local_proxy", "<module>"): {"import argparse"},
    ("core.targets.local_proxy", "main"): {"argparse", "print("},
    ("core.targets.local_proxy", "__main__"): {"sys.exit("},
    ("core.demo.traffic", "<module>"): {"import argparse"},
    ("core.demo.traffic", "main"): {"argparse"},
    ("core.demo.traffic", "_burst_when_asked"): {"print("},
    ("core.demo.traffic", "__main__"): {"sys.exit("},
    ("core.lifeline", "__main__"): {"sys.exit("},
}


def _core_files() -> list[pathlib.Path]:
    return [
        path
        for path in sorted(CORE.rglob("*.py"))
        if not any(path.is_relative_to(skip) for skip in NOT_CORE)
    ]


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_main_guard(node: ast.AST) -> bool:
    """Return True for ``if __name__ == "__main__":``."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    return (
        isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _front_end_constructs(node: ast.AST) -> list[str]:
    """Return what ``node`` itself does that only a front end may do ([] for nothing)."""
    found: list[str] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "argparse":
                found.append("import argparse")
    elif isinstance(node, ast.ImportFrom):
        if node.module == "argparse":
            found.append("import argparse")
        elif node.module == "getpass" and any(a.name == "getpass" for a in node.names):
            found.append("getpass(")
        elif node.module == "sys" and any(a.name == "exit" for a in node.names):
            found.append("sys.exit(")
    elif isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("print", "input", "exit", "quit"):
            found.append(f"{func.id}(")
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if (func.value.id, func.attr) == ("sys", "exit"):
                found.append("sys.exit(")
            elif (func.value.id, func.attr) == ("getpass", "getpass"):
                found.append("getpass(")
    elif isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "argparse":
            found.append("argparse")
    elif isinstance(node, ast.Raise) and node.exc is not None:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(exc, ast.Name) and exc.id == "SystemExit":
            found.append("raise SystemExit")
    return found


def front_end_code(source: str, module: str) -> list[tuple[str, str, int, str]]:
    """Return (module, scope, line, construct) for every front-end construct in ``source``."""
    found: list[tuple[str, str, int, str]] = []

    def visit(node: ast.AST, scope: str) -> None:
        line = getattr(node, "lineno", 0)  # statements and expressions have one
        found.extend((module, scope, line, c) for c in _front_end_constructs(node))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            scope = node.name if scope in ("<module>", "__main__") else f"{scope}.{node.name}"
        for child in ast.iter_child_nodes(node):
            main_guard = isinstance(node, ast.Module) and _is_main_guard(child)
            visit(child, "__main__" if main_guard else scope)

    visit(ast.parse(source), "<module>")
    return found


def _not_allowed(found: list[tuple[str, str, int, str]]) -> list[tuple[str, str, int, str]]:
    return [f for f in found if f[3] not in ENTRY_POINTS.get((f[0], f[1]), set())]


def test_no_module_under_core_imports_textual_or_the_front_ends() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path}:{node.lineno} {n}" for n in names if n.split(".")[0] in ("textual", "tui")
            ]
    assert not offenders, offenders


def test_importing_every_core_module_loads_neither_textual_nor_tui() -> None:
    modules = [_module_name(p) for p in _core_files() if p.name != "__main__.py"]
    code = f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
    _, loaded = loaded_after(code, ("textual", "tui"))
    assert loaded == []


def test_core_never_prints_prompts_parses_arguments_or_exits() -> None:
    """Only the child-process entry points in ENTRY_POINTS may, and only what is listed."""
    found = []
    for path in _core_files():
        found += front_end_code(path.read_text(encoding="utf-8"), _module_name(path))
    assert not _not_allowed(found), _not_allowed(found)
    used = {(module, scope) for module, scope, _, construct in found}
    assert set(ENTRY_POINTS) <= used, f"stale entries: {set(ENTRY_POINTS) - used}"


def test_the_scan_finds_each_construct_outside_the_entry_points() -> None:
    source = (
        "import argparse\n"
        "from getpass import getpass\n"
        "import sys\n"
        "def load(path):\n"
        "    print(path)\n"
        "    answer = input('?')\n"
        "    argparse.ArgumentParser()\n"
        "    raise SystemExit(2)\n"
        "class Workspace:\n"
        "    def close(self):\n"
        "        sys.exit(1)\n"
        "if __name__ == '__main__':\n"
        "    raise SystemExit\n"
    )
    found = {(scope, construct) for _, scope, _, construct in front_end_code(source, "core.x")}
    assert found == {
        ("<module>", "import argparse"),
        ("<module>", "getpass("),
        ("load", "print("),
        ("load", "input("),
        ("load", "argparse"),
        ("load", "raise SystemExit"),
        ("Workspace.close", "sys.exit("),
        ("__main__", "raise SystemExit"),
    }
    # An allowed entry point does not cover its module's other functions.
    elsewhere = front_end_code("def helper():\n    print('x')\n", "core.targets.local_proxy")
    assert _not_allowed(elsewhere) == elsewhere
