"""Background services: what the server runs beside the HTTP front, in its root nursery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    """A background service: ``run(task_status=...)`` runs until cancelled.

    It calls ``task_status.started()`` once it is up, so that the HTTP front opens only
    after every service started; raising (or returning) takes the whole process down.
    """

    name: str
    run: Callable[..., Awaitable[None]]
