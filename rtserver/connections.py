"""The registry of open WebSocket connections, shared by every protocol front-end.

It answers "who is connected" (status endpoints, per-endpoint metrics), carries the
shutdown signal (when :meth:`ConnectionRegistry.begin_shutdown` is called every session
closes its socket with 1001, Going Away), and closes every connection of an app whose
credentials were revoked (:meth:`ConnectionRegistry.close_app`, 1008).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import trio

from rtserver.clock import Clock
from rtserver.metrics import Metrics

#: Close code of every connection when the server shuts down (RFC 6455: Going Away).
GOING_AWAY = 1001
#: Close code of a connection whose app (or token) was revoked: its credentials are no
#: longer valid, so reconnecting with them is pointless (RFC 6455: Policy Violation).
CREDENTIALS_REVOKED = 1008


@dataclass(eq=False, slots=True)
class ConnectionInfo:
    """One open WebSocket. ``app_id`` is None for endpoints without app identity.

    ``close(code, reason)`` ends the connection from outside (revocation): it must not
    block; the connection's own task does the closing handshake. ``connected_at`` (Unix
    seconds) is set by :meth:`ConnectionRegistry.add`.
    """

    conn_id: str
    endpoint: str
    app_id: str | None = None
    close: Callable[[int, str], None] | None = None
    connected_at: float = 0.0


class ConnectionRegistry:
    def __init__(self, metrics: Metrics, clock: Clock) -> None:
        self._metrics = metrics
        self._clock = clock
        self._open: dict[str, ConnectionInfo] = {}
        self._counter = itertools.count(1)
        #: Set once the server is shutting down: sessions close with 1001 and new ones are refused.
        self.closing = trio.Event()

    def new_id(self, prefix: str = "c") -> str:
        """A process-unique, short connection id (also the log context of the session)."""
        return f"{prefix}-{next(self._counter):x}-{self._clock.monotonic():.0f}"

    def add(self, info: ConnectionInfo) -> None:
        """Count ``info`` as open, connected from now, until :meth:`remove`.

        Two calls rather than a context manager: a generator-based one would stay
        allocated (about 330 bytes) for the whole life of every idle connection.
        """
        info.connected_at = self._clock.time()
        self._open[info.conn_id] = info
        self._metrics.open_connections.labels(info.endpoint).inc()

    def remove(self, info: ConnectionInfo) -> None:
        """No longer count ``info`` (added with :meth:`add`) as open."""
        del self._open[info.conn_id]
        self._metrics.open_connections.labels(info.endpoint).dec()

    def for_app(self, app_id: str, endpoint: str | None = None) -> list[ConnectionInfo]:
        return [
            c
            for c in self._open.values()
            if c.app_id == app_id and (endpoint is None or c.endpoint == endpoint)
        ]

    def for_endpoint(self, endpoint: str) -> list[ConnectionInfo]:
        return [c for c in self._open.values() if c.endpoint == endpoint]

    def close_app(self, app_id: str, code: int, reason: str) -> int:
        """Close every open connection of ``app_id`` now; return how many were asked to."""
        closing = self.for_app(app_id)
        for info in closing:
            if info.close is not None:
                info.close(code, reason)
        return len(closing)

    def __len__(self) -> int:
        return len(self._open)

    def begin_shutdown(self) -> None:
        self.closing.set()
