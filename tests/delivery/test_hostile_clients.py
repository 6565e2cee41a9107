"""Clients that misbehave on purpose: each fault ends its own connection, never the server,
and never stalls the other clients."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request, TextMessage

from delivery.helpers import (
    WS_PATH,
    command,
    connect,
    connected,
    new_app,
    nothing_pending,
)
from rtserver.delivery import AckRequest, AckResult, Delivery

from conftest import RunningServer, ServerProcess, run_cli

_LINGER_RESET = struct.pack("ii", 1, 0)


def _create_app(data_dir: Path) -> dict[str, Any]:
    created = run_cli("apps", "create", "hostile", "--data-dir", str(data_dir))
    assert created.returncode == 0, created.stderr
    return json.loads(created.stdout)  # type: ignore[no-any-return]


def _address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _upgrade(host: str, port: int, api_key: str) -> bytes:
    return (
        f"GET {WS_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\nX-API-Key: {api_key}\r\n\r\n"
    ).encode()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashing client or a proxy does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


class _BlockingClient:
    """A WebSocket client on a blocking socket (wsproto), for tests that run threads."""

    def __init__(self, server: ServerProcess, api_key: str) -> None:
        host, port = _address(server)
        self.sock = socket.create_connection((host, port), timeout=30)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(
            self.ws.send(
                Request(
                    host=f"{host}:{port}",
                    target=WS_PATH,
                    extra_headers=[(b"X-API-Key", api_key.encode())],
                )
            )
        )
        self.pending: list[Any] = []

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(self.ws.send(TextMessage(json.dumps(message))))

    def next_text(self) -> Any:
        while not self.pending:
            data = self.sock.recv(65536)
            assert data, "connection closed"
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    self.pending.append(json.loads(event.data))
        return self.pending.pop(0)

    def close(self) -> None:
        self.sock.close()


def test_clients_that_reset_mid_handshake_answer_do_not_kill_the_server(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    app = _create_app(data_dir)
    server = server_process(data_dir=data_dir)
    host, port = _address(server)
    request = _upgrade(host, port, app["api_key"])
    for _ in range(5):
        batch = [socket.create_connection((host, port), timeout=10) for _ in range(200)]
        for sock in batch:
            sock.sendall(request)
        for sock in batch:
            sock.recv(200)  # part of the 101 and no more
            _reset(sock)
        assert server.proc.poll() is None, server.log()
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    # A well-behaved client is still served.
    client = _BlockingClient(server, app["api_key"])
    assert client.next_text()["type"] == "connected"
    client.send({"id": "p", "type": "ping", "data": {}})
    assert client.next_text()["type"] == "pong"
    client.close()
    assert server.proc.poll() is None
    assert "crashed" not in server.log(), server.log()


def test_a_command_flood_does_not_freeze_other_clients(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """200,000 pings in one burst: the reader yields per message, so /healthz and another
    client's round trips keep being answered (the bound is generous: it is a stall test,
    not a benchmark; before the fix they waited for the whole flood, about 12 s)."""
    data_dir = tmp_path / "data"
    app = _create_app(data_dir)
    server = server_process(data_dir=data_dir)
    flooder = _BlockingClient(server, app["api_key"])
    assert flooder.next_text()["type"] == "connected"
    other = _BlockingClient(server, app["api_key"])
    assert other.next_text()["type"] == "connected"

    ping = flooder.ws.send(TextMessage('{"id":"f","type":"ping","data":{}}'))
    burst = ping * 200_000
    flood_done = threading.Event()

    def flood() -> None:
        flooder.sock.sendall(burst)
        flood_done.set()

    def drain_replies() -> None:
        # Read the pongs so that the flooder is not closed as a slow consumer.
        flooder.sock.settimeout(60)
        try:
            while flooder.sock.recv(1 << 20):
                pass
        except OSError:
            pass

    sender = threading.Thread(target=flood, daemon=True)
    reader = threading.Thread(target=drain_replies, daemon=True)
    reader.start()
    sender.start()
    worst_health = 0.0
    worst_round_trip = 0.0
    samples = 0
    with httpx.Client(timeout=30) as http:
        while not flood_done.is_set() or samples < 5:
            started = time.monotonic()
            assert http.get(server.url + "/healthz").status_code == 200
            worst_health = max(worst_health, time.monotonic() - started)
            started = time.monotonic()
            other.send({"id": f"o{samples}", "type": "ping", "data": {}})
            assert other.next_text()["id"] == f"o{samples}"
            worst_round_trip = max(worst_round_trip, time.monotonic() - started)
            samples += 1
            time.sleep(0.05)
    assert worst_health < 1.0, worst_health
    assert worst_round_trip < 1.0, worst_round_trip
    flooder.close()
    other.close()
    sender.join(10)
    reader.join(10)
    assert server.proc.poll() is None


def test_the_documented_close_codes_are_the_ones_the_server_uses() -> None:
    """docs/delivery.md once promised a 400 reply for a non-UTF-8 *text* frame, which
    the server (rightly, RFC 6455 §8.1) closes with 1007 (tests/test_listener.py checks
    the codes on the wire). The page must say what the server does."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "delivery.md").read_text()
    commands = page.split("## Commands", 1)[1].split("## Helper endpoints", 1)[0]
    assert "a binary frame that is not UTF-8" in commands
    assert "**1007** for a *text* frame whose bytes" in commands
    for code in ("1001", "1002", "1007", "1008", "1009", "1013"):
        assert code in page.split("**Close codes**", 1)[1].split("\n\n", 1)[0], code


async def test_a_failing_ack_reply_costs_no_other_connection_its_reply(
    server: RunningServer,
) -> None:
    delivery = Delivery.of(server.core)
    assert delivery is not None
    app = await new_app(server.core)
    got: list[AckResult | None] = []

    def broken(result: AckResult | None) -> None:
        raise RuntimeError("a front-end bug")

    # Queued without a checkpoint in between: one batch, one commit hook for both.
    await delivery.ack_later(app.app.app_id, AckRequest(message_id="a"), broken)
    await delivery.ack_later(app.app.app_id, AckRequest(message_id="b"), got.append)
    with trio.fail_after(10):
        while not got:
            await trio.sleep(0.01)
    assert got[0] is not None and got[0].entries == []


async def test_an_ack_with_a_huge_chain_id_is_a_400_and_the_server_lives(
    server: RunningServer,
) -> None:
    app = await new_app(server.core)
    async with trio.open_nursery() as nursery:
        ws = await connect(nursery, server.url, app.api_key)
        await connected(ws)
        for chain_id in (2**63, 2**64, -(2**63) - 1):
            reply = await command(
                ws,
                {
                    "id": "ack",
                    "type": "transactionACK",
                    "data": {"chain_type": "ethereum", "chain_id": chain_id, "txHash": "0x1"},
                },
            )
            assert reply["code"] == 400 and reply["type"] == "transactionACK", reply
        await nothing_pending(ws)
        await ws.aclose()
        nursery.cancel_scope.cancel()
    assert not server.done.is_set()
