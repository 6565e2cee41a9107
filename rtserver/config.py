"""Configuration: one plain, frozen object built once at start.

Sources, later ones winning: built-in defaults, a TOML file, ``RTSERVER_<SECTION>_<KEY>``
environment variables, then command-line flags. Every section is a dataclass below; the
loader derives the accepted keys and their types from the dataclass fields, so adding an
option is adding a field (and a line in ``config.example.toml``).

Any problem (unknown key, wrong type, out-of-range value, unreadable file) raises
:class:`~rtserver.exceptions.ConfigError` with a one-line message naming the key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from rtserver.addresses import EVM_CHAIN_TYPES, chain_family
from rtserver.exceptions import ConfigError

ENV_PREFIX = "RTSERVER_"
#: A channel name of the channel protocol.
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True)
class ServerConfig:
    bind: str = "127.0.0.1:8080"
    data_dir: str = "./rtserver-data"
    #: Bearer token for /admin/v1; empty disables the admin API.
    admin_token: str = ""
    #: Largest accepted HTTP request body, bytes.
    max_body_bytes: int = 1024 * 1024
    #: Seconds SIGTERM/SIGINT may take before remaining work is cancelled.
    shutdown_grace: float = 10.0
    #: Pending TCP connections the kernel queues before refusing (capped by somaxconn).
    #: Large, so that every client reconnecting at once after a restart gets in at once.
    backlog: int = 4096
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Let other libraries (HTTP client, server, ...) log at ``log_level`` too; otherwise
    #: they log warnings and errors only.
    log_libraries: bool = False

    def validate(self) -> None:
        host, _, port = self.bind.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError("server.bind", f"expected HOST:PORT, got {self.bind!r}")
        _positive("server.max_body_bytes", self.max_body_bytes)
        _positive("server.shutdown_grace", self.shutdown_grace)
        _positive("server.backlog", self.backlog)

    @property
    def host(self) -> str:
        return self.bind.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.bind.rpartition(":")[2])


@dataclass(frozen=True)
class StoreConfig:
    #: SQLite ``synchronous``: FULL survives power loss, NORMAL only process crashes.
    synchronous: Literal["full", "normal"] = "full"
    #: Most write jobs committed in one transaction.
    batch_max: int = 512
    #: Write jobs that may wait for the writer before callers block.
    queue_max: int = 10_000
    #: Reader connections (concurrent read queries on worker threads).
    readers: int = 4
    #: Milliseconds a connection waits on a lock held by another process (the CLI).
    busy_timeout_ms: int = 5_000
    #: Page cache of each connection (the writer and every reader), MiB. Filled as
    #: pages are read, so a small database never uses it all.
    cache_mib: int = 64

    def validate(self) -> None:
        _positive("store.batch_max", self.batch_max)
        _positive("store.cache_mib", self.cache_mib)
        _positive("store.queue_max", self.queue_max)
        _positive("store.readers", self.readers)
        _positive("store.busy_timeout_ms", self.busy_timeout_ms)


@dataclass(frozen=True)
class WebSocketConfig:
    #: Largest accepted inbound frame, bytes; larger ones close the socket with 1009.
    max_frame_bytes: int = 64 * 1024
    #: Frames queued for one socket before it counts as too slow and is closed with 1013.
    send_queue_max: int = 1_000
    #: Seconds between server pings; 0 disables them.
    ping_interval: float = 30.0
    #: Seconds a client may take to answer a ping before it is closed.
    ping_timeout: float = 20.0

    def validate(self) -> None:
        _positive("websocket.max_frame_bytes", self.max_frame_bytes)
        _positive("websocket.send_queue_max", self.send_queue_max)
        _non_negative("websocket.ping_interval", self.ping_interval)
        _positive("websocket.ping_timeout", self.ping_timeout)


@dataclass(frozen=True)
class ChainConfig:
    """One ``[[chains]]`` entry: a chain the watcher follows."""

    chain_type: str = ""
    chain_id: int = 0
    rpc_urls: tuple[str, ...] = ()
    ws_url: str = ""
    confirmations: int = 0
    poll_interval: float = 1.0
    #: ``"latest"`` or a block number.
    start_block: str = "latest"
    max_catchup_blocks: int = 10_000
    trace_internal: bool = False
    #: Block hashes kept for reorg detection.
    reorg_depth: int = 64
    #: Blocks behind the head before /readyz reports the watcher as lagging.
    max_lag_blocks: int = 50
    #: Seconds one JSON-RPC request may take.
    rpc_timeout: float = 10.0
    #: Seconds of failing RPC calls (every URL) after which /readyz reports the chain not
    #: ready (a node that hangs shows after rpc_timeout more).
    unready_after: float = 5.0
    #: Blocks fetched per catch-up batch.
    batch_blocks: int = 10

    def validate(self, where: str) -> None:
        if not self.chain_type:
            raise ConfigError(f"{where}.chain_type", "is required")
        if self.chain_type != self.chain_type.lower():
            raise ConfigError(f"{where}.chain_type", "must be lowercase")
        if chain_family(self.chain_type) != "evm":
            # Only EVM chains have a watcher (adapter) so far.
            raise ConfigError(
                f"{where}.chain_type",
                f"no watcher for {self.chain_type!r} (supported: {', '.join(sorted(EVM_CHAIN_TYPES))})",
            )
        _positive(f"{where}.chain_id", self.chain_id)
        if not self.rpc_urls:
            raise ConfigError(f"{where}.rpc_urls", "needs at least one URL")
        for url in self.rpc_urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"{where}.rpc_urls", f"not an http(s) URL: {url!r}")
        if self.ws_url and not self.ws_url.startswith(("ws://", "wss://")):
            raise ConfigError(f"{where}.ws_url", f"not a ws(s) URL: {self.ws_url!r}")
        if self.start_block != "latest" and not self.start_block.isdigit():
            raise ConfigError(f"{where}.start_block", "must be 'latest' or a block number")
        _non_negative(f"{where}.confirmations", self.confirmations)
        _positive(f"{where}.poll_interval", self.poll_interval)
        _positive(f"{where}.max_catchup_blocks", self.max_catchup_blocks)
        _positive(f"{where}.reorg_depth", self.reorg_depth)
        _positive(f"{where}.max_lag_blocks", self.max_lag_blocks)
        _positive(f"{where}.rpc_timeout", self.rpc_timeout)
        _positive(f"{where}.unready_after", self.unready_after)
        _positive(f"{where}.batch_blocks", self.batch_blocks)


@dataclass(frozen=True)
class DeliveryConfig:
    #: Default resend window, seconds, for a connection without X-ResendDuration.
    resend_window: int = 180
    #: Largest resend window a client may ask for, seconds.
    max_resend_window: int = 7 * 24 * 3600
    #: Seconds before an unACKed message is pushed again on a live connection.
    retry_interval: float = 30.0
    #: Cap of the retry backoff, seconds.
    retry_max_interval: float = 300.0
    #: UnACKed messages per app tracked for live retries; beyond it the oldest wait
    #: for the next reconnect's resend (they stay pending).
    retry_max_tracked: int = 1000
    #: Days ACKed outbox entries are kept before compaction.
    acked_retention_days: float = 7.0
    #: Pending entries resent per reconnect at most.
    resend_max: int = 10_000
    #: Seconds between compactions of ACKed outbox entries.
    compact_interval: float = 600.0
    #: ACK commands waiting for their commit, all connections together; a client that
    #: ACKs while it is full waits (its socket is not read meanwhile).
    ack_queue_max: int = 10_000
    #: Seconds between reads of the backlog gauges (unACKed messages, webhook backlog).
    backlog_interval: float = 10.0

    def validate(self) -> None:
        _positive("delivery.resend_window", self.resend_window)
        _positive("delivery.max_resend_window", self.max_resend_window)
        _positive("delivery.retry_interval", self.retry_interval)
        _positive("delivery.retry_max_interval", self.retry_max_interval)
        _positive("delivery.retry_max_tracked", self.retry_max_tracked)
        _positive("delivery.acked_retention_days", self.acked_retention_days)
        _positive("delivery.resend_max", self.resend_max)
        _positive("delivery.compact_interval", self.compact_interval)
        _positive("delivery.ack_queue_max", self.ack_queue_max)
        _positive("delivery.backlog_interval", self.backlog_interval)


@dataclass(frozen=True)
class StreamsConfig:
    """Durable streams of history topics (``user:…``, ``channel:…``); docs/architecture.md."""

    #: Messages kept per history topic.
    history_size: int = 100
    #: Seconds a history message is kept.
    history_ttl: float = 24 * 3600.0
    #: Most messages one recovery returns; a client further behind gets the oldest
    #: that fit, and recovery is reported incomplete.
    recovery_max: int = 1_000
    #: Seconds between deletions of expired history.
    compact_interval: float = 60.0

    def validate(self) -> None:
        _positive("streams.history_size", self.history_size)
        _positive("streams.history_ttl", self.history_ttl)
        _positive("streams.recovery_max", self.recovery_max)
        _positive("streams.compact_interval", self.compact_interval)


#: JWT algorithms rtserver verifies; ``none`` is never one of them.
JWT_ALGORITHMS = ("HS256", "RS256", "ES256")


@dataclass(frozen=True)
class JwtConfig:
    """End users' JWTs, issued by the app's own auth server (wallet and channel sockets).

    Verification is off until a key is set. The algorithm comes from this allow-list,
    never from the token's header alone.
    """

    #: Algorithms accepted (of HS256, RS256, ES256).
    algorithms: tuple[str, ...] = ("HS256",)
    #: Shared secret for HS256 (also what ``rtserver users token --jwt`` signs with).
    hs256_secret: str = ""
    #: PEM file with the RS256 or ES256 public key.
    public_key_file: str = ""
    #: JWKS file (JSON ``{"keys": [...]}``) with RS256/ES256 public keys, chosen by ``kid``.
    jwks_file: str = ""
    #: Required ``iss`` (empty: not checked).
    issuer: str = ""
    #: Required ``aud`` (empty: not checked).
    audience: str = ""
    #: The claim that holds the user id.
    user_claim: str = "sub"
    #: Seconds of clock skew allowed on ``exp`` and ``nbf``.
    leeway: float = 30.0
    #: The app whose users these tokens name (users belong to an app).
    app_id: str = ""

    def validate(self) -> None:
        for algorithm in self.algorithms:
            if algorithm not in JWT_ALGORITHMS:
                raise ConfigError(
                    "jwt.algorithms", f"{algorithm!r} is not one of {', '.join(JWT_ALGORITHMS)}"
                )
        if not self.user_claim:
            raise ConfigError("jwt.user_claim", "must not be empty")
        if self.leeway < 0:
            raise ConfigError("jwt.leeway", "must not be negative")
        if self.enabled and not self.app_id:
            raise ConfigError("jwt.app_id", "set the app whose users the JWTs name")

    @property
    def enabled(self) -> bool:
        return bool(self.hs256_secret or self.public_key_file or self.jwks_file)


#: The channel protocol's per-user channels (../shared/spec/channel-realtime-ws.txt).
USER_CHANNELS = (
    "notification.events",
    "payment_order.events",
    "card.events",
    "card.create.events",
    "card.withdraw.events",
    "kyc.events",
    "mobile.force.logout",
)
#: Its broadcast channels (every socket of the app is subscribed to ``settings``).
BROADCAST_CHANNELS = ("settings",)


@dataclass(frozen=True)
class ChannelsConfig:
    """The channel socket ``/api/v1/ws`` (docs/channels.md)."""

    #: Serve the channel socket (the document: "only when WebSocket is enabled").
    enabled: bool = True
    #: Accept access tokens that rtserver issued (``rtserver users token``).
    access_tokens: bool = True
    #: Accept JWTs verified with the ``[jwt]`` settings.
    jwt: bool = False
    #: Lifetime of an issued access token, seconds.
    access_token_ttl: float = 30 * 24 * 3600.0
    #: ``Origin`` values allowed to connect; empty: any.
    allowed_origins: tuple[str, ...] = ()
    #: Per-user channels besides the document's.
    user_channels: tuple[str, ...] = ()
    #: Broadcast channels besides ``settings``.
    broadcast_channels: tuple[str, ...] = ()
    #: Serve ``GET /api/v1/ws/test?user_id=`` (a socket for any user without a token).
    debug_endpoints: bool = False
    #: Users one publish may name at most.
    max_users_per_publish: int = 1_000
    #: Seconds between checks for tokens revoked by the CLI (the admin API acts at once).
    revocation_poll: float = 1.0

    def validate(self) -> None:
        _positive("channels.access_token_ttl", self.access_token_ttl)
        _positive("channels.max_users_per_publish", self.max_users_per_publish)
        _positive("channels.revocation_poll", self.revocation_poll)
        for key, names in (
            ("channels.user_channels", self.user_channels),
            ("channels.broadcast_channels", self.broadcast_channels),
        ):
            for name in names:
                if not _CHANNEL_NAME.fullmatch(name):
                    raise ConfigError(key, f"{name!r}: use letters, digits, '.', '_', '-'")

    @property
    def all_user_channels(self) -> frozenset[str]:
        return frozenset((*USER_CHANNELS, *self.user_channels))

    @property
    def all_broadcast_channels(self) -> frozenset[str]:
        return frozenset((*BROADCAST_CHANNELS, *self.broadcast_channels))


@dataclass(frozen=True)
class WalletToken:
    """One ``[[wallet.tokens]]`` entry: an ERC-20 the wallet socket shows on a chain."""

    chain_id: int = 0
    #: The token contract.
    address: str = ""
    symbol: str = ""
    decimals: int = 18

    def validate(self, where: str) -> None:
        _positive(f"{where}.chain_id", self.chain_id)
        if not _EVM_ADDRESS.fullmatch(self.address):
            raise ConfigError(f"{where}.address", f"not an EVM address: {self.address!r}")
        if not 0 < len(self.symbol) <= 32:
            raise ConfigError(f"{where}.symbol", "1 to 32 characters")
        if not 0 <= self.decimals <= 77:
            raise ConfigError(f"{where}.decimals", "must be in [0, 77]")


@dataclass(frozen=True)
class WalletConfig:
    """The wallet socket ``/ws`` and its HTTP fallback ``/v1.2/users/me`` (docs/wallet.md).

    Users are those of ``jwt.app_id``; tokens are verified with ``[jwt]``.
    """

    #: Serve the wallet socket and its HTTP fallback.
    enabled: bool = True
    #: The chain of a socket without ``blockchainId`` (0: the first of ``[[chains]]``).
    default_chain_id: int = 0
    #: ERC-20 tokens shown per chain, besides the native coin.
    tokens: tuple[WalletToken, ...] = ()
    #: Seconds a socket may take to send its ``auth`` message before it is closed (1008).
    auth_timeout: float = 10.0
    #: ``recentTransactions`` in a ``new_transaction`` (the document's ``historyLimit``).
    history_limit: int = 5
    #: Transactions in ``transaction_data`` when the client gives no ``limit``.
    transactions_default: int = 50
    #: Most transactions one ``get_transactions`` (or the HTTP fallback) returns.
    transactions_max: int = 500
    #: Safes whose balances are kept in memory (least recently used leave first).
    balance_cache_max: int = 10_000
    #: Seconds a cached balance is served before it is read again.
    balance_cache_ttl: float = 30.0
    #: Safes waiting for a balance re-read after a transfer; beyond it a re-read is
    #: dropped (logged) and that Safe's cached balances are forgotten.
    balance_queue_max: int = 10_000
    #: Safes per balance re-read batch (one JSON-RPC batch per chain).
    balance_batch_max: int = 100

    def validate(self) -> None:
        _non_negative("wallet.default_chain_id", self.default_chain_id)
        _positive("wallet.auth_timeout", self.auth_timeout)
        _positive("wallet.history_limit", self.history_limit)
        _positive("wallet.transactions_default", self.transactions_default)
        _positive("wallet.transactions_max", self.transactions_max)
        _positive("wallet.balance_cache_max", self.balance_cache_max)
        _non_negative("wallet.balance_cache_ttl", self.balance_cache_ttl)
        _positive("wallet.balance_queue_max", self.balance_queue_max)
        _positive("wallet.balance_batch_max", self.balance_batch_max)
        seen: set[tuple[int, str]] = set()
        for index, token in enumerate(self.tokens):
            token.validate(f"wallet.tokens[{index}]")
            key = (token.chain_id, token.address.lower())
            if key in seen:
                raise ConfigError(f"wallet.tokens[{index}]", "token listed twice for its chain")
            seen.add(key)


@dataclass(frozen=True)
class WebhookConfig:
    #: Most items in one webhook POST.
    batch_max: int = 100
    #: Milliseconds items wait to be batched.
    batch_ms: int = 200
    #: Seconds one webhook request may take.
    timeout: float = 10.0
    #: Concurrent webhook requests across all apps.
    max_connections: int = 20
    #: Largest webhook body, bytes.
    max_body_bytes: int = 1024 * 1024
    #: Seconds between a failed attempt and the next one (Standard Webhooks' schedule);
    #: after the last one the delivery goes to the dead-letter list.
    retry_schedule: tuple[float, ...] = (60.0, 600.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0)
    #: Each delay is randomised by up to this fraction either way.
    retry_jitter: float = 0.1
    #: Seconds a rotated-out secret keeps signing (second signature) after a rotation.
    secret_overlap: int = 24 * 3600
    #: Key that encrypts the apps' signing secrets in the database: base64 of 32 random
    #: bytes. Empty: the key in ``secret_key_file``.
    secret_key: str = ""
    #: File holding that key. Empty: ``<data_dir>/webhook-secrets.key``, created (mode
    #: 0600) when first needed.
    secret_key_file: str = ""
    #: Earlier keys, for decryption only: what they encrypted is re-encrypted with the
    #: current key at start (key rotation).
    previous_secret_keys: tuple[str, ...] = ()
    #: Send to private, loopback, link-local and other non-public addresses. Off, such
    #: URLs are refused when set (literal addresses, ``localhost``) and when sent (the
    #: addresses the host resolves to), so that webhooks cannot reach internal services.
    allow_private_addresses: bool = False

    def validate(self) -> None:
        _positive("webhooks.batch_max", self.batch_max)
        _positive("webhooks.batch_ms", self.batch_ms)
        _positive("webhooks.timeout", self.timeout)
        _positive("webhooks.max_connections", self.max_connections)
        _positive("webhooks.max_body_bytes", self.max_body_bytes)
        if not self.retry_schedule:
            raise ConfigError("webhooks.retry_schedule", "needs at least one delay")
        for delay in self.retry_schedule:
            _non_negative("webhooks.retry_schedule", delay)
        if not 0 <= self.retry_jitter < 1:
            raise ConfigError("webhooks.retry_jitter", "must be in [0, 1)")
        _non_negative("webhooks.secret_overlap", self.secret_overlap)
        if self.secret_key and self.secret_key_file:
            raise ConfigError("webhooks.secret_key_file", "set it or webhooks.secret_key, not both")
        keys = [("webhooks.secret_key", self.secret_key)] if self.secret_key else []
        keys += [("webhooks.previous_secret_keys", key) for key in self.previous_secret_keys]
        for name, key in keys:
            try:
                decode_secret_key(key)
            except ValueError as exc:
                # The message never repeats the value: it is a secret.
                raise ConfigError(name, str(exc)) from None


def decode_secret_key(text: str) -> bytes:
    """The 32 key bytes of a ``webhooks.secret_key`` (base64, standard or URL-safe)."""
    normal = text.strip().replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(normal, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ValueError("expected base64 of 32 random bytes (e.g. from `openssl rand -base64 32`)")
    return key


@dataclass(frozen=True)
class ApiConfig:
    """Limits and switches of the address-monitoring HTTP API (``/tx/api/v1``)."""

    #: Most addresses one add/remove/patch request may carry, over all its groups.
    max_addresses_per_request: int = 1000
    #: Most ``wallets`` groups in one add/remove request.
    max_wallet_groups: int = 50
    #: Most hashes in one ``/transfers/details`` request.
    max_detail_hashes: int = 100
    #: ``/addresses/contains`` looks at every app's list (the spec's global behaviour)
    #: instead of only the caller's. Off by default: it tells one app what another watches.
    contains_global: bool = False
    #: Trades kept per DEX pool (FIFO).
    pool_trades_max: int = 100
    #: Who reads a stored record: ``"app"``, only an app it concerns (an address it
    #: watched when it was stored, a delivery, its own fetch or replay); ``"global"``,
    #: every app (the spec's shared database). ``"app"`` by default: a record stored
    #: because one app watches an address tells any other reader that it does.
    records_visibility: str = "app"

    def validate(self) -> None:
        _positive("api.max_addresses_per_request", self.max_addresses_per_request)
        _positive("api.max_wallet_groups", self.max_wallet_groups)
        _positive("api.max_detail_hashes", self.max_detail_hashes)
        _positive("api.pool_trades_max", self.pool_trades_max)
        if self.records_visibility not in ("app", "global"):
            raise ConfigError("api.records_visibility", 'must be "app" or "global"')


@dataclass(frozen=True)
class PaymentsConfig:
    """Payment proposals and the payment-status socket (docs/payments.md)."""

    #: Open status sockets per transaction id, all clients together; one more is
    #: refused (HTTP 429 at the handshake).
    max_connections_per_transaction: int = 100
    #: Open status sockets per client IP address, all transactions together.
    max_connections_per_ip: int = 1_000
    #: Pending proposals one app may have at once; creating one more answers 429.
    max_pending_per_app: int = 100_000
    #: Longest time a proposal may stay pending, seconds (its ``expiresIn`` at most).
    max_expiry: float = 30 * 24 * 3600.0
    #: Proposals expired per write transaction (more due at once take several).
    expire_batch: int = 500
    #: Origins whose pages may poll ``/api/identipay/v1/transactions/{txId}/status``
    #: from the browser (CORS); ``"*"``: any. The endpoint still needs the API key.
    cors_origins: tuple[str, ...] = ("*",)

    def validate(self) -> None:
        _positive("payments.max_connections_per_transaction", self.max_connections_per_transaction)
        _positive("payments.max_connections_per_ip", self.max_connections_per_ip)
        _positive("payments.max_pending_per_app", self.max_pending_per_app)
        _positive("payments.max_expiry", self.max_expiry)
        _positive("payments.expire_batch", self.expire_batch)


@dataclass(frozen=True)
class DashboardConfig:
    """The admin dashboard at ``/dashboard`` and its live stream (docs/dashboard.md)."""

    #: Seconds between two snapshots sent to the dashboards that are open.
    interval: float = 1.0
    #: Dashboards streaming at once (all admins together); one more is refused (429).
    max_viewers: int = 8
    #: Most recent matched transactions the dashboard lists (kept in memory).
    recent_events: int = 50

    def validate(self) -> None:
        _positive("dashboard.interval", self.interval)
        _positive("dashboard.max_viewers", self.max_viewers)
        _positive("dashboard.recent_events", self.recent_events)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    streams: StreamsConfig = field(default_factory=StreamsConfig)
    jwt: JwtConfig = field(default_factory=JwtConfig)
    channels: ChannelsConfig = field(default_factory=ChannelsConfig)
    wallet: WalletConfig = field(default_factory=WalletConfig)
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    payments: PaymentsConfig = field(default_factory=PaymentsConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    chains: tuple[ChainConfig, ...] = ()

    @property
    def data_dir(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "rtserver.sqlite3"

    def validate(self) -> None:
        self.server.validate()
        self.store.validate()
        self.api.validate()
        self.websocket.validate()
        self.delivery.validate()
        self.streams.validate()
        self.jwt.validate()
        self.channels.validate()
        if self.channels.jwt and not self.jwt.enabled:
            raise ConfigError("channels.jwt", "needs a key in [jwt] (hs256_secret, ...)")
        self.webhooks.validate()
        self.wallet.validate()
        self.payments.validate()
        self.dashboard.validate()
        seen: set[tuple[str, int]] = set()
        for index, chain in enumerate(self.chains):
            where = f"chains[{index}]"
            chain.validate(where)
            key = (chain.chain_type, chain.chain_id)
            if key in seen:
                raise ConfigError(where, f"chain {key[0]}:{key[1]} is configured twice")
            seen.add(key)
        chain_ids = {chain.chain_id for chain in self.chains}
        wallet = self.wallet
        if wallet.default_chain_id and wallet.default_chain_id not in chain_ids:
            raise ConfigError(
                "wallet.default_chain_id", "is not the chain_id of a [[chains]] entry"
            )
        for index, token in enumerate(wallet.tokens):
            if token.chain_id not in chain_ids:
                raise ConfigError(
                    f"wallet.tokens[{index}].chain_id", "is not the chain_id of a [[chains]] entry"
                )

    def replace(self, **sections: Any) -> Config:
        """Return a copy with whole sections replaced (keyword per section)."""
        return dataclasses.replace(self, **sections)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the configuration from defaults, ``path``, ``env`` and ``overrides``.

    ``overrides`` maps section names to key/value pairs (the CLI flags). The result has
    been validated; anything wrong raises :class:`ConfigError`.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(
                "--config", f"cannot read {os.fspath(path)!r}: {exc.strerror}"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"invalid TOML in {os.fspath(path)!r}: {exc}") from None
    env = os.environ if env is None else env
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        section, key = _split_env_name(name)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(section, "cannot be set from the environment")
        raw[section][key] = _EnvValue(name, value)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})

    config = _build(Config, raw, "")
    config.validate()
    return config


@dataclass(frozen=True)
class _EnvValue:
    """A raw string from the environment, converted to the field's type when read."""

    name: str
    text: str


