"""The payment-status protocol (``../shared/spec/payment-status-ws.txt``).

The status socket ``/ws/transactions/{txId}`` and the proposals API under
``/api/identipay/v1`` (its polling endpoint included), plugged into the server as one
:class:`~rtserver.components.Component`. The proposals themselves, their settlement on
chain and their expiry are the core's (:mod:`rtserver.payments`); this package names
their messages and translates requests.
"""

from __future__ import annotations

from rtserver.components import Component, Service
from rtserver.core import Core
from rtserver.delivery import Delivery
from rtserver.payments import PaymentRenderers, Payments
from rtserver.protocols.payment_status import api, ws
from rtserver.protocols.payment_status._wire import (
    PREFIX,
    WS_PREFIX,
    error_shape,
    transition_frames,
    webhook_event,
)

_RENDERERS = PaymentRenderers(frames=transition_frames, webhook_event=webhook_event)


def component(core: Core) -> Component:
    """List it after the delivery component and before the chains (the expiry service
    loads the pending proposals into the watch index before any watcher starts)."""
    delivery = Delivery.of(core)
    if delivery is None:
        raise RuntimeError("payment status needs the delivery component before it")
    payments = Payments.create(core, delivery, _RENDERERS)
    cfg = core.config.payments
    limits = ws.ConnectionLimits(cfg.max_connections_per_transaction, cfg.max_connections_per_ip)
    return Component(
        "payment-status",
        blueprints=(api.make_blueprint(payments), ws.make_blueprint(delivery, payments, limits)),
        websocket_routes=(ws.make_route(delivery, payments, limits),),
        error_shapes=((PREFIX, error_shape), (WS_PREFIX, error_shape)),
        services=(Service("payment-expiry", payments.run_expiry),),
    )


__all__ = ["component"]
