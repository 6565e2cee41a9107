"""The transaction stream, in-process on real loopback sockets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from delivery.helpers import (
    command,
    connect,
    connected,
    inject,
    make_record,
    new_app,
    nothing_pending,
    recv,
    ws_url,
)
from rtserver.clock import Clock
from rtserver.config import DeliveryConfig, WebSocketConfig
from rtserver.protocols.address_monitoring._naming import push_data
from rtserver.store import apps, outbox

from conftest import RunningServer, make_config, rtserver_client, run_server


async def rejected_status(url: str, headers: list[tuple[bytes, bytes]]) -> int:
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url, extra_headers=headers):
            pass
    return rejected.value.status_code


async def test_handshake_failures(server: RunningServer) -> None:
    url = ws_url(server.url)
    assert await rejected_status(url, []) == 400
    assert await rejected_status(url, [(b"X-API-Key", b"rtk_nope")]) == 401
    created = await new_app(server.core)
    now = server.core.clock.time()
    await server.core.store.write(lambda c: apps.revoke_app(c, created.app.app_id, now=now))
    assert await rejected_status(url, [(b"X-API-Key", created.api_key.encode())]) == 401
    async with server.client() as client:
        plain = await client.get("/tx/api/v1/transaction/ws")
    assert plain.status_code == 426
    assert plain.json()["code"] == 426


async def test_push_ack_and_resend(server: RunningServer) -> None:
    core = server.core
    app = await new_app(core)
    app_id = app.app.app_id
    async with trio.open_nursery() as nursery:
        ws = await connect(nursery, server.url, app.api_key)
        hello = await connected(ws)
        assert hello["code"] == 0 and hello["msg"] == "success"
        assert hello["data"]["appId"] == app_id and hello["data"]["clientId"]
        assert set(hello) == {"id", "time", "type", "code", "data", "msg"}
        assert hello["data"]["resendDuration"] == 180  # the default window
        await inject(core, make_record(1), [app_id])
        await inject(core, make_record(2), [app_id])
        first, second = await recv(ws), await recv(ws)
        assert first["type"] == "transaction" and first["code"] == 0
        assert first["data"]["txhash"] == make_record(1).tx_hash
        assert first["data"]["listenAddress"] == [make_record(1).sender]
        assert first["data"]["is_reorg_resend"] is False
        assert second["data"]["txhash"] == make_record(2).tx_hash
        ack = await command(
            ws, {"id": "a1", "type": "transactionACK", "data": {"messageId": first["id"]}}
        )
        assert ack["code"] == 0 and ack["type"] == "transactionACK" and ack["id"] == "a1"
        assert ack["data"]["txHash"] == make_record(1).tx_hash
        await ws.aclose()

        # Reconnect: the unACKed one comes again (same id, same bytes), the ACKed never.
        ws = await connect(nursery, server.url, app.api_key)
        await connected(ws)
        again = await recv(ws)
        assert again == second
        ack = await command(
            ws,
            {
                "id": "a2",
                "type": "transactionACK",
                "data": {"chain_type": "ethereum", "chain_id": 1, "txHash": make_record(2).tx_hash},
            },
        )
        assert ack == {**ack, "code": 0, "data": {"txHash": make_record(2).tx_hash}}
        await nothing_pending(ws)
        await ws.aclose()
        ws = await connect(nursery, server.url, app.api_key)
        await connected(ws)
        await nothing_pending(ws)
        assert await core.store.read(outbox.pending_count, app_id) == 0
        await ws.aclose()
    async with server.client() as client:
        metrics = (await client.get("/metrics")).text
    sent = next(
        line
        for line in metrics.splitlines()
        if line.startswith('rtserver_messages_sent_total{endpoint="address-monitoring"}')
    )
    # At least: 3 connected, 2 pushes, 1 resend, 2 ACK replies.
    assert float(sent.split()[-1]) >= 8


async def test_resend_window_header(
    tmp_path: Path, moving_mock_clock: MockClock, clock: Clock
) -> None:
    """The window is measured on the server's clock: a jump of the test's clock ages the
    message without a real wait."""
    async with run_server(make_config(tmp_path / "data"), clock=clock) as server:
        core = server.core
        app = await new_app(core)
        await inject(core, make_record(1), [app.app.app_id])
        async with trio.open_nursery() as nursery:
            moving_mock_clock.jump(1.1)
            for window in ("1", "0"):  # both too short for a message 1.1 s old
                ws = await connect(nursery, server.url, app.api_key, resend=window)
                hello = await connected(ws)
                assert hello["data"]["resendDuration"] == int(window)
                assert (hello["data"]["resendCount"], hello["data"]["pendingNotResent"]) == (0, 1)
                await nothing_pending(ws)
                await ws.aclose()
            ws = await connect(nursery, server.url, app.api_key, resend="60")
            hello = await connected(ws)
            assert (hello["data"]["resendCount"], hello["data"]["pendingNotResent"]) == (1, 0)
            assert (await recv(ws))["data"]["txhash"] == make_record(1).tx_hash
            await ws.aclose()


async def test_every_connection_of_an_app_receives(server: RunningServer) -> None:
    core = server.core
    app = await new_app(core)
    other = await new_app(core)
    async with trio.open_nursery() as nursery:
        a = await connect(nursery, server.url, app.api_key)
        b = await connect(nursery, server.url, app.api_key)
        c = await connect(nursery, server.url, other.api_key)
        for ws in (a, b, c):
            await connected(ws)
        for n in range(5):
            await inject(core, make_record(n), [app.app.app_id])
        got_a = [(await recv(a))["data"]["txhash"] for _ in range(5)]
        got_b = [(await recv(b))["data"]["txhash"] for _ in range(5)]
        assert got_a == got_b == [make_record(n).tx_hash for n in range(5)]
        await nothing_pending(c)
        for ws in (a, b, c):
            await ws.aclose()


async def test_commands(server: RunningServer) -> None:
    core = server.core
    app = await new_app(core)
    address = "0xAbCdEf0000000000000000000000000000000001"
    async with trio.open_nursery() as nursery:
        ws = await connect(nursery, server.url, app.api_key)
        hello = await connected(ws)
        client_id = hello["data"]["clientId"]
        pong = await command(ws, {"id": "p1", "type": "ping", "data": {}})
        assert pong["type"] == "pong" and pong["data"] is None and pong["code"] == 0
        sub = await command(
            ws,
            {
                "id": "s1",
                "type": "subscribe",
                "data": {"address": address, "chain_type": "ETHEREUM"},
            },
        )
        assert sub["code"] == 0
        assert sub["data"] == {
            "API Key": app.app.app_id,
            "address": address,
            "chain_type": "ethereum",
        }
        bad = await command(ws, {"id": "s2", "type": "subscribe", "data": {"address": address}})
        assert (bad["code"], bad["msg"], bad["data"], bad["id"]) == (
            400,
            "address and chain_type required",
            None,
            "s2",
        )

        # A connection-scoped match reaches this connection only, and is not stored.
        await inject(core, make_record(7), connection_ids=[client_id], listen=address.lower())
        pushed = await recv(ws)
        assert (
            pushed["type"] == "transaction" and pushed["data"]["txhash"] == make_record(7).tx_hash
        )
        assert await core.store.read(outbox.pending_count, app.app.app_id) == 0

        unsub = await command(ws, {"id": "u1", "type": "unsubscribe", "data": {"address": address}})
        assert unsub["code"] == 0 and unsub["data"] == {"address": address, "chainType": None}
        unsub = await command(
            ws,
            {
                "id": "u2",
                "type": "unsubscribe",
                "data": {"address": address, "chain_type": "ethereum"},
            },
        )
        assert unsub["data"] == {"address": address, "chainType": "ethereum"}
        bad = await command(ws, {"id": "u3", "type": "unsubscribe", "data": {}})
        assert (bad["code"], bad["msg"]) == (400, "address required")

        await inject(core, make_record(8), [app.app.app_id])
        push = await recv(ws)
        by_id = await command(
            ws,
            {
                "id": "g1",
                "type": "getTxHash",
                "data": {"chain_type": "ethereum", "chain_id": 1, "messageId": push["id"]},
            },
        )
        assert by_id["code"] == 0 and by_id["data"]["txhash"] == make_record(8).tx_hash
        by_hash = await command(
            ws,
            {
                "id": "g5",
                "type": "getTxHash",
                "data": {"chain_type": "ethereum", "chain_id": 1, "txHash": make_record(8).tx_hash},
            },
        )
        assert by_hash["code"] == 0 and by_hash["data"]["txhash"] == make_record(8).tx_hash
        # Live public chain data, not stored for the app: not in its view (docs/security.md).
        not_stored = await command(
            ws,
            {
                "id": "g2",
                "type": "getTxHash",
                "data": {"chain_type": "ethereum", "chain_id": 1, "txHash": make_record(7).tx_hash},
            },
        )
        assert (not_stored["code"], not_stored["msg"]) == (404, "transaction not found")
        missing = await command(
            ws,
            {
                "id": "g3",
                "type": "getTxHash",
                "data": {"chain_type": "ethereum", "chain_id": 1, "txHash": "0xdead"},
            },
        )
        assert (missing["code"], missing["msg"], missing["data"]) == (
            404,
            "transaction not found",
            None,
        )
        bad = await command(
            ws, {"id": "g4", "type": "getTxHash", "data": {"chain_type": "ethereum"}}
        )
        assert (bad["code"], bad["msg"]) == (400, "chain_type, chain_id, txHash required")
        bad = await command(ws, {"id": "k1", "type": "transactionACK", "data": {"txHash": "0x1"}})
        assert (bad["code"], bad["msg"], bad["type"]) == (
            400,
            "chain_type and messageId/txHash required",
            "transactionACK",
        )
        # ACKs are idempotent.
        for n in range(2):
            ok = await command(
                ws, {"id": f"k{n + 2}", "type": "transactionACK", "data": {"messageId": push["id"]}}
            )
            assert ok["code"] == 0
        await ws.aclose()
        # The connection-scoped push is not resent to a new connection; the ACKed one neither.
        ws = await connect(nursery, server.url, app.api_key)
        await connected(ws)
        await nothing_pending(ws)
        await ws.aclose()


MALFORMED: list[str | bytes] = [
    "not json",
    "{",
    "[]",
    "42",
    "null",
    '"a string"',
    "{}",
    '{"type": "ping"}',
    '{"id": 5, "type": "ping"}',
    '{"id": "", "type": "ping"}',
    '{"id": "x", "type": 7}',
    '{"id": "x"}',
    '{"id": "x", "type": "nope"}',
    '{"id": "x", "type": "subscribe", "data": "oops"}',
    '{"id": "x", "type": "subscribe", "data": {"address": 5, "chain_type": []}}',
    '{"id": "x", "type": "getTxHash", "data": {"chain_type": "ethereum", "chain_id": "1", "txHash": "0x"}}',
    '{"id": "x", "type": "getTxHash", "data": {"chain_type": "ethereum", "chain_id": true, "txHash": "0x"}}',
    '{"id": "x", "type": "transactionACK", "data": {"messageId": 12}}',
    '{"id": "x", "type": "transactionACK", "data": {"chain_type": "ethereum", "chain_id": "x", "txHash": "0x"}}',
    json.dumps({"id": "y" * 5000, "type": "ping"}),
    json.dumps({"id": "x", "type": "z" * 30000}),
    json.dumps({"id": "x", "type": "subscribe", "data": {"address": "a" * 40000}}),
    "[" * 10000 + "]" * 10000,
    b"\xff\xfe binary garbage",
    b'{"id": "bin", "type": "ping"}',
]


async def test_malformed_frames_get_error_envelopes(server: RunningServer) -> None:
    app = await new_app(server.core)
    async with trio.open_nursery() as nursery:
        ws = await connect(nursery, server.url, app.api_key)
        await connected(ws)
        for frame in MALFORMED:
            reply = await command(ws, frame)
            assert set(reply) == {"id", "time", "type", "code", "data", "msg"}, reply
            if frame == b'{"id": "bin", "type": "ping"}':
                assert reply["type"] == "pong"
            else:
                assert reply["code"] == 400 and reply["data"] is None, (frame, reply)
                assert reply["msg"], reply
        await nothing_pending(ws)
        await ws.aclose()


async def test_oversized_frame_closes_1009_and_server_lives(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data").replace(websocket=WebSocketConfig(max_frame_bytes=4096))
    async with run_server(config) as server:
        app = await new_app(server.core)
        async with trio.open_nursery() as nursery:
            ws = await connect(nursery, server.url, app.api_key)
            await connected(ws)
            await ws.send_message(
                json.dumps({"id": "x", "type": "ping", "data": {"pad": "p" * 5000}})
            )
            with pytest.raises(ConnectionClosed) as closed:
                with trio.fail_after(10):
                    while True:
                        await ws.get_message()
            assert closed.value.reason.code == 1009
            ws = await connect(nursery, server.url, app.api_key)
            await connected(ws)
            await nothing_pending(ws)
            await ws.aclose()


async def test_shutdown_closes_sockets_with_1001(tmp_path: Path) -> None:
    async with run_server(make_config(tmp_path / "data")) as server:
        app = await new_app(server.core)
        async with trio.open_nursery() as nursery:
            sockets = [await connect(nursery, server.url, app.api_key) for _ in range(3)]
            for ws in sockets:
                await connected(ws)
            server.stop.set()
            for ws in sockets:
                with pytest.raises(ConnectionClosed) as closed:
                    with trio.fail_after(10):
                        await ws.get_message()
                assert closed.value.reason.code == 1001
            with trio.fail_after(10):
                await server.done.wait()


async def test_status_and_replay(server: RunningServer) -> None:
    core = server.core
    app = await new_app(core)
    headers = {"X-API-Key": app.api_key}
    async with trio.open_nursery() as nursery, server.client(headers=headers) as client:
        ws = await connect(nursery, server.url, app.api_key)
        hello = await connected(ws)
        status = (await client.get("/tx/api/v1/transaction/ws/status")).json()
        assert status["code"] == 0 and status["message"] == "ok"
        data = status["data"]
        assert data["appId"] == app.app.app_id and data["connectedClients"] == 1
        assert data["clients"] == [hello["data"]["clientId"]]
        assert data["details"][0]["pendingTxCount"] == 0
        assert set(data["details"][0]) == {"clientId", "connectedAt", "uptime", "pendingTxCount"}

        message = {
            "id": "msg-tx-uuid-001",
            "time": 1745000000000,
            "type": "transaction",
            "code": 0,
            "data": {**push_data(make_record(3), [make_record(3).sender], False)},
            "msg": "success",
        }
        for _ in range(2):
            answer = await client.post("/tx/api/v1/transaction/ws/replay", json=message)
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"]["processed"] is True
            assert answer.json()["data"]["txhash"] == make_record(3).tx_hash
        first, second = await recv(ws), await recv(ws)
        assert first["data"] == message["data"] and first["id"] == second["id"]
        status = (await client.get("/tx/api/v1/transaction/ws/status")).json()
        assert status["data"]["details"][0]["pendingTxCount"] == 1
        odd = await client.post("/tx/api/v1/transaction/ws/replay", json={**message, "id": 'a"b\\'})
        assert odd.status_code == 200 and odd.json()["data"]["messageId"] != 'a"b\\'
        third = await recv(ws)  # still valid JSON, under a fresh id
        assert third["id"] == odd.json()["data"]["messageId"]
        bad = await client.post(
            "/tx/api/v1/transaction/ws/replay", json={"data": {"chain_type": "ethereum"}}
        )
        assert bad.status_code == 400 and bad.json()["code"] == 400
        await ws.aclose()
    async with rtserver_client(server.url) as anonymous:
        assert (await anonymous.get("/tx/api/v1/transaction/ws/status")).status_code == 401


async def test_api_key_query_parameter(server: RunningServer) -> None:
    from trio_websocket import connect_websocket_url

    app = await new_app(server.core)
    async with trio.open_nursery() as nursery:
        ws = await connect_websocket_url(nursery, ws_url(server.url) + "?api_key=" + app.api_key)
        await connected(ws)
        await ws.aclose()


async def test_unacked_message_is_retried_on_a_live_connection(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data").replace(
        delivery=DeliveryConfig(retry_interval=0.2, retry_max_interval=0.4)
    )
    async with run_server(config) as server:
        app = await new_app(server.core)
        async with trio.open_nursery() as nursery:
            ws = await connect(nursery, server.url, app.api_key)
            await connected(ws)
            await inject(server.core, make_record(1), [app.app.app_id])
            first = await recv(ws)
            again = await recv(ws)  # not ACKed: pushed again, same id and bytes
            assert again == first
            ack = await command(
                ws, {"id": "a", "type": "transactionACK", "data": {"messageId": first["id"]}}
            )
            while ack["type"] == "transaction":  # a retry may have been queued before the ACK
                assert ack == first
                ack = await recv(ws)
            assert ack["code"] == 0
            await trio.sleep(1)  # several retry intervals: nothing more comes
            await nothing_pending(ws)
            await ws.aclose()


async def test_silent_connection_is_closed_and_live_one_kept(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data").replace(
        websocket=WebSocketConfig(ping_interval=0.2, ping_timeout=0.5)
    )
    async with run_server(config) as server:
        app = await new_app(server.core)
        host, port = server.url.removeprefix("http://").split(":")
        # A client that completes the handshake and then never answers anything.
        dead = await trio.open_tcp_stream(host, int(port))
        await dead.send_all(
            (
                "GET /tx/api/v1/transaction/ws HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"X-API-Key: {app.api_key}\r\n\r\n"
            ).encode()
        )
        async with trio.open_nursery() as nursery:
            live = await connect(nursery, server.url, app.api_key)  # answers pings itself
            await connected(live)
            received = b""
            with trio.fail_after(20):
                while chunk := await dead.receive_some(65536):
                    received += chunk
            assert received.startswith(b"HTTP/1.1 101")
            assert b"\x89\x00" in received  # the server pinged it before giving up
            await nothing_pending(live)  # the live one outlived the read timeout
            await live.aclose()
        await dead.aclose()


async def test_resend_duration_is_capped_and_garbage_means_default(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data").replace(
        delivery=DeliveryConfig(resend_window=30, max_resend_window=60)
    )
    async with run_server(config) as server:
        app = await new_app(server.core)
        async with trio.open_nursery() as nursery:
            for header, window in (("3600", 60), ("abc", 30), ("-5", 30), ("12.7", 12), (None, 30)):
                ws = await connect(nursery, server.url, app.api_key, resend=header)
                assert (await connected(ws))["data"]["resendDuration"] == window, header
                await ws.aclose()
