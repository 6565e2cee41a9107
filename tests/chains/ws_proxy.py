"""A WebSocket proxy in front of Anvil whose connections the test can cut (a dropped newHeads socket)."""

from __future__ import annotations

from functools import partial

import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    open_websocket_url,
    serve_websocket,
)


class WsProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = 0
        self.connections = 0
        #: While False, new connections are rejected (the endpoint is "down").
        self.accepting = True
        #: When set to an unset event, an accepted connection forwards nothing (its
        #: subscription is not answered) until the event is set.
        self.hold: trio.Event | None = None
        self._scopes: set[trio.CancelScope] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(serve_websocket, self._handle, "127.0.0.1", 0, ssl_context=None)
            )
            self.port = server.port
            task_status.started()

    def drop(self) -> None:
        """Cut every open connection now."""
        for scope in list(self._scopes):
            scope.cancel()

    async def _handle(self, request: WebSocketRequest) -> None:
        if not self.accepting:
            await request.reject(503)
            return
        client = await request.accept()
        self.connections += 1
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                if self.hold is not None:
                    await self.hold.wait()
                async with open_websocket_url(self.upstream) as upstream, trio.open_nursery() as n:
                    n.start_soon(_pump, client, upstream, n.cancel_scope)
                    n.start_soon(_pump, upstream, client, n.cancel_scope)
            except ConnectionClosed:
                pass
            finally:
                self._scopes.discard(scope)
        if scope.cancelled_caught:
            with trio.move_on_after(1):
                await client.aclose()


async def _pump(
    source: WebSocketConnection, target: WebSocketConnection, both: trio.CancelScope
) -> None:
    """Forward messages until either side closes, then stop the other direction too."""
    try:
        while True:
            await target.send_message(await source.get_message())
    except ConnectionClosed:
        both.cancel()
