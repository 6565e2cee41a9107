"""The address-monitoring protocol (``../shared/spec/address-monitoring-api.txt``).

HTTP endpoints under ``/tx/api/v1`` and the WebSocket transaction stream, plugged into
the server as one :class:`~rtserver.components.Component`.
"""

from __future__ import annotations

from rtserver.components import Component, Service
from rtserver.core import Core
from rtserver.delivery import Delivery, PayloadRenderers
from rtserver.pools import PoolTradeSink
from rtserver.protocols.address_monitoring import addresses, pools, status, transfers, ws
from rtserver.protocols.address_monitoring._errors import PREFIX, error_envelope
from rtserver.protocols.address_monitoring._naming import pool_item, push_data, transaction_result

_PAYLOADS = PayloadRenderers(push_data=push_data, webhook_item=transaction_result)


def component(core: Core) -> Component:
    # This protocol is the only one that serves pool trades, so it keeps them, in the
    # naming its pool API answers with.
    core.match_sink.add(PoolTradeSink(core.config.api.pool_trades_max, pool_item))
    # The delivery core (outbox sink, hub, retries, webhooks) stores pushes and webhook
    # items in this protocol's namings and frames them in its envelope; it is built once
    # per server.
    delivery = Delivery.create(core, ws.render_transaction, _PAYLOADS)
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
