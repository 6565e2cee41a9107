"""Webhook endpoint URLs: which ones rtserver accepts, and which addresses they may reach.

A URL is accepted when it is an absolute ``http``/``https`` URL of at most
:data:`MAX_URL_LENGTH` characters, without spaces or control characters, without
credentials (``user:password@``: the signature is what authenticates rtserver; a
receiver that wants a token of its own can take it in the path or query) and without a
fragment (it is never sent), whose host is an IPv4 address in dotted-quad form, an IPv6
address in brackets (no zone id), or a DNS name (IDNA allowed, letters, digits, ``-``
and ``_``, labels of 1-63 characters, a last label that is not all digits), and whose
port, if given, is 1-65535.

Unless ``webhooks.allow_private_addresses`` is on, webhooks reach public addresses only.
This module says which addresses are not public (:func:`non_public_kind`); the check is
made when a URL is set (literal addresses and ``localhost`` names) and again, on the
addresses the host resolves to, each time a connection is opened
(``rtserver.delivery._http_guard``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from rtserver.exceptions import InvalidInputError

MAX_URL_LENGTH = 2048
_FIELD = "webhook_url"
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def validate_webhook_url(url: Any, *, allow_private_addresses: bool) -> str:
    """``url`` unchanged if rtserver may send webhooks to it; else :class:`InvalidInputError`."""
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise _invalid("webhook_url must be an http(s) URL")
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"webhook_url must be at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise _invalid("webhook_url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _invalid(f"webhook_url is not a valid URL: {exc}") from None
    if parts.fragment or url.endswith("#"):
        raise _invalid("webhook_url must not have a fragment (#…): it is never sent")
    if "@" in parts.netloc:
        raise _invalid(
            "webhook_url must not contain credentials (user:password@): requests are"
            " authenticated by their signature"
        )
    host, address = _host(parts.netloc)
    if not allow_private_addresses:
        kind = non_public_kind(address) if address is not None else _special_name_kind(host)
        if kind is not None:
            raise _invalid(
                f"webhook_url points at a {kind} address ({host}); such addresses are"
                " refused unless webhooks.allow_private_addresses is true"
            )
    return url


def non_public_kind(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (``"loopback"``, …), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4 addresses carried inside IPv6 reach the IPv4 address they embed.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return non_public_kind(embedded)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        # E.g. 100.64.0.0/10, the carrier-grade NAT range: not private, not global.
        ("non-global", not address.is_global),
    )
    return next((kind for kind, applies in checks if applies), None)


def _host(netloc: str) -> tuple[str, IPAddress | None]:
    """The host of ``netloc`` and its address if it is a literal one; checks the port."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise _invalid("webhook_url has an unclosed [ in its host")
        host, rest = netloc[1:end], netloc[end + 1 :]
        try:
            ipv6 = ipaddress.IPv6Address(host)
        except ValueError:
            raise _invalid("webhook_url has an invalid IPv6 address") from None
        if ipv6.scope_id is not None:
            raise _invalid("webhook_url must not have an IPv6 zone id")
        address: IPAddress | None = ipv6
    else:
        host, colon, port = netloc.partition(":")
        rest = colon + port
        if ":" in port:
            raise _invalid("webhook_url must put an IPv6 address in brackets")
        address = _ipv4(host)
        if address is None:
            _check_name(host)
    if rest:
        port = rest[1:] if rest.startswith(":") else ""
        if not (port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
            raise _invalid("webhook_url has an invalid port (expected 1-65535)")
    return host, address


def _ipv4(host: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        return None


def _check_name(host: str) -> None:
    if not host:
        raise _invalid("webhook_url has no host")
    try:
        name = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise _invalid("webhook_url has an invalid host name") from None
    labels = name.removesuffix(".").split(".")
    if (
        len(name) > 253
        or not all(_LABEL.fullmatch(label) for label in labels)
        # A numeric last label is an IPv4 shorthand (127.1, 2130706433) to resolvers.
        or labels[-1].isdigit()
    ):
        raise _invalid("webhook_url has an invalid host: neither an IP address nor a host name")


def _special_name_kind(host: str) -> str | None:
    # RFC 6761: localhost and its subdomains always resolve to loopback addresses.
    name = host.lower().removesuffix(".")
    return "loopback" if name == "localhost" or name.endswith(".localhost") else None


def _invalid(message: str) -> InvalidInputError:
    return InvalidInputError(message, field=_FIELD)
