"""Bad input gets a clear error in the document's shape, writes nothing, and the server
keeps serving: a corpus of malformed proposals, ids and paths."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import trio

from payments.helpers import (
    PROPOSAL,
    merchant_server,
    open_status,
    payments_config,
    receive,
)

GOOD = PROPOSAL

#: (what is wrong, the body sent, a word the error message must contain)
BAD_PROPOSALS: list[tuple[str, Any, str]] = [
    ("unknown field", {**GOOD, "ammount": "1"}, "ammount"),
    ("no amount", {k: v for k, v in GOOD.items() if k != "amount"}, "amount"),
    ("zero", {**GOOD, "amount": "0"}, "amount"),
    ("negative", {**GOOD, "amount": "-5"}, "amount"),
    ("decimal", {**GOOD, "amount": "1.5"}, "amount"),
    ("exponent", {**GOOD, "amount": "1e18"}, "amount"),
    ("float", {**GOOD, "amount": 1.5}, "amount"),
    ("boolean", {**GOOD, "amount": True}, "amount"),
    ("not ASCII digits", {**GOOD, "amount": "١٢"}, "amount"),
    ("hex", {**GOOD, "amount": "0x10"}, "amount"),
    ("over uint256", {**GOOD, "amount": str(2**256)}, "amount"),
    ("huge", {**GOOD, "amount": "9" * 5000}, "amount"),
    ("bad token", {**GOOD, "token": "0x123"}, "token"),
    ("token type", {**GOOD, "token": 5}, "token"),
    ("token missing", {k: v for k, v in GOOD.items() if k != "token"}, "token"),
    ("bad address", {**GOOD, "receivingAddress": "0x" + "zz" * 20}, "receivingAddress"),
    ("bad checksum", {**GOOD, "receivingAddress": "0x" + "aA" * 20}, "receivingAddress"),
    ("no address", {k: v for k, v in GOOD.items() if k != "receivingAddress"}, "receiving"),
    ("unknown chain", {**GOOD, "chainType": "dogecoin"}, "chain_type"),
    ("not followed", {**GOOD, "chainType": "ethereum"}, "not followed"),
    ("other chain id", {**GOOD, "chainId": 1}, "not followed"),
    ("chain id zero", {**GOOD, "chainId": 0}, "chainId"),
    ("chain id text", {**GOOD, "chainId": "abc"}, "chainId"),
    ("chain id huge", {**GOOD, "chainId": 2**70}, "chainId"),
    ("no expiry", {k: v for k, v in GOOD.items() if k != "expiresIn"}, "expires"),
    ("both expiries", {**GOOD, "expiresAt": "2099-01-01T00:00:00Z"}, "exactly one"),
    ("expires now", {**GOOD, "expiresIn": 0}, "expiresIn"),
    ("negative expiry", {**GOOD, "expiresIn": -1}, "expiresIn"),
    ("too far", {**GOOD, "expiresIn": 10**9}, "expiresIn"),
    ("expiry text", {**GOOD, "expiresIn": "soon"}, "expiresIn"),
    ("in the past", {**GOOD, "expiresIn": None, "expiresAt": "2001-01-01T00:00:00Z"}, "future"),
    ("no time zone", {**GOOD, "expiresIn": None, "expiresAt": "2099-01-01T00:00:00"}, "zone"),
    ("not a time", {**GOOD, "expiresIn": None, "expiresAt": "tomorrow"}, "RFC 3339"),
    ("far future", {**GOOD, "expiresIn": None, "expiresAt": "9999-01-01T00:00:00Z"}, "max_expiry"),
    ("bad match", {**GOOD, "amountMatch": "fuzzy"}, "amountMatch"),
    ("array body", [GOOD], "JSON object"),
    ("string body", "hello", "JSON object"),
]


async def test_malformed_proposals_are_refused_and_write_nothing(tmp_path: Path) -> None:
    async with merchant_server(payments_config(tmp_path)) as shop:
        url = "/api/identipay/v1/proposals"
        for what, body, word in BAD_PROPOSALS:
            response = await shop.client.post(url, json=body, headers=shop.auth)
            assert response.status_code == 400, (what, response.text)
            error = response.json()
            assert set(error) == {"type", "message"} and error["type"] == "error", what
            assert word in error["message"], (what, error)
        for raw in (b"", b"{", b"\xff\xfe", b"[" * 100_000):
            response = await shop.client.post(
                url, content=raw, headers={**shop.auth, "Content-Type": "application/json"}
            )
            assert response.status_code in (400, 413), raw[:10]
            assert response.json()["type"] == "error"
        count = await shop.server.core.store.read(
            lambda conn: conn.execute("SELECT COUNT(*) FROM payment_proposals").fetchone()[0]
        )
        assert count == 0 and shop.server.core.watched.proposal_count() == 0
        await shop.propose()  # still serving, and the address was never taken


async def _raw_request(base: str, path: str, upgrade: bool, until: bytes) -> bytes:
    """Send one request head as it is (no client library caps its length); what the
    server answers, read until ``until`` appears or the server closes."""
    host, port = base.removeprefix("http://").split(":")
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
    if upgrade:
        head += (
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        )
    reply = b""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            # The server may answer and close before reading it all.
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all((head + "\r\n").encode())
            while until not in reply:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                reply += chunk
    return reply


async def test_malformed_ids_and_paths(tmp_path: Path) -> None:
    async with merchant_server(payments_config(tmp_path)) as shop, trio.open_nursery() as nursery:
        base = "/api/identipay/v1"
        for bad in ("nope", "550e8400e29b41d4a716446655440000", "{" + "0" * 34 + "}", "x" * 6000):
            for path in (f"{base}/transactions/{bad}/status", f"{base}/proposals/{bad}"):
                response = await shop.client.get(path, headers=shop.auth)
                assert response.status_code == 400, (path[:80], response.text[:200])
                assert response.json() == {
                    "type": "error",
                    "message": "Invalid transaction id: expected a UUID",
                }
            cancel = await shop.client.post(f"{base}/proposals/{bad}/cancel", headers=shop.auth)
            assert cancel.status_code == 400
        unknown = "550e8400-e29b-41d4-a716-446655440000"
        response = await shop.client.get(f"{base}/transactions/{unknown}/status", headers=shop.auth)
        assert response.status_code == 404 and response.json()["message"] == "Transaction not found"
        # Paths of 20,000 characters: an HTTP error, or on the socket the document's
        # error message; the server keeps serving.
        long_id = "x" * 20_000
        reply = await _raw_request(
            shop.server.url, f"{base}/transactions/{long_id}/status", False, b"\r\n"
        )
        assert reply.split()[1][:1] == b"4", reply[:100]
        reply = await _raw_request(shop.server.url, f"/ws/transactions/{long_id}", True, b"UUID")
        assert reply.startswith(b"HTTP/1.1 101") and b'"type":"error"' in reply, reply[:300]
        # Extra segments are no status socket.
        missing = await shop.client.get(f"/ws/transactions/{unknown}/more")
        assert missing.status_code == 404
        tx_id = (await shop.propose())["transactionId"]
        ws = await open_status(nursery, shop.server.url, tx_id)
        assert (await receive(ws))["status"] == "pending"
        await ws.aclose()
