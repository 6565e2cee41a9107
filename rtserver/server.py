"""``serve``: the whole server in one root nursery, and its deterministic shutdown.

Lifecycle, outermost first::

    open_store                 closes last: commits every queued write, then closes
      services nursery         background services (watchers, delivery, webhooks)
        front nursery          the listener: WebSocket routes on bare sockets, the rest
                               through Hypercorn to the Quart-Trio app

Shutdown (the trigger returns): WebSockets close with 1001, Hypercorn stops accepting
and finishes in-flight requests, background services are cancelled, queued writes
commit, the database closes. All of it within ``server.shutdown_grace`` seconds.
A background service that raises takes the process down (``ServiceCrashedError``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig

from rtserver import chains
from rtserver.clock import Clock
from rtserver.components import Component, ComponentFactory, Service
from rtserver.config import Config
from rtserver.core import Core
from rtserver.dashboard import Dashboard
from rtserver.delivery import Delivery
from rtserver.exceptions import RtserverError, ServiceCrashedError
from rtserver.http import (
    Listener,
    admin,
    admin_dashboard,
    admin_webhooks,
    create_app,
    openapi,
    ops,
    pages,
)
from rtserver.protocols import address_monitoring, channels, payment_status, wallet
from rtserver.store import open_store

log = logging.getLogger("rtserver.server")


def _ops_component(core: Core) -> Component:
    dashboard = Dashboard.create(core)
    return Component(
        "ops",
        blueprints=(
            ops.blueprint,
            openapi.blueprint,
            admin.blueprint,
            admin_webhooks.blueprint,
            admin_dashboard.blueprint,
            pages.blueprint,
        ),
        services=(
            Service("dashboard", dashboard.run),
            Service("usage", partial(core.usage.run, core.store)),
            Service("index-refresh", core.run_index_refresh),
            Service("revocations", core.run_revocation_watch),
        ),
    )


def _delivery_component(core: Core) -> Component:
    """The delivery core every protocol publishes through (hub, broker, streams, outbox)."""
    delivery = Delivery.create(core)
    return Component(
        "delivery", services=tuple(Service(name, run) for name, run in delivery.services())
    )


def _chains_component(core: Core) -> Component:
    return Component("chains", services=chains.watcher_services(core))


#: The components every server runs, in start order. Later concerns append theirs here.
DEFAULT_COMPONENTS: tuple[ComponentFactory, ...] = (
    _ops_component,
    _delivery_component,
    address_monitoring.component,
    channels.component,
    wallet.component,
    # Before the chains: its expiry service loads the pending proposals into the watch
    # index before any watcher starts.
    payment_status.component,
    _chains_component,
)

__all__ = ["DEFAULT_COMPONENTS", "Component", "ComponentFactory", "Service", "serve"]


async def serve(
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    components: Sequence[ComponentFactory] = DEFAULT_COMPONENTS,
    clock: Clock | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run rtserver until ``shutdown_trigger`` returns, then shut down in order.

    ``task_status.started`` receives the bound addresses (``http://host:port``) once the
    server accepts connections. ``clock`` is the server's time source (``core.clock``;
    :meth:`Clock.system` by default). Returns normally after a clean shutdown; raises
    :class:`ServiceCrashedError` (inside an exception group) when a service crashed.
    """
    trigger = shutdown_trigger or trio.sleep_forever
    grace = config.server.shutdown_grace
    async with open_store(config) as store:
        core = await Core.create(config, store, clock)
        built = [factory(core) for factory in components]
        app = create_app(
            core,
            [bp for c in built for bp in c.blueprints],
            [shape for c in built for shape in c.error_shapes],
        )
        hypercorn_config = _hypercorn_config(config)
        listener = Listener(
            app,
            hypercorn_config,
            [route for c in built for route in c.websocket_routes],
            max_message_bytes=config.websocket.max_frame_bytes,
            read_timeout=(
                config.websocket.ping_interval + config.websocket.ping_timeout
                if config.websocket.ping_interval
                else None
            ),
        )
        stop_http = trio.Event()
        with trio.CancelScope() as lifetime:
            async with trio.open_nursery() as services:
                for component in built:
                    for service in component.services:
                        await services.start(_supervise, core, service)
                async with trio.open_nursery() as front:
                    binds = await front.start(
                        partial(listener.serve, shutdown_trigger=stop_http.wait)
                    )
                    log.info("rtserver listening on %s (data in %s)", ", ".join(binds), store.path)
                    task_status.started(binds)
                    await trigger()
                    log.info("shutting down (grace %.1f s)", grace)
                    lifetime.deadline = trio.current_time() + grace
                    core.connections.begin_shutdown()
                    stop_http.set()
                log.info("HTTP front stopped; stopping background services")
                services.cancel_scope.cancel()
        if lifetime.cancelled_caught:
            log.warning("shutdown grace period of %.1f s ran out; remaining work cancelled", grace)
    log.info("database closed; bye")


async def _supervise(
    core: Core, service: Service, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    try:
        await service.run(task_status=task_status)
    except RtserverError as exc:
        # An expected failure (e.g. a chain's RPC unreachable at start): its message is
        # the explanation, a traceback would only bury it.
        log.critical("background service %r failed: %s; shutting down", service.name, exc)
        core.metrics.service_crashes.labels(service.name).inc()
        raise ServiceCrashedError(service.name) from exc
    except Exception as exc:
        log.critical("background service %r crashed; shutting down", service.name, exc_info=exc)
        core.metrics.service_crashes.labels(service.name).inc()
        raise ServiceCrashedError(service.name) from exc
    # A service runs until cancelled; returning on its own is a failure too.
    log.critical("background service %r stopped unexpectedly; shutting down", service.name)
    core.metrics.service_crashes.labels(service.name).inc()
    raise ServiceCrashedError(service.name)


def _hypercorn_config(config: Config) -> HypercornConfig:
    hc = HypercornConfig()
    hc.bind = [config.server.bind]
    hc.backlog = config.server.backlog
    hc.graceful_timeout = config.server.shutdown_grace
    hc.websocket_max_message_size = config.websocket.max_frame_bytes
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.include_server_header = False
    # rtserver sends its own pings per protocol (Hypercorn's ping task outlives a closed
    # socket by up to one interval, which stalls graceful shutdown). Pongs never reach
    # the app, so a connection that stops answering is detected by the read timeout:
    # no byte (pong or message) for interval + timeout closes it. Every WebSocket
    # session must therefore ping (delivery's hub pings every connection). The same
    # timeout applies to the WebSocket routes the listener serves itself.
    ping = config.websocket.ping_interval
    hc.websocket_ping_interval = None
    hc.read_timeout = int(ping + config.websocket.ping_timeout + 0.999) if ping else None
    return hc
