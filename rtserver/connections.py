"""The registry of open WebSocket connections, shared by every protocol front-end.

It answers "who is connected" (status endpoints, per-endpoint metrics) and carries the
shutdown signal: when :meth:`ConnectionRegistry.begin_shutdown` is called every session
closes its socket with 1001 (Going Away).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio

from rtserver.metrics import Metrics

GOING_AWAY = 1001


@dataclass(eq=False)
class ConnectionInfo:
    """One open WebSocket. ``app_id`` is None for endpoints without app identity."""

    conn_id: str
    endpoint: str
    app_id: str | None = None
    connected_at: float = field(default_factory=time.time)


class ConnectionRegistry:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._open: dict[str, ConnectionInfo] = {}
        self._counter = itertools.count(1)
        #: Set once the server is shutting down: sessions close with 1001 and new ones are refused.
        self.closing = trio.Event()

    def new_id(self, prefix: str = "c") -> str:
        """A process-unique, short connection id (also the log context of the session)."""
        return (
            f"{prefix}-{next(self._counter):x}-{trio.lowlevel.current_clock().current_time():.0f}"
        )

    @contextmanager
    def track(self, info: ConnectionInfo) -> Iterator[ConnectionInfo]:
        """Count ``info`` as open for the duration of the block."""
        self._open[info.conn_id] = info
        gauge = self._metrics.open_connections.labels(info.endpoint)
        gauge.inc()
        try:
            yield info
        finally:
            del self._open[info.conn_id]
            gauge.dec()

    def for_app(self, app_id: str, endpoint: str | None = None) -> list[ConnectionInfo]:
        return [
            c
            for c in self._open.values()
            if c.app_id == app_id and (endpoint is None or c.endpoint == endpoint)
        ]

    def __len__(self) -> int:
        return len(self._open)

    def begin_shutdown(self) -> None:
        self.closing.set()
