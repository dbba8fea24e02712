"""The package's layering: the library modules never import the application (`edgecolbert_native.cli`).

Two checks, because each misses what the other sees: every import statement of every library file,
at module level or inside a function, resolved to the module it names (relative imports included); and
a fresh interpreter that imports every library module and touches every lazy attribute of the package.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "edgecolbert_native")
APP = "edgecolbert_native.cli"
# `python -m edgecolbert_native` is the command line by definition, not a library module.
NOT_LIBRARY = {"edgecolbert_native.__main__"}


def _library_files() -> list[tuple[str, str]]:
    """(module name, path) of every .py file of the package outside cli/."""
    out = []
    root = os.path.normpath(PACKAGE_DIR)
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("cli", "__pycache__", "data"))
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root)[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            module = ".".join(["edgecolbert_native", *rel])
            if module not in NOT_LIBRARY:
                out.append((module, os.path.join(dirpath, name)))
    return out


def imported_modules(module: str, source: str, is_package: bool) -> set[str]:
    """Absolute names of everything ``source`` (the text of ``module``) imports, anywhere in the file.
    ``from X import a`` counts as X and X.a (a may be a submodule)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def _names_app(name: str) -> bool:
    return name == APP or name.startswith(APP + ".")


def test_import_resolution_sees_every_form():
    """The scanner itself: each way of importing the application is caught, other imports are not."""
    caught = [
        ("edgecolbert_native.index.index", "from ..cli import main", False),
        ("edgecolbert_native.index.index", "def f():\n    from ..cli.index_dir import CliIndex", False),
        ("edgecolbert_native.kernels", "from .cli import corpus", False),
        ("edgecolbert_native.kernels", "from . import cli", False),
        ("edgecolbert_native.gpu", "from .. import cli", True),
        ("edgecolbert_native.codec", "import edgecolbert_native.cli.demo", False),
        ("edgecolbert_native.codec", "from edgecolbert_native import cli", False),
        ("edgecolbert_native.codec", "importlib.import_module('edgecolbert_native.cli')", False),
    ]
    for module, source, is_package in caught:
        assert any(_names_app(m) for m in imported_modules(module, source, is_package)), source
    clean = [("edgecolbert_native.index.index", "from .._progress import progress_bar\nfrom . import _colbert", False),
             ("edgecolbert_native.cli_tools", "import climate", False)]
    for module, source, is_package in clean:
        assert not any(_names_app(m) for m in imported_modules(module, source, is_package)), source


def test_library_files_never_import_the_application():
    files = _library_files()
    assert {"edgecolbert_native.kernels", "edgecolbert_native.index.index", "edgecolbert_native.gpu",
            "edgecolbert_native.encoder._encoder", "edgecolbert_native.distributed.sharded",
            "edgecolbert_native.integrations.pylate"} <= {m for m, _ in files}
    offenders = []
    for module, path in files:
        with open(path, encoding="utf-8") as f:
            names = imported_modules(module, f.read(), path.endswith("__init__.py"))
        offenders += [f"{module} imports {n}" for n in sorted(names) if _names_app(n)]
    assert not offenders, offenders


@pytest.mark.slow
def test_importing_the_library_loads_no_application_module():
    pytest.importorskip("torch")
    modules = [m for m, _ in _library_files()]
    code = (
        "import importlib, sys\n"
        # integrations/pylate.py falls back to a plain base class without PyLate, whose import takes
        # most of this test's time otherwise; what matters here is what our modules import.
        "sys.modules['pylate'] = None\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "import edgecolbert_native as ec\n"
        "for name in ec.__all__:\n"
        "    getattr(ec, name)\n"
        f"bad = sorted(m for m in sys.modules if m == {APP!r} or m.startswith({APP!r} + '.'))\n"
        "assert not bad, bad\n"
        "print(len(" + repr(modules) + "))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.strip()) == len(modules) > 20
