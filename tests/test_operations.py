"""What an operator sees: the version, a clear line when the address cannot be bound, JSON
log lines with real fields, a line per WebSocket opened and closed, quiet libraries."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from delivery.helpers import connect, connected, inject, make_record, new_app
from trio_websocket import open_websocket_url

from rtserver.config import DeliveryConfig, WebhookConfig
from rtserver.store import SCHEMA_VERSION

from conftest import (
    REPO,
    ServerProcess,
    free_port,
    make_config,
    rtserver_client,
    run_cli,
    run_server,
)


def test_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("rtserver ") and f"schema {SCHEMA_VERSION}" in done.stdout


def test_a_port_in_use_is_one_line_naming_the_address_and_the_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["serve", "--bind", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
        done = subprocess.run(
            [sys.executable, "-m", "rtserver", *argv],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
    assert done.returncode == 1
    critical = [line for line in done.stderr.splitlines() if "CRITICAL" in line]
    assert len(critical) == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in critical[0]
    assert "nursery" not in done.stderr


def _json_lines(proc: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.log().splitlines() if line.strip()]


async def test_json_logs_carry_fields_and_each_socket_has_an_open_and_a_close_line(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    data_dir = tmp_path / "data"
    created = run_cli("apps", "create", "ops", "--data-dir", str(data_dir))
    app = json.loads(created.stdout)
    proc = await trio.to_thread.run_sync(
        lambda: server_process("--log-format", "json", "--log-level", "debug", data_dir=data_dir)
    )
    async with rtserver_client(proc.url) as client:
        assert (await client.get("/healthz")).status_code == 200
    url = (
        proc.url.replace("http://", "ws://") + "/tx/api/v1/transaction/ws?api_key=" + app["api_key"]
    )
    async with open_websocket_url(url) as ws:
        await ws.get_message()  # "connected"
    with trio.fail_after(10):
        while not any("socket closed" in e["msg"] for e in _json_lines(proc)):
            await trio.sleep(0.05)
    await trio.to_thread.run_sync(proc.terminate)
    lines = _json_lines(proc)  # every line is a JSON object

    access = next(e for e in lines if e.get("route") == "/healthz")
    assert access["status"] == 200 and access["method"] == "GET"
    assert isinstance(access["duration_ms"], float) and access["ctx"]
    opened = next(e for e in lines if "socket opened" in e["msg"])
    closed = next(e for e in lines if "socket closed" in e["msg"])
    assert opened["protocol"] == closed["protocol"] == "address-monitoring"
    assert opened["connection"] == closed["connection"] == opened["ctx"]
    assert opened["app"] == closed["app"] == app["app_id"]
    assert closed["close_code"] == 1000 and closed["closed_by"] == "client"
    assert isinstance(closed["duration_s"], float)
    # At debug level, other libraries still log nothing below warning.
    chatty = [e for e in lines if not e["logger"].startswith("rtserver")]
    assert all(e["level"] in ("warning", "error", "critical") for e in chatty), chatty


async def test_metrics_show_backlogs_connections_and_the_process(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data").replace(
        delivery=DeliveryConfig(backlog_interval=0.05),
        # A receiver that refuses: deliveries stay pending, then go dead after one retry.
        webhooks=WebhookConfig(
            batch_ms=10, retry_schedule=(0.05,), retry_jitter=0.0, allow_private_addresses=True
        ),
    )
    refused = f"http://127.0.0.1:{free_port()}/hook"
    async with run_server(config) as server, trio.open_nursery() as nursery:
        core = server.core
        quiet, hooked = await new_app(core), await new_app(core, refused)
        for n in range(3):
            await inject(core, make_record(n), [quiet.app.app_id, hooked.app.app_id])
        ws = await connect(nursery, server.url, hooked.api_key)
        await connected(ws)

        def sample(name: str, **labels: str) -> float | None:
            return core.metrics.registry.get_sample_value(name, labels)

        with trio.fail_after(20):
            while sample("rtserver_webhook_backlog", app=hooked.app.app_id, state="dead") is None:
                await trio.sleep(0.05)
        app = quiet.app.app_id
        assert sample("rtserver_delivery_pending_messages", app=app) == 3
        assert sample("rtserver_delivery_pending_messages", app=hooked.app.app_id) == 3
        assert sample("rtserver_webhook_backlog", app=app, state="dead") is None  # no webhook
        assert sample("rtserver_open_connections", endpoint="address-monitoring") == 1
        assert (sample("process_resident_memory_bytes") or 0) > 0
        assert (sample("process_open_fds") or 0) > 0
        async with server.client() as client:
            text = (await client.get("/metrics")).text
        assert 'rtserver_webhook_backlog{app="' in text and "process_cpu_seconds_total" in text
        await ws.aclose()


async def test_a_malformed_tx_hash_is_a_json_error_with_a_request_id(tmp_path: Path) -> None:
    async with run_server(make_config(tmp_path / "data")) as server:
        created = await new_app(server.core)
        async with server.client(headers={"X-API-Key": created.api_key}) as client:
            answer = await client.get(
                "/tx/api/v1/transfers/detail",
                params={"chain_type": "ethereum", "chain_id": "1", "tx_hash": "abc"},
            )
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == 400 and "tx_hash" in body["msg"] and body["data"] is None
    assert body["request_id"] == answer.headers["X-Request-Id"] != ""


async def test_an_online_backup_is_a_consistent_copy_taken_while_serving(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    data_dir = tmp_path / "data"
    proc = await trio.to_thread.run_sync(lambda: server_process(data_dir=data_dir))
    created = json.loads(run_cli("apps", "create", "kept", "--data-dir", str(data_dir)).stdout)
    copy = tmp_path / "backup.sqlite3"
    done = run_cli("backup", str(copy), "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["bytes"] == copy.stat().st_size > 0
    assert report["also_keep"] == str(data_dir / "webhook-secrets.key")
    assert run_cli("backup", str(copy), "--data-dir", str(data_dir)).returncode == 2  # exists
    await trio.to_thread.run_sync(proc.terminate)
    # The copy is a whole database: a server started on it has the app.
    restored = tmp_path / "restored"
    restored.mkdir()
    copy.rename(restored / "rtserver.sqlite3")
    listed = json.loads(run_cli("apps", "list", "--data-dir", str(restored)).stdout)
    assert [a["app_id"] for a in listed] == [created["app_id"]]
