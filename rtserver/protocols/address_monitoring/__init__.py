"""The address-monitoring protocol (``../shared/spec/address-monitoring-api.txt``).

HTTP endpoints under ``/tx/api/v1`` and the WebSocket transaction stream, plugged into
the server as one :class:`~rtserver.components.Component`.
"""

from __future__ import annotations

from rtserver.components import Component
from rtserver.core import Core
from rtserver.protocols.address_monitoring import addresses, pools, transfers
from rtserver.protocols.address_monitoring._errors import PREFIX, error_envelope


def component(core: Core) -> Component:
    return Component(
        "address-monitoring",
        blueprints=(addresses.blueprint, transfers.blueprint, pools.blueprint),
        error_shapes=((PREFIX, error_envelope),),
    )


__all__ = ["component"]
