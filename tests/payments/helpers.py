"""Helpers for the payment-status tests: a server with a followed chain, an app and its
key, the proposals API, and status sockets (real sockets on loopback)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url

from rtserver.clock import Clock
from rtserver.config import ChainConfig, Config, PaymentsConfig, WebhookConfig
from rtserver.server import DEFAULT_COMPONENTS, ComponentFactory

from conftest import RunningServer, make_config, run_server

ADMIN = {"Authorization": "Bearer secret-admin"}
CHAIN_TYPE = "anvil"
CHAIN_ID = 31337
MERCHANT = "0x" + "a1" * 20
OTHER_MERCHANT = "0x" + "b2" * 20
TOKEN = "0x" + "70" * 20

#: A valid proposal request (tests change what they need).
PROPOSAL: dict[str, Any] = {
    "chainType": CHAIN_TYPE,
    "chainId": CHAIN_ID,
    "token": "native",
    "amount": "1000",
    "receivingAddress": MERCHANT,
    "expiresIn": 900,
}

#: Every component but the chain watchers: the API and sockets run, no node is needed.
WITHOUT_WATCHERS: tuple[ComponentFactory, ...] = tuple(
    c for c in DEFAULT_COMPONENTS if getattr(c, "__name__", "") != "_chains_component"
)


def payments_config(
    tmp_path: Path,
    chains: Sequence[ChainConfig] = (),
    payments: PaymentsConfig | None = None,
    **webhooks: Any,
) -> Config:
    """A test config following ``chains`` (default: one Anvil chain, no node needed
    unless the watchers run); webhooks may reach loopback receivers."""
    chain = ChainConfig(chain_type=CHAIN_TYPE, chain_id=CHAIN_ID, rpc_urls=("http://127.0.0.1:9",))
    return make_config(tmp_path / "data", admin_token="secret-admin").replace(
        chains=tuple(chains) or (chain,),
        payments=payments or PaymentsConfig(),
        webhooks=WebhookConfig(batch_ms=20, allow_private_addresses=True, **webhooks),
    )


@dataclass
class Merchant:
    """An app's backend: its key and an HTTP client to the server."""

    server: RunningServer
    app_id: str
    key: str
    client: httpx.AsyncClient
    webhook_secret: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def propose(self, expect: int = 201, **fields: Any) -> dict[str, Any]:
        body = {k: v for k, v in {**PROPOSAL, **fields}.items() if v is not None}
        response = await self.client.post(
            "/api/identipay/v1/proposals", json=body, headers=self.auth
        )
        assert response.status_code == expect, response.text
        return response.json()  # type: ignore[no-any-return]

    async def poll(self, transaction_id: str) -> dict[str, Any]:
        """The document's polling request."""
        response = await self.client.get(
            f"/api/identipay/v1/transactions/{transaction_id}/status", headers=self.auth
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def cancel(self, transaction_id: str, expect: int = 200) -> dict[str, Any]:
        response = await self.client.post(
            f"/api/identipay/v1/proposals/{transaction_id}/cancel", headers=self.auth
        )
        assert response.status_code == expect, response.text
        return response.json()  # type: ignore[no-any-return]


async def new_merchant(
    server: RunningServer, client: httpx.AsyncClient, webhook_url: str | None = None
) -> Merchant:
    body: dict[str, Any] = {"name": "shop"}
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    created = await client.post("/admin/v1/apps", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    app = created.json()
    return Merchant(server, app["app_id"], app["api_key"], client, app.get("webhook_secret"))


@asynccontextmanager
async def merchant_server(
    config: Config,
    components: Sequence[ComponentFactory] = WITHOUT_WATCHERS,
    *,
    clock: Clock | None = None,
    webhook_url: str | None = None,
) -> AsyncIterator[Merchant]:
    async with run_server(config, components, clock=clock) as server, server.client() as client:
        yield await new_merchant(server, client, webhook_url)


def status_url(base: str, transaction_id: str) -> str:
    return base.replace("http://", "ws://") + "/ws/transactions/" + transaction_id


async def open_status(nursery: trio.Nursery, base: str, transaction_id: str) -> WebSocketConnection:
    return await connect_websocket_url(nursery, status_url(base, transaction_id))


async def receive(ws: WebSocketConnection, within: float = 10.0) -> dict[str, Any]:
    with trio.fail_after(within):
        return json.loads(await ws.get_message())  # type: ignore[no-any-return]


async def nothing_more(ws: WebSocketConnection, wait: float = 0.3) -> None:
    """No message arrives within ``wait`` seconds."""
    with trio.move_on_after(wait):
        message = await ws.get_message()
        raise AssertionError(f"unexpected message {message!r}")


async def closed_with(ws: WebSocketConnection) -> int | None:
    """Read until the server closes; its close code."""
    with trio.fail_after(10):
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed as closed:
            return closed.reason.code


async def wait_processed(core: Any, number: int, within: float = 20.0) -> None:
    """Wait until the chain watcher committed block ``number``."""
    with trio.fail_after(within):
        while True:
            checkpoint = await core.store.read(_checkpoint)
            if checkpoint is not None and checkpoint >= number:
                return
            await trio.sleep(0.02)


def _checkpoint(conn: Any) -> int | None:
    row = conn.execute("SELECT MAX(block_number) FROM chain_checkpoints").fetchone()
    return None if row is None else row[0]
