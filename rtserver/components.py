"""What a concern plugs into the server: routes, an error shape, background services."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from quart import Blueprint

from rtserver.core import Core
from rtserver.http import ErrorShape, WebSocketRoute
from rtserver.services import Service

__all__ = ["Component", "ComponentFactory", "Service"]


@dataclass(frozen=True)
class Component:
    """One concern plugged into the server: its routes, error shape and services.

    ``websocket_routes`` are served by the listener itself, before Quart (one task per
    socket); a blueprint may keep a WebSocket route of the same path for upgrades that
    come on a kept-alive HTTP connection.
    """

    name: str
    blueprints: Sequence[Blueprint] = ()
    websocket_routes: Sequence[WebSocketRoute] = ()
    error_shapes: Sequence[tuple[str, ErrorShape]] = ()
    services: Sequence[Service] = ()


ComponentFactory = Callable[[Core], Component]
