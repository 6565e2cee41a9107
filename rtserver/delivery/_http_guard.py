"""httpx adapter: webhook connections go only to addresses the SSRF policy allows.

The check is made where the connection is opened, on the addresses the host resolves to,
and the connection goes to one of exactly those addresses. A name therefore cannot pass
the check with a public address and be connected to a private one by a second lookup
(DNS rebinding), and a redirect cannot help either (the sender follows none).

httpx has no public way to give its connection pool a network backend, so the pool is
built here with httpcore's public constructor and put in place of httpx's: this module
is the only one that touches httpx internals (``AsyncHTTPTransport._pool``). Requests go
straight to the receiver; ``HTTP(S)_PROXY`` variables are not used, because a proxy
would hide the address that must be checked.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable

import httpcore
import httpx
import trio

from rtserver.webhook_urls import IPAddress, non_public_kind


class RefusedAddressError(httpcore.ConnectError):
    """The host resolves to an address webhooks may not reach."""


def guarded_transport(
    *, limits: httpx.Limits, allow_private_addresses: bool
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections pass :class:`_CheckingBackend` first."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_CheckingBackend(allow_private_addresses),
    )
    return transport


class _CheckingBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to one of them (never the name)."""

    def __init__(self, allow_private_addresses: bool) -> None:
        self._inner = httpcore.TrioBackend()
        self._allow_private = allow_private_addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        # httpcore's interface passes the connect timeout as an argument.
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = trio.current_time() + (math.inf if timeout is None else timeout)
        with trio.move_on_at(deadline):
            addresses = await _resolve(host, port)
            if not self._allow_private:
                for address in addresses:
                    kind = non_public_kind(address)
                    if kind is not None:
                        raise RefusedAddressError(
                            f"{host} resolves to {address}, a {kind} address: refused"
                            " because webhooks.allow_private_addresses is false"
                        )
            failure: Exception | None = None
            for index, address in enumerate(addresses):
                # Each address gets its share of what is left, so that one that does not
                # answer leaves time for the next.
                budget = (deadline - trio.current_time()) / (len(addresses) - index)
                try:
                    return await self._inner.connect_tcp(
                        str(address), port, budget, local_address, socket_options
                    )
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    failure = exc
            if failure is not None:
                raise failure
        raise httpcore.ConnectTimeout(f"connecting to {host} timed out")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - webhooks use TCP only
        raise httpcore.ConnectError("webhooks are sent over TCP only")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in found:
            found.append(address)
    if not found:
        raise httpcore.ConnectError(f"{host} resolves to no address")
    return found
