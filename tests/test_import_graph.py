"""The core knows no wire format and no web framework: it imports neither Quart, Hypercorn
nor any protocol package, so a new protocol (or another front-end) plugs in from outside.

Checked twice: statically over every module's import statements (lazy imports inside
functions included), and at run time in a fresh interpreter (what an import really pulls
in, through ``__init__`` modules too).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

#: The core: storage, the domain, chains, delivery (streams, hub, session runtime).
CORE = [
    "rtserver.addresses",
    "rtserver.balances",
    "rtserver.chains",
    "rtserver.clock",
    "rtserver.config",
    "rtserver.connections",
    "rtserver.core",
    "rtserver.dashboard",
    "rtserver.delivery",
    "rtserver.events",
    "rtserver.exceptions",
    "rtserver.logs",
    "rtserver.matching",
    "rtserver.metrics",
    "rtserver.payments",
    "rtserver.pools",
    "rtserver.proposals",
    "rtserver.records",
    "rtserver.services",
    "rtserver.store",
    "rtserver.usage",
    "rtserver.user_auth",
    "rtserver.webhook_urls",
]
#: What the core must never import.
FORBIDDEN = (
    "quart",
    "quart_trio",
    "hypercorn",
    "werkzeug",
    "rtserver.http",
    "rtserver.protocols",
    "rtserver.components",
    "rtserver.server",
    "rtserver.cli",
)


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _core_files() -> list[Path]:
    files: list[Path] = []
    for module in CORE:
        path = REPO / Path(*module.split("."))
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")])
    return files


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_core_module_names_a_framework_or_a_protocol(path: Path) -> None:
    assert [name for name in _imports(path) if _forbidden(name)] == []


@pytest.mark.parametrize("module", CORE)
def test_importing_a_core_module_loads_no_framework_or_protocol(module: str) -> None:
    probe = (
        f"import sys, {module}\n"
        f"print('\\n'.join(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r}"
        f" or n.startswith(('rtserver.http', 'rtserver.protocols', 'rtserver.components',"
        f" 'rtserver.server', 'rtserver.cli')))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.split()
    assert loaded == [], f"importing {module} loads {loaded}"


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The static check is not vacuous: it flags a lazy import inside a function."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from quart import websocket\n    import rtserver.protocols\n")
    assert [n for n in _imports(sample) if _forbidden(n)] == ["quart", "rtserver.protocols"]


#: An SQL statement in a string: the start of one of the statements rtserver runs.
_SQL = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", "CREATE ", "ALTER ", "DROP ", "PRAGMA ")


def test_no_sql_outside_the_store() -> None:
    """Every statement lives in a repository under rtserver/store/: the schema and its
    queries change in one place, and the rest of the code calls named functions."""
    found = []
    for path in sorted((REPO / "rtserver").rglob("*.py")):
        if "store" in path.relative_to(REPO / "rtserver").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.lstrip().upper()
                if text.startswith(_SQL) and (
                    " FROM " in text
                    or " INTO " in text
                    or " SET " in text
                    or " TABLE " in text
                    or text.startswith("PRAGMA ")
                ):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value[:60]!r}")
    assert not found, "SQL outside rtserver/store/:\n" + "\n".join(found)
