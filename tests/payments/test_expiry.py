"""Expiry on the server's clock: at its time, never before.

The server's clock follows a ``MockClock`` that runs at real speed and jumps on demand
(``moving_mock_clock``): pytest-trio's autojump clock cannot drive a whole server, since
it jumps to the next deadline whenever every task waits, and they all wait while the
store's threads work, so virtual time runs away during any database access.
"""

from __future__ import annotations

import json
from pathlib import Path

import trio
import trio.testing
from delivery.helpers import new_app

from payments.helpers import CHAIN_ID, CHAIN_TYPE, MERCHANT, WITHOUT_WATCHERS, payments_config
from rtserver.clock import Clock
from rtserver.delivery import Delivery, payment_topic
from rtserver.payments import Payments
from rtserver.proposals import NATIVE, AmountMatch, ProposalStatus, ProposalTerms
from rtserver.protocols.payment_status._wire import FORMAT

from conftest import run_server

HOUR_MS = 3_600_000


async def test_a_pending_proposal_expires_at_its_time(
    tmp_path: Path, moving_mock_clock: trio.testing.MockClock
) -> None:
    clock = Clock.following_trio()
    async with run_server(payments_config(tmp_path), WITHOUT_WATCHERS, clock=clock) as server:
        core = server.core
        payments, delivery = Payments.of(core), Delivery.of(core)
        assert payments is not None and delivery is not None
        app_id = (await new_app(core)).app.app_id

        def terms(hours: int, address: str = MERCHANT) -> ProposalTerms:
            return ProposalTerms(
                CHAIN_TYPE,
                CHAIN_ID,
                NATIVE,
                1000,
                AmountMatch.EXACT,
                address,
                clock.time_ms() + hours * HOUR_MS,
            )

        later = await payments.create_proposal(app_id, terms(2))
        # Created after a later one, expiring sooner: it wakes the timer.
        sooner = await payments.create_proposal(app_id, terms(1, "0x" + "b2" * 20))
        observer = delivery.hub.attach("observer", format=FORMAT)
        delivery.hub.subscribe(observer, payment_topic(sooner.transaction_id))
        delivery.hub.finish_resend(observer, [])  # live messages flow from here

        moving_mock_clock.jump(3598)  # two seconds before its hour: nothing yet
        current = await payments.get(app_id, sooner.transaction_id)
        assert current is not None and current.status is ProposalStatus.PENDING
        deadline = sooner.terms.expires_at_ms
        with trio.fail_after(10):  # its last two seconds pass in real time
            while (expired := await payments.get(app_id, sooner.transaction_id)) is not None:
                if expired.status is not ProposalStatus.PENDING:
                    break
                await trio.sleep(0.02)
        assert expired is not None and expired.status is ProposalStatus.EXPIRED
        # At its time: not before, and as soon as the timer and one commit allow.
        assert deadline <= expired.updated_at_ms <= deadline + 1_000
        frames = [json.loads(f.text) for f in observer._queue]  # type: ignore[attr-defined]
        assert frames == [
            {
                "type": "status",
                "transactionId": sooner.transaction_id,
                "status": "expired",
                "suiTxDigest": None,
            }
        ]
        still = await payments.get(app_id, later.transaction_id)
        assert still is not None and still.status is ProposalStatus.PENDING
        moving_mock_clock.jump(3600)
        with trio.fail_after(10):
            while core.watched.proposal_count():
                await trio.sleep(0.02)
        gone = await payments.get(app_id, later.transaction_id)
        assert gone is not None and gone.status is ProposalStatus.EXPIRED
        assert core.metrics.payment_transitions.labels("expired")._value.get() == 2
        # Detached: the delivery core outlives the server in this process (Delivery.of
        # keeps it), and a test must leave no session behind.
        delivery.hub.detach(observer)
