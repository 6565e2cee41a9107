"""Revoking an app closes its open WebSockets at once (1008), whichever way it is revoked."""

from __future__ import annotations

import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
)

from delivery.helpers import (
    RECEIVER,
    command,
    connect,
    connected,
    new_app,
    ws_url,
)
from rtserver.connections import CREDENTIALS_REVOKED

from conftest import RunningServer, run_cli


async def _closed_code(ws: WebSocketConnection) -> int:
    """Read until the server closes ``ws``; its close code."""
    with pytest.raises(ConnectionClosed) as closed:
        with trio.fail_after(10):
            while True:
                await ws.get_message()
    return closed.value.reason.code


async def test_revoking_through_the_admin_api_closes_open_sockets_at_once(
    server: RunningServer,
) -> None:
    core = server.core
    app = await new_app(core)
    other = await new_app(core)
    async with trio.open_nursery() as nursery:
        first = await connect(nursery, server.url, app.api_key)
        second = await connect(nursery, server.url, app.api_key)
        bystander = await connect(nursery, server.url, other.api_key)
        for ws in (first, second, bystander):
            await connected(ws)
        subscribed = await command(
            first,
            {
                "id": "s",
                "type": "subscribe",
                "data": {"address": RECEIVER, "chain_type": "ethereum"},
            },
        )
        assert subscribed["code"] == 0
        async with server.client() as http:
            answer = await http.post(
                f"/admin/v1/apps/{app.app.app_id}/revoke",
                headers={"Authorization": "Bearer secret-admin"},
            )
            assert answer.status_code == 200
        assert await _closed_code(first) == CREDENTIALS_REVOKED
        assert await _closed_code(second) == CREDENTIALS_REVOKED
        assert core.connections.for_app(app.app.app_id) == []
        # The revoked connection's subscription is gone, and the other app's connection
        # is untouched.
        assert not core.watched.match("ethereum", [RECEIVER])
        pong = await command(bystander, {"id": "p", "type": "ping", "data": {}})
        assert pong["type"] == "pong"
        await bystander.aclose()
        nursery.cancel_scope.cancel()


async def test_revoking_with_the_cli_closes_open_sockets_of_a_running_server(
    server: RunningServer,
) -> None:
    core = server.core
    app = await new_app(core)
    data_dir = core.config.server.data_dir
    async with trio.open_nursery() as nursery:
        ws = await connect(nursery, server.url, app.api_key)
        await connected(ws)
        revoked = await trio.to_thread.run_sync(
            lambda: run_cli("apps", "revoke", app.app.app_id, "--data-dir", str(data_dir))
        )
        assert revoked.returncode == 0, revoked.stderr
        # The CLI only writes the database; the server notices within its poll (1 s).
        assert await _closed_code(ws) == CREDENTIALS_REVOKED
        nursery.cancel_scope.cancel()


async def test_a_revoked_key_cannot_open_a_socket(server: RunningServer) -> None:
    core = server.core
    app = await new_app(core)
    async with server.client() as http:
        await http.post(
            f"/admin/v1/apps/{app.app.app_id}/revoke",
            headers={"Authorization": "Bearer secret-admin"},
        )
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(
            ws_url(server.url), extra_headers=[(b"X-API-Key", app.api_key.encode())]
        ):
            pass
    assert rejected.value.status_code == 401
