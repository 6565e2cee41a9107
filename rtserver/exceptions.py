"""Every exception rtserver raises on purpose, in one hierarchy.

``RtserverError`` is the root. Protocol front-ends translate these into their own wire
error shapes; the core never knows those shapes.
"""

from __future__ import annotations


class RtserverError(Exception):
    """Base of all rtserver errors."""


class ConfigError(RtserverError):
    """The configuration is wrong; the message names the key. The CLI exits with code 2."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class StoreError(RtserverError):
    """The database cannot do what was asked (closed, corrupt, newer schema)."""


class StoreClosedError(StoreError):
    """A write was submitted after the store began closing."""


class NotFoundError(RtserverError):
    """A named entity (app, address, message) does not exist."""


class InvalidInputError(RtserverError):
    """A request's content is wrong; the message names the field and says why."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConflictError(RtserverError):
    """A request conflicts with the current state (HTTP 409): e.g. a second pending
    payment proposal at one receiving address, or cancelling a settled one."""


class LimitExceededError(RtserverError):
    """A configured limit would be exceeded (HTTP 429): the message names the limit."""


class AuthenticationError(RtserverError):
    """A request's credentials are missing, unknown or revoked (HTTP 401)."""


class TokenExpiredError(AuthenticationError):
    """An end user's token is past its expiry (protocols tell the client to refresh it)."""


class ChainError(RtserverError):
    """A chain's RPC cannot answer (unreachable, erroring, malformed) after retries."""


class ConnectionEnded(RtserverError):
    """A WebSocket connection ended: the peer closed it (``code`` is its close code), broke
    a protocol rule (``code`` is the one the server answers with), went silent, or
    vanished (1006). Raised by a socket's ``receive``; the session runtime closes it."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class BindError(RtserverError):
    """The server cannot listen on its address (in use, not this machine's, no right)."""


class ServiceCrashedError(RtserverError):
    """A background service ended with an exception; the process shuts down non-zero."""

    def __init__(self, service: str) -> None:
        super().__init__(f"background service {service!r} crashed")
        self.service = service
