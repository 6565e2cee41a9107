"""The broker seam: how committed messages reach the fan-out, by topic.

Every committed message goes ``store → broker → hub``: the outbox sink publishes a
commit's messages to the :class:`Broker` (after the commit, in commit order), and the
broker hands them to every node's :class:`BrokerReceiver` (the :class:`~rtserver.delivery.Hub`),
which fans them out to its sessions by topic. Today there is one node and the broker is
:class:`InProcessBroker`, a direct call. The seam is where NATS or Redis pub/sub plugs in
later, so that several rtserver processes share the fan-out (../shared/DESIGN.md,
"Scaling past one machine").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rtserver.store.outbox import OutboxEntry
from rtserver.store.streams import StreamMessage


class BrokerReceiver(Protocol):
    """What one node's fan-out takes from the broker (the :class:`~rtserver.delivery.Hub`
    implements it). Called on the node's event loop, never concurrently, once per batch."""

    def publish(self, entries: Sequence[OutboxEntry]) -> None:
        """Committed ACK-stream messages, each on its topic (``entry_topic(entry)``)."""
        ...

    def publish_stream(self, messages: Sequence[StreamMessage]) -> None:
        """Committed history and state messages, each on its ``topic``."""
        ...

    def publish_transient(self, conn_id: str, entry: OutboxEntry) -> bool:
        """A connection-scoped message, never stored; False if the connection is not here."""
        ...

    def acked(self, topic: str, message_ids: Sequence[str]) -> None:
        """These messages of ``topic`` are ACKed (committed): stop retrying them."""
        ...


class Broker(Protocol):
    """Publish/subscribe by topic between the store and the nodes' hubs.

    What every implementation guarantees (and a networked one, NATS or Redis pub/sub
    shaped, must keep):

    * **After commit, never before.** :meth:`publish` is called from the store's
      ``after_commit`` hook, on the event loop, in commit order, with a commit's
      messages as one batch; it must not block or await. A networked implementation
      buffers (bounded) and sends from its own task.
    * **Per-topic order.** A node's receiver gets the messages of one topic in the
      order they were published, and a batch's messages in batch order. (Across
      publishing nodes, order will come from per-topic offsets, not from the broker.)
    * **At most once per node.** Each node's receiver gets each published message at
      most once, the publishing node included (so a networked implementation either
      loops its own publishes back through the server or hands them to the local
      receiver directly, not both). The live retries are the hub's, not the broker's.
    * **Durability stays in SQLite.** The broker persists nothing and needs no
      acknowledgements of its own (NATS core, not JetStream): an ACK-stream message is
      pending in the outbox until the client ACKs it, so one the broker loses reaches
      the client by the resend on its next (re)connect, or by the retries of a node
      that got it. A lost transient message (connection-scoped, never stored) is lost,
      as documented for those.
    * **Payloads travel rendered.** A message carries its frame text, rendered once per
      wire format at stage time (an outbox entry has its protocol's one format, a
      stream message one per format); each node builds the WebSocket frame bytes once
      per format for all its sessions.
    * **Stream messages carry their position.** A history or state message has its
      topic's epoch and offset; a node that gets one twice, or a message a recovering
      session already read from the store, drops it by offset.
    * **Interest is a hint.** The hub calls :meth:`interest` when a topic gets its first
      session on this node (True) and loses its last (False); a networked
      implementation may subscribe per topic with it, or to every topic and let the
      hub drop what no session wants (a dict miss per message).

    Connection ids are node-local: a networked :meth:`publish_transient` must route to
    the node that holds the connection (for instance, a subject per node).
    """

    def subscribe(self, receiver: BrokerReceiver) -> None:
        """Deliver what is published from now on to ``receiver`` (this node's hub)."""
        ...

    def publish(self, entries: Sequence[OutboxEntry]) -> None:
        """Committed messages, one batch per commit (see the class docstring)."""
        ...

    def publish_stream(self, messages: Sequence[StreamMessage]) -> None:
        """Committed history and state messages, one batch per commit (same rules)."""
        ...

    def publish_transient(self, conn_id: str, entry: OutboxEntry) -> None:
        """A connection-scoped message, to the node that holds ``conn_id``."""
        ...

    def acked(self, topic: str, message_ids: Sequence[str]) -> None:
        """ACKs committed on this node: every node stops retrying these messages."""
        ...

    def interest(self, topic: str, interested: bool) -> None:
        """This node's hub has (True) or no longer has (False) a session on ``topic``."""
        ...


class InProcessBroker:
    """The single-node broker: each call is forwarded at once, synchronously, to the
    subscribed receivers, with the same batch object (no copy, no task, no queue: it is
    the fan-out's hot path). So the order guarantees are the caller's call order, and
    nothing can be lost between the commit and the hub."""

    __slots__ = ("_receivers",)

    def __init__(self) -> None:
        #: A tuple: iterated once per batch, replaced (not mutated) by subscribe.
        self._receivers: tuple[BrokerReceiver, ...] = ()

    def subscribe(self, receiver: BrokerReceiver) -> None:
        self._receivers = (*self._receivers, receiver)

    def publish(self, entries: Sequence[OutboxEntry]) -> None:
        for receiver in self._receivers:
            receiver.publish(entries)

    def publish_stream(self, messages: Sequence[StreamMessage]) -> None:
        for receiver in self._receivers:
            receiver.publish_stream(messages)

    def publish_transient(self, conn_id: str, entry: OutboxEntry) -> None:
        for receiver in self._receivers:
            receiver.publish_transient(conn_id, entry)

    def acked(self, topic: str, message_ids: Sequence[str]) -> None:
        for receiver in self._receivers:
            receiver.acked(topic, message_ids)

    def interest(self, topic: str, interested: bool) -> None:
        """Nothing to do: every published message reaches the local hub, which routes it
        to the topic's sessions or drops it."""
