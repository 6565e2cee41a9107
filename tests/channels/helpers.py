"""A channel-protocol client for tests: apps, tokens, sockets, events."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import trio
from trio_websocket import WebSocketConnection

from conftest import ServerProcess, rtserver_client, run_cli

ADMIN = "admin-secret"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}

#: The ``server_process`` fixture's type.
Start = Callable[..., ServerProcess]


def start(server_process: Start, **env: str) -> ServerProcess:
    """A real server process with the admin API on (``env``: more settings)."""
    return server_process(env={"RTSERVER_SERVER_ADMIN_TOKEN": ADMIN, **env})


def create_app(proc: ServerProcess, name: str = "shop") -> tuple[str, str]:
    """A new app (through the CLI, beside the running server): (app_id, api_key)."""
    created = run_cli("apps", "create", name, "--data-dir", str(proc.data_dir))
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    return body["app_id"], body["api_key"]


async def issue_token(proc: ServerProcess, app_id: str, user_id: str) -> str:
    async with rtserver_client(proc.url, timeout=10) as client:
        answer = await client.post(
            f"/admin/v1/apps/{app_id}/users/{user_id}/tokens", headers=ADMIN_HEADERS
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


async def publish(proc: ServerProcess, api_key: str, body: dict[str, Any]) -> httpx.Response:
    async with rtserver_client(proc.url, timeout=10) as client:
        return await client.post(
            "/api/v1/ws/publish", json=body, headers={"Authorization": f"Bearer {api_key}"}
        )


def ws_url(proc: ServerProcess, token: str, **query: str) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return proc.url.replace("http://", "ws://") + f"/api/v1/ws?token={token}{extra}"


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(10):
        message = await ws.get_message()
    value = json.loads(message)
    assert isinstance(value, dict)
    return value


async def command(ws: WebSocketConnection, body: dict[str, Any]) -> dict[str, Any]:
    await ws.send_message(json.dumps(body))
    return await recv(ws)


async def nothing_else(ws: WebSocketConnection) -> None:
    """The next message is the answer to a ping: nothing was queued before it."""
    assert await command(ws, {"event": "ping"}) == {"event": "pong", "channel": None, "data": {}}
