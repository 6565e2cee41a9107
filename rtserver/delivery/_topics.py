"""Topic naming: the one place that says how a message's topic is spelled.

Every message belongs to a topic, a string ``<family>:<id>``; the hub routes by it and a
broker carries it. The families (docs/architecture.md, ../shared/DESIGN.md):

* ``app:<app_id>``: an app's address-monitoring pushes, an ACK stream (pending in the
  outbox until ACKed, retried live, resent on reconnect);
* ``user:<user_id>``: a user's wallet and channel events;
* ``payment:<transaction_id>``: one payment's status;
* ``channel:<name>``: a broadcast (``settings``, ...).

Guarantees: a topic built here has exactly one family, the text before its first ``:``,
so an id may itself contain ``:`` without changing the family. Ids are opaque: callers
pass ids they validated at their boundary (an authenticated app, a verified token);
nothing here checks or escapes them, because :func:`app_topic` runs once per published
message on the fan-out's hot path.
"""

from __future__ import annotations

from rtserver.store.outbox import OutboxEntry

APP = "app"
USER = "user"
PAYMENT = "payment"
CHANNEL = "channel"

#: Every family a topic may have.
FAMILIES = frozenset((APP, USER, PAYMENT, CHANNEL))


def app_topic(app_id: str) -> str:
    """The ACK stream of an app (its address-monitoring pushes)."""
    return "app:" + app_id


def user_topic(user_id: str) -> str:
    """The events of one user, whichever protocol delivers them."""
    return "user:" + user_id


def payment_topic(transaction_id: str) -> str:
    """The status of one payment."""
    return "payment:" + transaction_id


def channel_topic(name: str) -> str:
    """A named broadcast channel."""
    return "channel:" + name


def family(topic: str) -> str:
    """The family of ``topic`` (``app``, ``user``, ...); ValueError if it has none."""
    name, colon, _ = topic.partition(":")
    if not colon or name not in FAMILIES:
        raise ValueError(f"not a topic: {topic!r}")
    return name


def entry_topic(entry: OutboxEntry) -> str:
    """The topic of a stored outbox entry: its app's ACK stream.

    The outbox row keeps only ``app_id`` (no schema change for a name that is derived).
    """
    return "app:" + entry.app_id
