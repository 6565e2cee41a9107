"""The address-monitoring protocol (``../shared/spec/address-monitoring-api.txt``).

HTTP endpoints under ``/tx/api/v1`` and the WebSocket transaction stream, plugged into
the server as one :class:`~rtserver.components.Component`.
"""

from __future__ import annotations

from rtserver.components import Component, Service
from rtserver.core import Core
from rtserver.delivery import Delivery
from rtserver.protocols.address_monitoring import addresses, pools, status, transfers, ws
from rtserver.protocols.address_monitoring._errors import PREFIX, error_envelope


def component(core: Core) -> Component:
    # The delivery core (outbox sink, hub, retries, webhooks) renders pushes in this
    # protocol's envelope; it is built once per server.
    delivery = Delivery.create(core, ws.render_transaction)
    return Component(
        "address-monitoring",
        blueprints=(
            addresses.blueprint,
            transfers.blueprint,
            pools.blueprint,
            ws.make_blueprint(delivery),
            status.make_blueprint(delivery),
        ),
        websocket_routes=(ws.make_route(delivery),),
        error_shapes=((PREFIX, error_envelope),),
        services=tuple(Service(name, run) for name, run in delivery.services()),
    )


__all__ = ["component"]
