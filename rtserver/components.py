"""What a concern plugs into the server: routes, an error shape, background services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from quart import Blueprint

from rtserver.core import Core
from rtserver.http import ErrorShape


@dataclass(frozen=True)
class Service:
    """A background service: ``run(task_status=...)`` runs until cancelled.

    It calls ``task_status.started()`` once it is up, so that the HTTP front opens only
    after every service started; raising (or returning) takes the whole process down.
    """

    name: str
    run: Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class Component:
    """One concern plugged into the server: its routes, error shape and services."""

    name: str
    blueprints: Sequence[Blueprint] = ()
    error_shapes: Sequence[tuple[str, ErrorShape]] = ()
    services: Sequence[Service] = ()


ComponentFactory = Callable[[Core], Component]
