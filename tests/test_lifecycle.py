from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.lowlevel

from rtserver.core import Core
from rtserver.exceptions import ServiceCrashedError
from rtserver.server import DEFAULT_COMPONENTS, Component, Service, serve

from conftest import (
    REPO,
    ServerProcess,
    free_port,
    make_config,
    rtserver_sync_client,
    run_cli,
    run_server,
    start_server_process,
)


def test_serve_answers_healthz_and_exits_0_on_sigterm(
    server_process: Callable[..., ServerProcess],
) -> None:
    proc = server_process()
    assert httpx.get(proc.url + "/healthz").json() == {"status": "ok"}
    started = time.monotonic()
    assert proc.terminate() == 0
    assert time.monotonic() - started < 10  # within the default grace period
    log = proc.log()
    assert "SIGTERM received: graceful shutdown" in log
    assert "database closed" in log
    assert (proc.data_dir / "rtserver.sqlite3").exists()


def test_sigint_also_shuts_down_cleanly(server_process: Callable[..., ServerProcess]) -> None:
    proc = server_process()
    proc.proc.send_signal(signal.SIGINT)
    assert proc.proc.wait(20) == 0
    assert "SIGINT received" in proc.log()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_zero_config_start_listens_on_8080_with_local_data_dir(tmp_path: Path) -> None:
    if not _port_free(8080):
        pytest.skip("port 8080 is taken on this machine")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtserver", "serve"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get("http://127.0.0.1:8080/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise AssertionError("no answer on 127.0.0.1:8080")
        assert (workdir / "rtserver-data" / "rtserver.sqlite3").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_port_in_use_fails_with_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--bind", f"127.0.0.1:{port}", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "cannot serve" in result.stderr


def test_json_logs_carry_request_ids(server_process: Callable[..., ServerProcess]) -> None:
    proc = server_process("--log-format", "json")
    response = httpx.get(proc.url + "/healthz", headers={"X-Request-Id": "req-42"})
    assert response.status_code == 200
    assert proc.terminate() == 0
    entries = [json.loads(line) for line in proc.log().splitlines() if line.strip()]
    request_lines = [e for e in entries if e.get("ctx") == "req-42"]
    assert request_lines and request_lines[0]["msg"].startswith("GET /healthz -> 200")
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)


def test_cli_manages_apps_while_the_server_runs(
    server_process: Callable[..., ServerProcess],
) -> None:
    proc = server_process(env={"RTSERVER_SERVER_ADMIN_TOKEN": "tok"})
    data = ["--data-dir", str(proc.data_dir)]
    created = run_cli("apps", "create", "demo", "--webhook-url", "https://h.test/x", *data)
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["api_key"].startswith("rtk_") and body["webhook_secret"].startswith("whsec_")
    # The printed key works at once on an authenticated route of the running server.
    with rtserver_sync_client(proc.url) as http:
        key = {"X-API-Key": body["api_key"]}
        wallets = {"wallets": [{"chain_type": "ethereum", "address": ["0x" + "ab" * 20]}]}
        added = http.post("/tx/api/v1/addresses", json=wallets, headers=key)
        assert added.status_code == 200 and added.json()["data"] == "success"
        contains = http.post(
            "/tx/api/v1/addresses/contains",
            json={"chain_type": "ethereum", "address": "0x" + "AB" * 20},
            headers=key,
        )
        assert contains.json()["data"] == {"is_exist": True}
        admin = {"Authorization": "Bearer tok"}
        listed = http.get("/admin/v1/apps", headers=admin).json()["apps"]
        assert [a["app_id"] for a in listed] == [body["app_id"]]
        cli_list = json.loads(run_cli("apps", "list", *data).stdout)
        assert cli_list[0]["name"] == "demo" and cli_list[0]["active"] is True
        revoked = run_cli("apps", "revoke", body["app_id"], *data)
        assert revoked.returncode == 0 and json.loads(revoked.stdout)["active"] is False
        missing = run_cli("apps", "revoke", "app_missing", *data)
        assert missing.returncode == 1 and "no app 'app_missing'" in missing.stderr
        got = http.get(f"/admin/v1/apps/{body['app_id']}", headers=admin).json()
        assert got["active"] is False
        # A key revoked from the CLI stops working on the running server.
        refused = http.post("/tx/api/v1/addresses", json=wallets, headers=key)
        assert refused.status_code == 401
    assert proc.terminate() == 0


def test_crashing_service_stops_the_process_non_zero(tmp_path: Path) -> None:
    port = free_port()
    proc = start_server_process(
        tmp_path / "data",
        argv=[
            sys.executable,
            str(REPO / "tests" / "crashing_server.py"),
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env={"CRASH_AFTER": "1.0"},
        port=port,
    )
    code = proc.proc.wait(30)
    log = proc.log()
    assert code == 1, log
    assert "background service 'crasher' crashed" in log
    assert "RuntimeError: boom: the chain exploded" in log  # the traceback is logged
    assert "Traceback" in log


async def test_writes_queued_before_shutdown_are_committed(tmp_path: Path) -> None:
    """Shutdown order: a write queued before the trigger commits before the DB closes."""
    config = make_config(tmp_path)
    queued = trio.Event()
    count = 300

    def writer_component(core: Core) -> Component:
        async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            await core.store.write(lambda conn: conn.execute("CREATE TABLE t (v)"))
            task_status.started()
            async with trio.open_nursery() as nursery:
                for i in range(count):
                    nursery.start_soon(
                        core.store.write,
                        lambda conn, i=i: conn.execute("INSERT INTO t VALUES (?)", (i,)),
                    )
                while core.store.stats.queued < count - core.store.stats.jobs + 1:
                    await trio.lowlevel.checkpoint()
                queued.set()
                await trio.sleep_forever()

        return Component("writer", services=(Service("writer", run),))

    async def trigger() -> None:
        await queued.wait()

    await serve(
        config, shutdown_trigger=trigger, components=(*DEFAULT_COMPONENTS, writer_component)
    )
    conn = sqlite3.connect(config.database_path)
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == count
    conn.close()


async def test_in_process_crash_raises_service_crashed(tmp_path: Path) -> None:
    def bad(core: Core) -> Component:
        async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            raise ValueError("bad service")

        return Component("bad", services=(Service("bad", run),))

    with pytest.raises(BaseExceptionGroup) as caught:
        await serve(make_config(tmp_path), components=(*DEFAULT_COMPONENTS, bad))
    assert caught.value.subgroup(ServiceCrashedError) is not None


async def test_service_that_returns_is_a_crash_too(tmp_path: Path) -> None:
    def quitter(core: Core) -> Component:
        async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()

        return Component("quitter", services=(Service("quitter", run),))

    with pytest.raises(BaseExceptionGroup) as caught:
        async with run_server(make_config(tmp_path), (*DEFAULT_COMPONENTS, quitter)):
            await trio.sleep_forever()
    assert caught.value.subgroup(ServiceCrashedError) is not None


async def test_a_server_cancelled_from_outside_still_exits(tmp_path: Path) -> None:
    """Torn down without its graceful close (the enclosing nursery cancelled, as when a
    sibling task crashes), the server still exits: a service's last shielded write (the
    usage counts) is told the store closed instead of waiting for a writer that is gone."""

    def busy(core: Core) -> Component:
        core.usage.count("app-x", "requests", 3)  # something for the final flush
        return Component("busy")

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    serve,
                    make_config(tmp_path),
                    shutdown_trigger=trio.sleep_forever,
                    components=(*DEFAULT_COMPONENTS, busy),
                )
            )
            nursery.cancel_scope.cancel()
