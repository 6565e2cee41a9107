"""Prometheus metrics: one registry per server, names prefixed ``rtserver_``.

Each concern adds its metrics as attributes created on :class:`Metrics` (or registers a
collector on ``metrics.registry``); ``/metrics`` renders the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from rtserver.store import StoreStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# ``*_created`` series double the output for no use here.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.open_connections = Gauge(
            "rtserver_open_connections", "Open WebSocket connections.", ["endpoint"], registry=r
        )
        # Counted on the push path, once per socket write: a plain integer, not a
        # locked prometheus value.
        self.messages_sent = TallyCounter(
            "rtserver_messages_sent", "WebSocket messages sent.", "endpoint"
        )
        r.register(self.messages_sent)
        self.http_requests = Counter(
            "rtserver_http_requests_total",
            "HTTP requests answered.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "rtserver_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["route"],
            registry=r,
        )
        self.service_crashes = Counter(
            "rtserver_service_crashes_total",
            "Background services that crashed.",
            ["service"],
            registry=r,
        )
        # -- payment proposals (rtserver.payments) --
        self.payment_transitions = Counter(
            "rtserver_payment_transitions_total",
            "Payment proposals that left pending, by new status.",
            ["status"],
            registry=r,
        )
        # -- chain watchers (rtserver.chains); ``chain`` is "<chain_type>:<chain_id>" --
        self.chain_head = Gauge(
            "rtserver_chain_head_block",
            "Latest block number the node reported.",
            ["chain"],
            registry=r,
        )
        self.chain_processed = Gauge(
            "rtserver_chain_processed_block",
            "Last block processed and committed (the checkpoint).",
            ["chain"],
            registry=r,
        )
        self.chain_lag = Gauge(
            "rtserver_chain_lag_blocks",
            "Blocks between the head and the checkpoint.",
            ["chain"],
            registry=r,
        )
        self.chain_rpc_duration = Histogram(
            "rtserver_chain_rpc_duration_seconds",
            "Time of one JSON-RPC request (a batch counts once), by first method.",
            ["chain", "method"],
            registry=r,
        )
        self.chain_rpc_errors = Counter(
            "rtserver_chain_rpc_errors_total",
            "Failed JSON-RPC attempts (each is retried), by kind.",
            ["chain", "kind"],
            registry=r,
        )
        self.chain_skipped_blocks = Counter(
            "rtserver_chain_skipped_blocks_total",
            "Blocks never processed because catch-up exceeded max_catchup_blocks.",
            ["chain"],
            registry=r,
        )
        self.chain_reorgs = Counter(
            "rtserver_chain_reorgs_total",
            "Reorgs handled (fork points walked back to).",
            ["chain"],
            registry=r,
        )
        self.chain_records = Counter(
            "rtserver_chain_records_total",
            "Watched transaction records stored, by outcome (created, changed).",
            ["chain", "outcome"],
            registry=r,
        )
        # -- delivery (issue 5) --
        self.slow_consumers = Counter(
            "rtserver_ws_slow_consumers_total",
            "WebSockets closed with 1013 because their send queue was full.",
            registry=r,
        )
        self.acks = Counter(
            "rtserver_delivery_acks_total", "transactionACK commands committed.", registry=r
        )
        self.resent = Counter(
            "rtserver_delivery_resent_total",
            "Pending messages resent to a connection when it (re)connected.",
            registry=r,
        )
        self.retried = Counter(
            "rtserver_delivery_retried_total",
            "Unacknowledged messages pushed again to an app's open connections.",
            registry=r,
        )
        self.webhook_attempts = Counter(
            "rtserver_webhook_attempts_total",
            "Webhook POST attempts by outcome.",
            ["outcome"],
            registry=r,
        )

        self.watched_unfollowed = Counter(
            "rtserver_watched_unfollowed_total",
            "Addresses added for a chain type that no configured chain follows.",
            ["chain_type"],
            registry=r,
        )
        # -- backlogs, read from the store every delivery.backlog_interval seconds --
        self.pending_messages = Gauge(
            "rtserver_delivery_pending_messages",
            "Messages an app has not ACKed yet.",
            ["app"],
            registry=r,
        )
        self.webhook_backlog = Gauge(
            "rtserver_webhook_backlog",
            "Webhook work of an app: queued items, pending deliveries (retrying), dead letters.",
            ["app", "state"],
            registry=r,
        )
        # -- memory, CPU, open files of this process (Linux /proc) --
        ProcessCollector(registry=r)

    def set_backlogs(self, pending: dict[str, int], webhooks: dict[str, dict[str, int]]) -> None:
        """Replace the backlog gauges (apps with nothing left disappear)."""
        self.pending_messages.clear()
        for app_id, count in pending.items():
            self.pending_messages.labels(app_id).set(count)
        self.webhook_backlog.clear()
        for app_id, states in webhooks.items():
            for state, count in states.items():
                self.webhook_backlog.labels(app_id, state).set(count)

    def watch_store(self, stats: StoreStats) -> None:
        self.registry.register(_StoreCollector(lambda: stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Tally:
    """One labelled series of a :class:`TallyCounter`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class TallyCounter(Collector):
    """A counter with one label, incremented without a lock (event-loop code only) and
    read at scrape time; for paths that count per socket write."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self._name = name
        self._documentation = documentation
        self._label = label
        self._series: dict[str, Tally] = {}

    def labels(self, value: str) -> Tally:
        return self._series.setdefault(value, Tally())

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, tally in sorted(self._series.items()):
            family.add_metric([value], tally.value)
        yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self._name, self._documentation, labels=[self._label])


class _StoreCollector(Collector):
    def __init__(self, stats: Callable[[], StoreStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self._stats()
        yield CounterMetricFamily(
            "rtserver_store_commits", "Write transactions committed.", value=s.commits
        )
        yield CounterMetricFamily(
            "rtserver_store_failed_commits",
            "Write transactions that failed.",
            value=s.failed_commits,
        )
        yield CounterMetricFamily(
            "rtserver_store_write_jobs", "Write jobs processed (many per commit).", value=s.jobs
        )
        yield GaugeMetricFamily(
            "rtserver_store_write_queue", "Write jobs waiting for the writer.", value=s.queued
        )

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        return iter(())
