"""Shared fixtures: in-process servers on real loopback sockets, and server subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from rtserver.clock import Clock
from rtserver.config import Config, ServerConfig, load_config
from rtserver.core import Core
from rtserver.server import DEFAULT_COMPONENTS, Component, ComponentFactory, serve

from openapi_check import CHECKER, async_hook, check_response

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_config(data_dir: Path, **server: Any) -> Config:
    """A config for tests: loopback, free port, short grace, given data dir."""
    base = load_config(env={})
    values = {"bind": f"127.0.0.1:{free_port()}", "data_dir": str(data_dir), "shutdown_grace": 5.0}
    values.update(server)
    return base.replace(server=ServerConfig(**values))


@dataclass
class RunningServer:
    """An in-process server: its base URL, its core, and how to stop it."""

    url: str
    core: Core
    stop: trio.Event
    done: trio.Event
    error: list[BaseException] = field(default_factory=list)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return rtserver_client(self.url, **kwargs)


def rtserver_client(url: str, **kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client to the rtserver at ``url`` whose every response is checked against
    the OpenAPI description (``openapi_check``)."""
    kwargs.setdefault("timeout", 10)
    return httpx.AsyncClient(base_url=url, event_hooks={"response": [async_hook()]}, **kwargs)


def rtserver_sync_client(url: str, **kwargs: Any) -> httpx.Client:
    """:func:`rtserver_client` for synchronous tests."""
    kwargs.setdefault("timeout", 10)
    return httpx.Client(base_url=url, event_hooks={"response": [check_response]}, **kwargs)


@pytest.fixture(autouse=True)
def _responses_match_the_openapi_description() -> Iterator[None]:
    """A response that did not match the description fails its test, even where the
    test caught the hook's AssertionError."""
    before = len(CHECKER.problems)
    yield
    assert CHECKER.problems[before:] == []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    checked, unchecked = CHECKER.checked, CHECKER.unchecked
    if checked or unchecked:
        terminalreporter.write_line(
            f"OpenAPI: {sum(checked.values())} responses of {len(checked)} operation/status"
            f" pairs matched the description; {sum(unchecked.values())} to undescribed paths"
            " (test components) were not checked"
        )
        unreached = CHECKER.unreached()
        if unreached:
            terminalreporter.write_line(
                f"OpenAPI: operations no checked response reached: {', '.join(unreached)}"
            )


@pytest.fixture
def moving_mock_clock() -> trio.testing.MockClock:
    """A run clock for tests of a whole server: it runs at real speed (sockets and the
    store's threads keep their real timing), and ``jump(seconds)`` passes time at once."""
    return trio.testing.MockClock(rate=1.0)


@pytest.fixture
async def clock() -> Clock:
    """A clock that follows the test's Trio clock: with ``autojump_clock`` or
    ``mock_clock`` as well, sleeping or jumping moves its wall time too."""
    return Clock.following_trio()


@asynccontextmanager
async def run_server(
    config: Config,
    components: Sequence[ComponentFactory] = DEFAULT_COMPONENTS,
    *,
    clock: Clock | None = None,
) -> AsyncIterator[RunningServer]:
    """Serve ``config`` in a child task; stop it (gracefully) when the block exits.

    ``clock`` is the server's time source (``Clock.system()`` when None).
    """
    captured: list[Core] = []

    def capture(core: Core) -> Component:
        captured.append(core)
        return Component("test-capture")

    stop = trio.Event()
    done = trio.Event()
    async with trio.open_nursery() as nursery:

        async def run(task_status: trio.TaskStatus[list[str]]) -> None:
            try:
                await serve(
                    config,
                    shutdown_trigger=stop.wait,
                    components=(*components, capture),
                    clock=clock,
                    task_status=task_status,
                )
            finally:
                done.set()

        binds = await nursery.start(run)
        server = RunningServer(binds[0], captured[0], stop, done)
        try:
            yield server
        finally:
            stop.set()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with run_server(make_config(tmp_path / "data", admin_token="secret-admin")) as running:
        yield running


@dataclass
class ServerProcess:
    """A real ``rtserver serve`` subprocess on a loopback port."""

    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def rtserver_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rtserver", *args]


def start_server_process(
    data_dir: Path,
    *extra: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
    wait: bool = True,
) -> ServerProcess:
    """Start ``rtserver serve`` and wait until /healthz answers (or the process dies)."""
    port = port or free_port()
    log_path = data_dir.parent / f"server-{port}-{time.monotonic_ns()}.log"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = argv or rtserver_cmd(
        "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", str(data_dir), *extra
    )
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**clean_env(), **(env or {})},
        )
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", data_dir, log_path)
    if wait:
        wait_healthy(server)
    return server


def wait_healthy(server: ServerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited with {server.proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.kill()
    raise AssertionError(f"server did not become healthy:\n{server.log()}")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RTSERVER_")}


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(*extra: str, **kwargs: Any) -> ServerProcess:
        data_dir = kwargs.pop("data_dir", tmp_path / "data")
        proc = start_server_process(data_dir, *extra, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.kill()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        rtserver_cmd(*args),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**clean_env(), **(env or {})},
        timeout=60,
    )


@dataclass
class DevProcess:
    """A real ``rtserver dev``: its process (stdout: the banner) and its two ports."""

    proc: subprocess.Popen[str]
    port: int
    anvil_port: int


def start_dev_process() -> DevProcess:
    """``rtserver dev`` as a newcomer runs it, on free loopback ports."""
    port, anvil_port = free_port(), free_port()
    argv = ["dev", "--bind", f"127.0.0.1:{port}", "--anvil-port", str(anvil_port)]
    proc = subprocess.Popen(
        rtserver_cmd(*argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO
    )
    return DevProcess(proc, port, anvil_port)


def read_dev_banner(proc: subprocess.Popen[str], timeout: float = 60.0) -> dict[str, str]:
    """The lines ``rtserver dev`` prints once it serves, by their label (``server``,
    ``demo``, ``admin``, ``API key``'s first word ``API``, …; ``curl``: the transfer)."""
    lines: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"rtserver dev exited with {proc.wait()}")
        if line.startswith("Ctrl-C"):
            return lines
        if line.startswith("    curl"):
            lines["curl"] = line.strip()
        elif line.startswith("  "):
            label, _, value = line.strip().partition(" ")
            lines[label] = value.strip()
    raise AssertionError("no banner")
