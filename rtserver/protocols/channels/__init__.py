"""The channel protocol (``../shared/spec/channel-realtime-ws.txt``): the socket
``/api/v1/ws?token=``, its publish API and diagnostics, end users' access tokens.

Plugged into the server as one :class:`~rtserver.components.Component`, on the realtime
core: channels are history topics, publishing goes through the durable streams.
"""

from __future__ import annotations

from rtserver.components import Component, Service
from rtserver.core import Core
from rtserver.delivery import Delivery
from rtserver.protocols.channels._channels import Channels
from rtserver.protocols.channels._wire import PREFIX, error_shape
from rtserver.protocols.channels.api import make_blueprints
from rtserver.protocols.channels.ws import ChannelSocket
from rtserver.user_auth import JwtVerifier


def component(core: Core) -> Component:
    delivery = Delivery.of(core)
    if delivery is None:
        raise RuntimeError("the channel protocol needs the delivery component before it")
    channels = Channels(core, delivery)
    socket = ChannelSocket(core, delivery, channels, JwtVerifier(core.config.jwt, core.clock))
    routes = []
    if channels.config.enabled:
        routes.append(socket.route())
        if channels.config.debug_endpoints:
            routes.append(socket.debug_route())
    return Component(
        "channels",
        blueprints=make_blueprints(core, delivery, channels),
        websocket_routes=tuple(routes),
        error_shapes=((PREFIX, error_shape),),
        services=(Service("channel-revocations", channels.run_revocation_watch),),
    )


__all__ = ["component"]
