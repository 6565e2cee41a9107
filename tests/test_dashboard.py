"""The dashboard's data API (``/admin/v1/dashboard``, its stream) and the pages, on a real
server: the admin token guards every data endpoint, a snapshot counts what really
happens (connections, pushes, matches), the stream is bounded and ends at shutdown, and
the demo exists only under ``rtserver dev``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import trio
from api._api import ADMIN, evm_record
from trio_websocket import open_websocket_url

from rtserver.config import DashboardConfig
from rtserver.events import TransactionMatch

from conftest import RunningServer, make_config, run_server


async def _new_app(client: httpx.AsyncClient) -> tuple[str, str]:
    created = await client.post("/admin/v1/apps", json={"name": "shop"}, headers=ADMIN)
    assert created.status_code == 201, created.text
    return created.json()["app_id"], created.json()["api_key"]


async def _snapshots(response: httpx.Response) -> AsyncIterator[dict[str, object]]:
    """The ``data:`` of each server-sent event of a dashboard stream."""
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])


async def test_every_data_endpoint_needs_the_admin_token(server: RunningServer) -> None:
    async with server.client() as client:
        for path in ("/admin/v1/dashboard", "/admin/v1/dashboard/stream"):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                refused = await client.get(path, headers=headers)
                assert refused.status_code == 401, path
                assert refused.json()["error"]["message"] == "missing or wrong admin token"
                assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        snapshot = (await client.get("/admin/v1/dashboard", headers=ADMIN)).json()
    assert snapshot["chains"] == [] and snapshot["recent_events"] == []
    assert snapshot["connections_total"] == 0 and snapshot["apps"] == []


async def test_without_an_admin_token_configured_the_data_is_refused(tmp_path: Path) -> None:
    async with run_server(make_config(tmp_path / "data")) as server, server.client() as client:
        refused = await client.get("/admin/v1/dashboard", headers={"Authorization": "Bearer x"})
        assert refused.status_code == 403
        assert "admin API is disabled" in refused.json()["error"]["message"]
        # The page itself loads (it shows nothing until given a token that works).
        assert (await client.get("/dashboard")).status_code == 200


async def test_a_snapshot_counts_connections_pushes_backlog_and_matches(
    server: RunningServer,
) -> None:
    core = server.core
    async with server.client() as client:
        app_id, key = await _new_app(client)
        ws_url = server.url.replace("http", "ws") + f"/tx/api/v1/transaction/ws?api_key={key}"
        async with open_websocket_url(ws_url) as ws:
            assert json.loads(await ws.get_message())["type"] == "connected"
            # What the chain watcher does with a block's matches: stage them in its
            # transaction, publish after the commit.
            record = evm_record(7)
            matches = [
                TransactionMatch(record, (record.receiver or "",), app_id=app_id),
                TransactionMatch(record, (record.receiver or "",), user_key="u:1"),
            ]
            await core.store.write(
                lambda conn: core.match_sink.stage(conn, matches),
                after_commit=core.match_sink.publish,
            )
            push = json.loads(await ws.get_message())
            assert push["data"]["txhash"] == record.tx_hash
            snapshot = (await client.get("/admin/v1/dashboard", headers=ADMIN)).json()
        assert snapshot["connections"] == {"address-monitoring": 1}
        assert snapshot["connections_total"] == 1
        assert snapshot["messages_sent"] == {"address-monitoring": 2}
        # Not ACKed: pending for the app.
        assert snapshot["apps"] == [
            {
                "app_id": app_id,
                "pending_messages": 1,
                "webhooks": {"queued": 0, "pending": 0, "dead": 0},
            }
        ]
        [event] = snapshot["recent_events"]  # one transaction, matched twice
        assert event["tx_hash"] == record.tx_hash and event["chain"] == "ethereum:1"
        assert event["matched_for"] == ["app", "user"]
        assert event["from"] == record.sender and event["amount"] == record.amount


async def test_recent_events_are_newest_first_and_bounded(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", admin_token="secret-admin")
    config = config.replace(dashboard=DashboardConfig(recent_events=2))
    async with run_server(config) as server, server.client() as client:
        core = server.core
        for n in (1, 2, 3):
            record = evm_record(n)
            match = [TransactionMatch(record, (record.receiver or "",), connection_id="c-1")]
            await core.store.write(
                lambda conn, m=match: core.match_sink.stage(conn, m),
                after_commit=core.match_sink.publish,
            )
        snapshot = (await client.get("/admin/v1/dashboard", headers=ADMIN)).json()
    listed = [event["tx_hash"] for event in snapshot["recent_events"]]
    assert listed == [evm_record(3).tx_hash, evm_record(2).tx_hash]


async def test_the_stream_sends_a_snapshot_each_interval_to_a_bounded_number_of_viewers(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path / "data", admin_token="secret-admin")
    config = config.replace(dashboard=DashboardConfig(interval=0.2, max_viewers=1))
    async with run_server(config) as server, server.client() as client:
        async with client.stream("GET", "/admin/v1/dashboard/stream", headers=ADMIN) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            snapshots = _snapshots(stream)
            with trio.fail_after(10):
                first = await anext(snapshots)
                second = await anext(snapshots)
            assert second["viewers"] == 1 and second["time"] > first["time"]  # type: ignore[operator]
            refused = await client.get("/admin/v1/dashboard/stream", headers=ADMIN)
            assert refused.status_code == 429
            assert "dashboard.max_viewers" in refused.json()["error"]["message"]
        with trio.fail_after(10):  # the closed stream gave its place back
            while (await client.get("/admin/v1/dashboard", headers=ADMIN)).json()["viewers"]:
                await trio.sleep(0.05)
        async with client.stream("GET", "/admin/v1/dashboard/stream", headers=ADMIN) as again:
            assert again.status_code == 200


async def test_an_open_stream_does_not_hold_the_shutdown(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", admin_token="secret-admin", shutdown_grace=20.0)
    async with (
        run_server(config) as server,
        server.client() as client,
        client.stream("GET", "/admin/v1/dashboard/stream", headers=ADMIN) as stream,
    ):
        snapshots = _snapshots(stream)
        await anext(snapshots)
        server.stop.set()
        with trio.fail_after(5):  # well within the grace period
            async for _ in snapshots:
                pass
            await server.done.wait()


async def test_pages_come_from_the_package_and_the_demo_only_with_rtserver_dev(
    server: RunningServer,
) -> None:
    async with server.client() as client:
        page = await client.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<script src="/assets/dashboard.js"' in page.text
        script = await client.get("/assets/dashboard.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert "/admin/v1/dashboard/stream" in script.text
        for path in ("/assets/nothing.js", "/assets/.hidden.css", "/assets/README.md"):
            missing = await client.get(path)
            assert missing.status_code == 404 and "no asset" in missing.json()["error"]["message"]
        # `rtserver serve` has no demo: its credentials and its transfer are dev-only.
        assert (await client.get("/demo")).status_code == 404
        assert (await client.get("/demo/session")).status_code == 404
        assert (await client.post("/demo/transfer")).status_code == 404
