"""One clock: rtserver reads the time only through ``rtserver.clock.Clock``.

Checked statically over every module (a call or a reference such as
``default_factory=time.time`` counts, however the name was imported), and the Clock's
own guarantees are checked under Trio's MockClock.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from rtserver.clock import Clock

from conftest import REPO

#: Functions that read a clock. Deadlines and intervals use ``trio.current_time()``,
#: ``trio.sleep`` and the like inside the event loop, or ``Clock.monotonic``.
CLOCK_READS = frozenset(
    {
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.monotonic_ns",
        "time.perf_counter",
        "time.perf_counter_ns",
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
    }
)
#: Functions that read the clock when called without their time argument.
CLOCK_READS_WITHOUT_ARGUMENT = {"time.gmtime": 0, "time.localtime": 0, "time.strftime": 1}
#: Where the clock may be read: the Clock itself.
ALLOWED = {REPO / "rtserver" / "clock.py"}


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """``a.b.c`` of a name or attribute chain, its first part resolved through imports."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def clock_reads(path: Path) -> list[str]:
    """``line: name`` of every place ``path`` reads a clock other than through Clock."""
    tree = ast.parse(path.read_text(), str(path))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func, aliases)
            arguments = CLOCK_READS_WITHOUT_ARGUMENT.get(name or "")
            if arguments is not None and len(node.args) + len(node.keywords) <= arguments:
                found.append(f"{node.lineno}: {name}()")
        # A reference is enough: ``field(default_factory=time.time)`` reads it later.
        if isinstance(node, ast.Attribute | ast.Name) and isinstance(node.ctx, ast.Load):
            name = _dotted(node, aliases)
            if name in CLOCK_READS:
                found.append(f"{node.lineno}: {name}")
    return sorted(set(found), key=lambda line: (int(line.split(":")[0]), line))


def _modules() -> list[Path]:
    return [p for p in sorted((REPO / "rtserver").rglob("*.py")) if p not in ALLOWED]


def test_no_module_reads_the_time_but_the_clock() -> None:
    reads = {
        str(path.relative_to(REPO)): found for path in _modules() if (found := clock_reads(path))
    }
    assert reads == {}, "read the time through core.clock (rtserver/clock.py) instead"


def test_the_check_catches_every_way_of_reading_the_time(tmp_path: Path) -> None:
    """The static check is not vacuous: aliases, references and implicit reads count."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import time\n"
        "import time as t\n"
        "from time import monotonic as mono, strftime\n"
        "from datetime import datetime\n"
        "import datetime as dt\n"
        "from dataclasses import field\n"
        "a = time.time()\n"
        "b = t.perf_counter() - mono()\n"
        "c = datetime.now()\n"
        "d = dt.datetime.utcnow()\n"
        "e = field(default_factory=time.time)\n"
        "f = strftime('%Y')\n"
        "g = time.strftime('%Y', time.gmtime(0))\n"  # formats a given time: allowed
        "h = datetime.fromtimestamp(0)\n"  # allowed
    )
    assert clock_reads(sample) == [
        "7: time.time",
        "8: time.monotonic",
        "8: time.perf_counter",
        "9: datetime.datetime.now",
        "10: datetime.datetime.utcnow",
        "11: time.time",
        "12: time.strftime()",
    ]


@pytest.mark.parametrize("make", [Clock.system, Clock.following_trio])
async def test_monotonic_is_the_runs_clock(make: Callable[[], Clock]) -> None:
    clock = make()
    assert clock.monotonic() == pytest.approx(trio.current_time(), abs=0.5)
    assert abs(clock.time() - time.time()) < 5
    assert abs(clock.time_ms() - clock.time() * 1000) < 1000


async def test_following_trio_moves_wall_time_with_the_mock_clock(
    mock_clock: trio.testing.MockClock,
) -> None:
    clock = Clock.following_trio()
    wall, mono = clock.time(), clock.monotonic()
    mock_clock.jump(3600)
    assert clock.monotonic() == mono + 3600
    assert clock.time() == pytest.approx(wall + 3600)
    assert clock.time_ms() == int(clock.time() * 1000)


async def test_the_clock_is_read_from_worker_threads(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Store jobs run on the SQLite threads and read the core's clock there."""
    clock = Clock.following_trio()
    mock_clock.jump(120)
    in_thread = await trio.to_thread.run_sync(lambda: (clock.monotonic(), clock.time()))
    assert in_thread[0] == trio.current_time()
    assert in_thread[1] == pytest.approx(clock.time())


def test_system_clock_outside_a_run_is_the_systems() -> None:
    """The CLI builds one outside any Trio run."""
    clock = Clock.system()
    assert abs(clock.time() - time.time()) < 1
    assert abs(clock.monotonic() - time.monotonic()) < 1
