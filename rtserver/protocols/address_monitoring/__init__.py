"""The address-monitoring protocol (``../shared/spec/address-monitoring-api.txt``).

HTTP endpoints under ``/tx/api/v1`` and the WebSocket transaction stream, plugged into
the server as one :class:`~rtserver.components.Component`.
"""

from __future__ import annotations

from rtserver.components import Component
from rtserver.core import Core
from rtserver.delivery import Delivery, PayloadRenderers
from rtserver.pools import PoolTradeSink
from rtserver.protocols.address_monitoring import addresses, pools, status, transfers, ws
from rtserver.protocols.address_monitoring._errors import PREFIX, error_envelope
from rtserver.protocols.address_monitoring._naming import pool_item, transaction_result

_PAYLOADS = PayloadRenderers(push_frame=ws.push_frame, webhook_item=transaction_result)


def component(core: Core) -> Component:
    # This protocol is the only one that serves pool trades, so it keeps them, in the
    # naming its pool API answers with.
    core.match_sink.add(PoolTradeSink(core.config.api.pool_trades_max, pool_item))
    # The apps' ACK streams (outbox, webhooks) are this protocol's: the delivery core
    # stores their pushes and webhook items rendered in its namings and envelope.
    delivery = Delivery.of(core)
    if delivery is None:
        raise RuntimeError("address monitoring needs the delivery component before it")
    delivery.serve_outbox(_PAYLOADS)
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
    )


__all__ = ["component"]
