"""Proposals API, status socket and polling on a real server (no chain node needed)."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from delivery.receiver import verify, webhook_receiver
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request, TextMessage

from payments.helpers import (
    CHAIN_ID,
    MERCHANT,
    OTHER_MERCHANT,
    closed_with,
    merchant_server,
    new_merchant,
    nothing_more,
    open_status,
    payments_config,
    receive,
)
from rtserver.config import PaymentsConfig

#: A WebSocket handshake's headers, sent with a plain HTTP client to read a refusal.
UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def test_create_read_poll_cancel_and_the_socket_sees_each_state(tmp_path: Path) -> None:
    async with merchant_server(payments_config(tmp_path)) as shop, trio.open_nursery() as nursery:
        proposal = await shop.propose(amount="1500000", amountMatch="atLeast")
        tx_id = proposal["transactionId"]
        assert proposal["status"] == "pending" and proposal["suiTxDigest"] is None
        assert proposal["amount"] == "1500000" and proposal["amountMatch"] == "atLeast"
        assert proposal["receivingAddress"] == MERCHANT and proposal["token"] == "native"
        assert proposal["chainId"] == CHAIN_ID and proposal["expiresAt"].endswith("Z")
        read = await shop.client.get(f"/api/identipay/v1/proposals/{tx_id}", headers=shop.auth)
        assert read.status_code == 200 and read.json() == proposal

        status = {
            "type": "status",
            "transactionId": tx_id,
            "status": "pending",
            "suiTxDigest": None,
        }
        assert await shop.poll(tx_id) == status
        ws = await open_status(nursery, shop.server.url, tx_id)
        assert await receive(ws) == status  # the document's first message

        cancelled = await shop.cancel(tx_id)
        assert cancelled["status"] == "cancelled"
        # Expiry and cancellation are announced with a ``status`` message.
        assert await receive(ws) == {**status, "status": "cancelled"}
        await nothing_more(ws)
        assert await shop.poll(tx_id) == {**status, "status": "cancelled"}

        # Forward only: a cancelled proposal cannot be cancelled again.
        again = await shop.cancel(tx_id, expect=409)
        assert again["type"] == "error" and "cancelled" in again["message"]
        # A late subscriber gets the current state once, nothing else.
        late = await open_status(nursery, shop.server.url, tx_id)
        assert await receive(late) == {**status, "status": "cancelled"}
        await nothing_more(late)
        await ws.aclose()
        await late.aclose()


async def test_one_pending_proposal_per_receiving_address_and_chain(tmp_path: Path) -> None:
    async with merchant_server(payments_config(tmp_path)) as shop:
        first = await shop.propose()
        conflict = await shop.propose(expect=409)
        assert conflict["type"] == "error" and MERCHANT in conflict["message"]
        other = await new_merchant(shop.server, shop.client)
        await other.propose(expect=409)  # whichever app asks: a transfer could not tell them apart
        await shop.propose(receivingAddress=OTHER_MERCHANT)
        await shop.cancel(first["transactionId"])
        await shop.propose()  # the address is free again
        core = shop.server.core
        assert core.watched.proposal_count() == 2


async def test_keys_and_tenancy(tmp_path: Path) -> None:
    async with merchant_server(payments_config(tmp_path)) as shop:
        tx_id = (await shop.propose())["transactionId"]
        url = f"/api/identipay/v1/transactions/{tx_id}/status"
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": shop.key}):
            denied = await shop.client.get(url, headers=headers)
            assert denied.status_code == 401
            assert denied.json()["type"] == "error" and denied.json()["message"]
        other = await new_merchant(shop.server, shop.client)
        hidden = await shop.client.get(url, headers=other.auth)
        assert hidden.status_code == 404
        assert hidden.json() == {"type": "error", "message": "Transaction not found"}
        assert (await other.cancel(tx_id, expect=404))["message"] == "Transaction not found"
        assert (await shop.poll(tx_id))["status"] == "pending"


async def test_socket_errors_read_only_frames_and_unknown_ids(tmp_path: Path) -> None:
    async with merchant_server(payments_config(tmp_path)) as shop, trio.open_nursery() as nursery:
        unknown = await open_status(
            nursery, shop.server.url, "550e8400-e29b-41d4-a716-446655440000"
        )
        assert await receive(unknown) == {"type": "error", "message": "Transaction not found"}
        assert await closed_with(unknown) == 1008
        for bad in ("not-a-uuid", "550e8400e29b41d4a716446655440000", "x" * 4000):
            ws = await open_status(nursery, shop.server.url, bad)
            error = await receive(ws)
            assert error["type"] == "error" and "UUID" in error["message"]
            assert await closed_with(ws) == 1008

        tx_id = (await shop.propose())["transactionId"]
        ws = await open_status(nursery, shop.server.url, tx_id.upper())  # any case
        assert (await receive(ws))["transactionId"] == tx_id
        for frame in ("hello", json.dumps({"type": "cancel"}), b"\x00\x01"):
            await ws.send_message(frame)
            reply = await receive(ws)
            assert reply["type"] == "error" and "read-only" in reply["message"]
        assert (await shop.poll(tx_id))["status"] == "pending"  # nothing changed
        await ws.aclose()


async def test_connection_limits_per_transaction_and_per_ip(tmp_path: Path) -> None:
    config = payments_config(
        tmp_path,
        payments=PaymentsConfig(max_connections_per_transaction=2, max_connections_per_ip=3),
    )
    async with merchant_server(config) as shop, trio.open_nursery() as nursery:
        a = (await shop.propose())["transactionId"]
        b = (await shop.propose(receivingAddress=OTHER_MERCHANT))["transactionId"]
        first = [await open_status(nursery, shop.server.url, a) for _ in range(2)]
        for ws in first:
            await receive(ws)
        refused = await shop.client.get(f"/ws/transactions/{a}", headers=UPGRADE)
        assert refused.status_code == 429
        assert refused.json()["type"] == "error"
        assert "this transaction" in refused.json()["message"]
        third = await open_status(nursery, shop.server.url, b)  # the IP's third
        await receive(third)
        refused = await shop.client.get(f"/ws/transactions/{b}", headers=UPGRADE)
        assert refused.status_code == 429 and "this address" in refused.json()["message"]
        # Closing frees the slots.
        await first[0].aclose()
        with trio.fail_after(10):
            while True:
                ws = None
                try:
                    ws = await open_status(nursery, shop.server.url, a)
                    break
                except Exception:
                    await trio.sleep(0.05)
        assert (await receive(ws))["status"] == "pending"
        for open_ws in (first[1], third, ws):
            await open_ws.aclose()


async def test_each_transition_is_a_signed_merchant_webhook(tmp_path: Path) -> None:
    async with webhook_receiver() as receiver:
        async with merchant_server(payments_config(tmp_path), webhook_url=receiver.url) as shop:
            assert shop.webhook_secret is not None
            tx_id = (await shop.propose())["transactionId"]
            await shop.cancel(tx_id)
            await receiver.wait_for(1)
        request = receiver.requests[0]
        assert verify(shop.webhook_secret, request.headers, request.body)
        event = json.loads(request.body)
        assert event["type"] == "payment.cancelled" and event["timestamp"].endswith("Z")
        assert event["data"]["transactionId"] == tx_id
        assert event["data"]["status"] == "cancelled" and event["data"]["suiTxDigest"] is None
        assert len(receiver.requests) == 1  # creation is no transition


async def test_an_upgrade_on_a_kept_alive_connection_gets_the_same_socket(tmp_path: Path) -> None:
    async with merchant_server(payments_config(tmp_path)) as shop:
        tx_id = (await shop.propose())["transactionId"]
        host, port = shop.server.url.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            with trio.fail_after(10):
                reply = b""
                while b"\r\n\r\n" not in reply:
                    reply += await stream.receive_some(65536)
                head, _, body = reply.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < length:  # the whole response, before the upgrade
                    body += await stream.receive_some(65536)
            assert head.startswith(b"HTTP/1.1 200") and len(body) == length
            ws = WSConnection(ConnectionType.CLIENT)  # the same TCP connection upgrades
            await stream.send_all(ws.send(Request(host=host, target=f"/ws/transactions/{tx_id}")))
            texts: list[dict[str, object]] = []

            async def next_text() -> dict[str, object]:
                with trio.fail_after(10):
                    while not texts:
                        ws.receive_data(await stream.receive_some(65536))
                        for event in ws.events():
                            if isinstance(event, TextMessage):
                                texts.append(json.loads(event.data))
                return texts.pop(0)

            assert (await next_text())["status"] == "pending"
            await stream.send_all(ws.send(TextMessage("hello")))
            assert (await next_text())["type"] == "error"
            await shop.cancel(tx_id)
            assert (await next_text())["status"] == "cancelled"