def _split_env_name(name: str) -> tuple[str, str]:
    rest = name[len(ENV_PREFIX) :].lower()
    for section in _SECTIONS:
        if rest.startswith(section + "_") and len(rest) > len(section) + 1:
            return section, rest[len(section) + 1 :]
    raise ConfigError(name, "unknown environment variable (expected RTSERVER_<SECTION>_<KEY>)")


if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T", bound="DataclassInstance")


def _build(cls: type[_T], raw: Any, where: str) -> _T:
    if not isinstance(raw, dict):
        raise ConfigError(where or "config", "must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in raw:
        if key not in known:
            raise ConfigError(_join(where, key), "unknown key")
    values = {key: _coerce(hints[key], raw[key], _join(where, key)) for key in raw}
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if isinstance(value, _EnvValue):
        return _from_env(hint, value, key)
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is tuple:
        (item_hint, _) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(key, f"expected a list, got {_type_name(value)}")
        return tuple(_coerce(item_hint, item, f"{key}[{i}]") for i, item in enumerate(value))
    if origin is Literal:
        choices = typing.get_args(hint)
        if isinstance(value, str):
            value = value.lower()
        if value not in choices:
            raise ConfigError(key, f"expected one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {_type_name(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {_type_name(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {_type_name(value)}")
        return float(value)
    if hint is str:
        if isinstance(value, int) and not isinstance(value, bool) and key.endswith("start_block"):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {_type_name(value)}")
        return value
    if isinstance(hint, types.UnionType):  # pragma: no cover - no such field yet
        raise ConfigError(key, "unsupported option type")
    raise ConfigError(key, "unsupported option type")  # pragma: no cover


def _from_env(hint: Any, value: _EnvValue, key: str) -> Any:
    text = value.text.strip()
    source = f" (from {value.name})"
    try:
        if hint is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if typing.get_origin(hint) is tuple:
            parts = tuple(part.strip() for part in text.split(",") if part.strip())
            if typing.get_args(hint)[0] is float:
                return tuple(float(part) for part in parts)
            return parts
    except ValueError:
        raise ConfigError(
            key, f"cannot parse {value.text!r} as {_hint_name(hint)}{source}"
        ) from None
    if dataclasses.is_dataclass(hint):
        raise ConfigError(key, f"cannot be set from the environment{source}")
    try:
        return _coerce(hint, text, key)
    except ConfigError as exc:
        raise ConfigError(key, exc.problem + source) from None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _type_name(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _hint_name(hint: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number"}.get(hint, str(hint))


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(key, f"must be positive, got {value}")


def _non_negative(key: str, value: float) -> None:
    if value < 0:
        raise ConfigError(key, f"must not be negative, got {value}")


_SECTIONS = tuple(f.name for f in dataclasses.fields(Config) if f.name != "chains")
