"""The wallet protocol (``../shared/spec/wallet-realtime-ws.txt``): the socket ``/ws``
(JWT auth message, the initial sequence, live balances and transactions, KYC and IBAN
updates), its HTTP fallback ``/v1.2/users/me``, and the users' registry API.

Plugged into the server as one :class:`~rtserver.components.Component`, on the realtime
core: a user's wallet events are a history topic, transfers reach it through the watch
index and the watcher's transaction (:class:`WalletSink`).
"""

from __future__ import annotations

from rtserver.components import Component, Service
from rtserver.core import Core
from rtserver.delivery import Delivery
from rtserver.protocols.wallet._wallet import Wallet, WalletSink
from rtserver.protocols.wallet.api import PREFIX, make_blueprints
from rtserver.protocols.wallet.ws import WalletSocket, error_shape
from rtserver.user_auth import JwtVerifier


def component(core: Core) -> Component:
    delivery = Delivery.of(core)
    if delivery is None:
        raise RuntimeError("the wallet protocol needs the delivery component before it")
    wallet = Wallet(core, delivery)
    # Before any watcher starts: no transfer to a Safe is committed without its event.
    core.match_sink.add(WalletSink(wallet))
    socket = WalletSocket(core, delivery, wallet, JwtVerifier(core.config.jwt, core.clock))
    enabled = wallet.config.enabled
    return Component(
        "wallet",
        blueprints=make_blueprints(wallet, socket) if enabled else (),
        websocket_routes=(socket.route(),) if enabled else (),
        error_shapes=((PREFIX, error_shape),),
        services=(
            Service("wallet-balances", wallet.run_refresh),
            Service("wallet-auth-timeouts", socket.run_auth_timeouts),
        ),
    )


__all__ = ["component"]
