"""The in-memory fan-out: committed messages to open connections, serialised once.

Guarantees and costs:

* A :class:`Frame` is built once per message (its JSON text, and lazily its WebSocket
  frame bytes) and the same object is queued to every recipient.
* Each connection is a :class:`Session` with a bounded queue (a list). A hand-over is
  written at once with one non-blocking ``send`` when the socket has room (the fast
  path: no task switch); what the socket does not take is written by a *drain* task
  that takes everything queued at once and exits when the queue is empty. So an idle
  connection costs no task here, and a task is started per congested socket, never
  per message. Pings for every connection come from one hub task.
* Routing is by topic (:mod:`rtserver.delivery._topics`): a session subscribes to any
  number of topics and gets every message published to each of them, in publish order
  per topic. Sessions are also indexed by connection id (connection-scoped messages)
  and by user id (one socket per user, forced logout). :meth:`Hub.detach` removes a
  session from every index.
* Publishing never awaits: a session whose queue is over its limit is marked failed
  (close code 1013) and dropped from the fan-out; its ACK-stream messages stay pending
  in the outbox and are resent when it reconnects. One slow or dead client never delays others.
* Retries: a message published to an ACK-stream topic (``app:<app_id>``) stays *in
  flight* on that topic until it is ACKed (from any connection); a hub task pushes due
  ones again, with exponential backoff, to the topic's sessions whose resend window
  covers them. The bookkeeping is per topic, not per connection: one entry per message
  however many sockets are subscribed.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import trio
import trio.lowlevel

from rtserver.clock import Clock
from rtserver.delivery._topics import entry_topic
from rtserver.store.outbox import OutboxEntry
from rtserver.store.streams import StreamMessage

TRY_AGAIN_LATER = 1013
#: Most unACKed messages one session gets pushed again per retry tick.
RETRY_BURST = 20
#: A hand-over that touches at most this many sessions is written at once, inside the
#: publish call; a larger one is written by the hub's flusher task in slices of
#: FLUSH_SLICE sessions with a checkpoint between slices (see :meth:`Hub._run_flusher`).
FLUSH_INLINE = 64
FLUSH_SLICE = 32


class Frame:
    """One outgoing text message: ``text`` is serialised once, ``wire`` framed once."""

    __slots__ = ("_wire", "created_at_ms", "message_id", "text")

    def __init__(self, text: str, message_id: str | None = None, created_at_ms: int = 0) -> None:
        self.text = text
        self.message_id = message_id
        self.created_at_ms = created_at_ms
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        """The unmasked, uncompressed server-to-client WebSocket text frame (RFC 6455)."""
        if self._wire is None:
            self._wire = frame_bytes(0x81, self.text.encode())
        return self._wire

    @classmethod
    def control(cls, wire: bytes) -> Frame:
        """A frame whose wire bytes are already built (a pong, a tail): not a message."""
        frame = cls("")
        frame._wire = wire
        return frame


#: A WebSocket ping (empty payload): sent by the hub to every connection every ping
#: interval, so that a live client always has something to answer.
PING = Frame.control(b"\x89\x00")


def frame_bytes(opcode_byte: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((opcode_byte, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", opcode_byte, 126, n) + payload
    return struct.pack("!BBQ", opcode_byte, 127, n) + payload


class _Tail(Frame):
    """The unsent rest of a frame a direct write could not finish (not a message)."""

    __slots__ = ()

    def __init__(self, rest: bytes) -> None:
        super().__init__("")
        self._wire = rest


class Transport(Protocol):
    async def write(self, frames: Sequence[Frame]) -> None:
        """Send ``frames`` in order (ideally as one write); raise if the connection broke."""
        ...


#: Starts a drain task in the hub's nursery.
_Spawn = Callable[[Callable[[], Awaitable[None]]], None]


class _FlushHold:
    """While ``active``, sessions queue what they are sent and are listed here with how
    many frames; :meth:`Hub.coalesce` writes each of them once at the end."""

    __slots__ = ("active", "sessions")

    def __init__(self) -> None:
        self.active = False
        self.sessions: dict[Session, int] = {}


#: Close code of a session whose socket broke (never sent: there is no one to send it to).
CONNECTION_LOST = 1006


#: Optional transport capability: write without waiting, from the event loop, when no
#: other write is in progress. Returns the bytes written (0 when the socket buffer is
#: full), or -1 when only the asynchronous path may write now.
DirectWrite = Callable[[bytes], int]


def entry_frame(entry: OutboxEntry) -> Frame:
    """The frame of an outbox entry: its payload is the frame text, rendered at stage time."""
    return Frame(entry.payload, entry.message_id, entry.created_at_ms)


#: An unACKed message of a topic: (frame, monotonic time of its next retry, current
#: retry interval).
_InFlight = tuple[Frame, float, float]


class Session:
    """One connection's delivery state. Create with :meth:`Hub.attach`."""

    __slots__ = (
        "_burst",
        "_direct",
        "_drained",
        "_draining",
        "_held",
        "_hold",
        "_offsets",
        "_queue",
        "_recovering",
        "_sent",
        "_spawn",
        "_transport",
        "app_id",
        "close_code",
        "close_reason",
        "closed",
        "conn_id",
        "format",
        "limit",
        "on_close",
        "topics",
        "user_id",
        "window_ms",
    )

    def __init__(
        self,
        conn_id: str,
        app_id: str | None,
        user_id: str | None,
        limit: int,
        window_ms: int,
        spawn: _Spawn,
        hold: _FlushHold,
        format: str = "",
        resending: bool = False,
    ) -> None:
        self.conn_id = conn_id
        #: The wire format this connection speaks: of a stream message's frames, it gets
        #: the one of this format (and none of a message that has no such frame).
        self.format = format
        #: The app that owns the connection (revocation closes it, ACKs and resends are
        #: scoped to it); None for a connection no app key opened.
        self.app_id = app_id
        #: The authenticated user, if the protocol has users (the hub's user index).
        self.user_id = user_id
        #: The topics this session is subscribed to; changed by the hub only
        #: (:meth:`Hub.subscribe`, :meth:`Hub.unsubscribe`), read-only elsewhere.
        self.topics: set[str] = set()
        self.limit = limit
        self.window_ms = window_ms
        # A list, not a deque: frames are only appended and taken all at once, and an
        # empty list costs 56 bytes where a deque keeps a 528-byte block (two once cleared).
        self._queue: list[Frame] = []
        #: Frames queued by the hand-over in progress (a publish call, a resend): they do
        #: not count against ``limit``, what was still unwritten before them does.
        self._burst = 0
        self._spawn = spawn
        self._hold = hold
        #: Set by :meth:`bind`: until then frames only queue.
        self._transport: Transport | None = None
        #: The transport's non-blocking write, if it has one.
        self._direct: DirectWrite | None = None
        self._sent: Callable[[int], None] | None = None
        #: True from a drain task's start until it found the queue empty: meanwhile only
        #: it writes (a direct write could cut into its frames).
        self._draining = False
        self._drained: trio.Event | None = None
        #: Live frames held while a resend is read (None: not holding).
        self._held: list[Frame] | None = [] if resending else None
        #: Per stream topic (history or state), the last offset queued to this session:
        #: a message at or below it is a duplicate (recovery and live overlap) and is
        #: dropped. Created on the first stream subscription.
        self._offsets: dict[str, int] | None = None
        #: Stream topics whose recovery is being read: their live messages wait here.
        self._recovering: dict[str, list[tuple[int, Frame]]] | None = None
        self.closed = False
        self.close_code = 1000
        self.close_reason = ""
        #: Called once when the session fails (slow, shutdown, broken socket): the
        #: front-end's cue to close the socket.
        self.on_close: Callable[[], None] | None = None

    def bind(self, transport: Transport, sent: Callable[[int], None]) -> None:
        """Start writing to ``transport`` (what is queued goes out now).

        ``sent(n)`` is told how many frames each write carried (metrics).
        """
        self._transport = transport
        self._direct = getattr(transport, "write_now", None)
        self._sent = sent
        self._flush()

    def send(self, frame: Frame) -> None:
        """Queue ``frame`` now (replies, ``connected``), even while resending."""
        if not self.closed:
            self._queue.append(frame)
            hold = self._hold
            if hold.active:  # written at the end of the hub's coalesce() block
                hold.sessions[self] = hold.sessions.get(self, 0) + 1
                return
            self._flush()
            self.check(1)

    def check(self, burst: int) -> None:
        """Fail with 1013 if, besides the ``burst`` just queued, more than ``limit`` frames
        are still unwritten: the socket did not take the previous ones in time.

        So a healthy client survives a block with any number of matches, and a stuck one
        costs at most ``limit`` frames plus one hand-over of memory.
        """
        if len(self._queue) - burst > self.limit:
            self.fail(TRY_AGAIN_LATER, "send queue full: the client does not read fast enough")

    def offer(self, frame: Frame) -> bool:
        """A live message: held back while the resend runs, else queued.

        Returns True when this is the session's first frame of the current hand-over
        (the hub then calls :meth:`end_burst` once it is done).
        """
        if self.closed:
            return False
        if self._held is not None:
            self._held.append(frame)
            return False
        self._queue.append(frame)
        self._burst += 1
        return self._burst == 1

    def offer_stream(self, topic: str, offset: int, frame: Frame) -> bool:
        """A live message of a stream topic: held while that topic recovers, dropped if
        this session has it already, else offered like any live message (same return)."""
        recovering = self._recovering
        if recovering is not None:
            held = recovering.get(topic)
            if held is not None:
                held.append((offset, frame))
                return False
        return self._new_offset(topic, offset) and self.offer(frame)

    def _new_offset(self, topic: str, offset: int) -> bool:
        """Record ``offset`` as queued on ``topic``; False if it (or a later one) was."""
        offsets = self._offsets
        if offsets is None:
            offsets = self._offsets = {}
        elif offsets.get(topic, 0) >= offset:
            return False
        offsets[topic] = offset
        return True

    def covers(self, frame: Frame, now_ms: int) -> bool:
        """Whether ``frame`` is inside this session's resend window (retries only go there)."""
        return frame.created_at_ms >= now_ms - self.window_ms

    def _flush(self) -> None:
        """Write what is queued at once if the socket takes it, else start a drain.

        The direct write is the fan-out's fast path: a socket whose kernel buffer has room
        takes all its new frames in one non-blocking ``send``, with no task switch. Order
        holds because it is only tried while no drain task runs; what the socket did not
        take stays queued, in order, for the drain task.
        """
        queue = self._queue
        if not queue:
            return
        direct = self._direct
        if direct is not None and not self._draining:
            frames = list(queue)
            data = frames[0].wire if len(frames) == 1 else b"".join([f.wire for f in frames])
            written = direct(data)
            if written == len(data):
                queue.clear()
                self._count(frames)
                return
            if written > 0:
                queue.clear()
                offset = 0
                for index, frame in enumerate(frames):
                    end = offset + len(frame.wire)
                    if end > written:
                        # Counted as sent once its first byte is out; the rest is a tail.
                        self._count(frames[: index + 1])
                        queue.append(_Tail(frame.wire[written - offset :]))
                        queue.extend(frames[index + 1 :])
                        break
                    offset = end
        if not self._draining and self._transport is not None and not self.closed:
            self._draining = True
            self._spawn(self._drain)

    async def _drain(self) -> None:
        """Write everything queued, batch after batch, until the queue is empty.

        Never raises: it runs in the hub's service nursery, where a fault of one
        connection must end that connection only. The session may have failed between
        the spawn and the start (the peer reset the socket): then there is nothing to do.
        """
        queue = self._queue
        try:
            while queue and not self.closed:
                transport = self._transport
                if transport is None:
                    break
                frames = list(queue)
                queue.clear()
                await transport.write(frames)
                self._count(frames)
        except Exception as exc:  # the socket broke: the front-end closes the connection
            self.fail(CONNECTION_LOST, f"write failed: {exc!r}")
        finally:
            self._draining = False
            if self._drained is not None:
                self._drained.set()
                self._drained = None

    async def wait_drained(self) -> None:
        """Return once no write is in progress and, after a flushing :meth:`fail`, what
        was queued before it is written (the front-end may then write its close). The
        caller bounds the wait: a client that does not read holds it."""
        if self._draining:
            if self._drained is None:
                self._drained = trio.Event()
            await self._drained.wait()
        transport, self._transport = self._transport, None
        frames = list(self._queue)
        self._queue.clear()
        if transport is not None and frames:
            # A broken socket has nothing more to hear: the close follows anyway.
            with contextlib.suppress(Exception):
                await transport.write(frames)

    def ping(self) -> None:
        """Queue a ping if nothing else is queued (the hub's ping tick)."""
        if self._transport is not None and not self.closed and not self._queue:
            self._queue.append(PING)
            self._flush()

    def _count(self, frames: Sequence[Frame]) -> None:
        # A tail can only be the first frame (the rest of a partly written one).
        if self._sent is not None and frames:
            self._sent(len(frames) - isinstance(frames[0], _Tail))

    def end_burst(self) -> None:
        """The hand-over is complete: write its frames (one send per socket), then check."""
        burst, self._burst = self._burst, 0
        self._flush()
        self.check(burst)

    def finish_resend(self, resent: Sequence[Frame]) -> None:
        """Queue ``resent`` (oldest first), then the live frames held meanwhile, once each."""
        held, self._held = self._held or [], None
        seen = {frame.message_id for frame in resent}
        for frame in [*resent, *(f for f in held if f.message_id not in seen)]:
            self.offer(frame)
        self.end_burst()

    def fail(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Stop delivering to this session; the front-end closes it with ``code``.

        ``flush``: what is queued still goes out before the close (a forced logout's last
        event); otherwise it is dropped.
        """
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.close_reason = reason
        self._direct = None
        self._sent = None
        if not flush:
            self._queue.clear()
            # Drop the transport: the front-end's objects often point back at the
            # session, and a closed connection must be freed by reference counting, not
            # wait for a full garbage collection. (A flushing fail keeps it until
            # :meth:`wait_drained` has written the rest.)
            self._transport = None
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()


#: A format not looked up yet (None means: the message has no frame of that format).
_UNSET = Frame("")


class Hub:
    """Routes committed messages to sessions by topic, and single frames by connection.

    Indexes: topic → sessions, connection id → session, user id → sessions. Every
    attached session is in the connection index until :meth:`detach`, and in the topic
    and user indexes exactly for its :attr:`Session.topics` and :attr:`Session.user_id`.

    Retry due times and resend windows are read from ``clock`` only (its monotonic and
    wall time), so a test's Trio ``MockClock`` moves them.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        queue_max: int,
        inflight_max: int = 1000,
        retry_interval: float,
        retry_max_interval: float,
        on_fanout: Callable[[str, int], None] | None = None,
        on_interest: Callable[[str, bool], None] | None = None,
    ) -> None:
        """``on_fanout(app_id, n)`` is told each message's app and how many sessions got
        it (usage); ``on_interest(topic, True/False)`` when a topic gets its first
        session here and loses its last (the broker's subscription hint)."""
        self._clock = clock
        self._queue_max = queue_max
        self._inflight_max = inflight_max
        self._retry_interval = retry_interval
        self._retry_max = retry_max_interval
        self._on_fanout = on_fanout
        self._on_interest = on_interest
        #: Sessions of a topic in subscription order, as an insertion-ordered dict (an
        #: ordered set): iterated as fast as a list by the fan-out, but a session leaves
        #: in O(1), so a broadcast topic with 10,000 sessions does not cost a scan per
        #: disconnect. A topic with no session has no key.
        self._by_topic: dict[str, dict[Session, None]] = {}
        self._by_conn: dict[str, Session] = {}
        self._by_user: dict[str, list[Session]] = {}
        #: Per ACK-stream topic with sessions: its unACKed messages, oldest (and soonest
        #: due) first, at most ``inflight_max``: beyond that the oldest leave live
        #: retries (they stay pending and are resent on reconnect).
        self._unacked: dict[str, dict[str, _InFlight]] = {}
        #: Where drain tasks run; set while :meth:`run_writers` runs.
        self._writers: trio.Nursery | None = None
        self._hold = _FlushHold()
        #: Sessions with frames of a large hand-over not yet written (an ordered set):
        #: the flusher task writes them. A session is here at most once whatever the
        #: number of publishes meanwhile, so messages published while a fan-out is in
        #: progress join the ones it has not written yet: one ``send`` carries them all.
        self._unflushed: dict[Session, None] = {}
        self._flush_wanted: trio.Event | None = None
        #: Set when the flusher's walk in progress ends (None: no walk in progress).
        self._walk_end: trio.Event | None = None
        #: The same event while the walk in progress started from idle (a new burst,
        #: not the next walk of a backlog): client messages wait for it (wait_walk).
        self._burst_end: trio.Event | None = None
        #: Set when the next walk to start ends (None until someone waits for it).
        self._next_walk_end: trio.Event | None = None

    # -- sessions -------------------------------------------------------------------

    def attach(
        self,
        conn_id: str,
        *,
        topics: Iterable[str] = (),
        user_id: str | None = None,
        app_id: str | None = None,
        window_ms: int = 0,
        format: str = "",
        resending: bool = False,
    ) -> Session:
        """Register a connection, subscribed to ``topics``.

        ``resending`` (an ACK-stream protocol that resends pending messages on connect):
        live messages are held from now until :meth:`finish_resend`, so that none
        published while the protocol reads its resend is missed or sent twice.
        ``app_id`` is the connection's owner (see :attr:`Session.app_id`); ``window_ms``
        how far back retries may reach (:meth:`Session.covers`); ``format`` the wire
        format it gets of stream messages (:attr:`Session.format`).
        """
        session = Session(
            conn_id,
            app_id,
            user_id,
            self._queue_max,
            window_ms,
            self._spawn_drain,
            self._hold,
            format,
            resending,
        )
        self._by_conn[conn_id] = session
        if user_id is not None:
            self._by_user.setdefault(user_id, []).append(session)
        for topic in topics:
            self.subscribe(session, topic)
        return session

    def subscribe(self, session: Session, topic: str, *, recovering: bool = False) -> None:
        """Deliver ``topic``'s messages published from now on to ``session`` too.

        ``recovering`` (a stream topic): its live messages are held from now until
        :meth:`finish_recovery`, which the protocol calls with what it read of the
        stream, so that none is missed or sent twice. Idempotent; a no-op for a session
        that is closed or detached.
        """
        if session.closed or topic in session.topics:
            return
        if self._by_conn.get(session.conn_id) is not session:
            return
        if recovering:
            if session._recovering is None:
                session._recovering = {}
            session._recovering[topic] = []
        session.topics.add(topic)
        sessions = self._by_topic.get(topic)
        if sessions is None:
            sessions = self._by_topic[topic] = {}
            if self._on_interest is not None:
                self._on_interest(topic, True)
        sessions[session] = None

    def unsubscribe(self, session: Session, topic: str) -> None:
        """Stop delivering ``topic`` to ``session`` (live and retries). Idempotent."""
        if topic not in session.topics:
            return
        session.topics.discard(topic)
        if session._recovering is not None:
            session._recovering.pop(topic, None)
        if session._offsets is not None:
            session._offsets.pop(topic, None)
        self._leave(session, topic)

    def _leave(self, session: Session, topic: str) -> None:
        sessions = self._by_topic.get(topic)
        if sessions is None:
            return
        sessions.pop(session, None)
        if not sessions:
            del self._by_topic[topic]
            # Nobody to retry to: a reconnect resends from the outbox instead.
            self._unacked.pop(topic, None)
            if self._on_interest is not None:
                self._on_interest(topic, False)

    @contextmanager
    def coalesce(self) -> Iterator[None]:
        """Frames sent to sessions inside the block (which must not await) are written
        at its end, one write per session: many replies to one client, one ``send``."""
        hold = self._hold
        hold.active = True
        try:
            yield
        finally:
            hold.active = False
            sessions, hold.sessions = hold.sessions, {}
            for session, count in sessions.items():
                session._flush()
                session.check(count)
                if session.closed:
                    self.detach(session)

    def _spawn_drain(self, drain: Callable[[], Awaitable[None]]) -> None:
        if self._writers is None:
            raise RuntimeError("the hub's writers are not running (Hub.run_writers)")
        self._writers.start_soon(drain)

    async def run_writers(
        self,
        ping_interval: float,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Service: owns the sessions' drain tasks and the flusher of large hand-overs;
        pings every connection every ``ping_interval`` seconds (0: never)."""
        async with trio.open_nursery() as nursery:
            self._writers = nursery
            nursery.start_soon(self._run_flusher)
            task_status.started()
            try:
                if not ping_interval:
                    await trio.sleep_forever()
                while True:
                    await trio.sleep(ping_interval)
                    for session in list(self._by_conn.values()):
                        session.ping()
            finally:
                self._writers = None

    async def _run_flusher(self) -> None:
        """Write the sessions of large hand-overs, FLUSH_SLICE at a time, letting other
        tasks run between slices.

        Why not inline: writing 10,000 sockets takes tens of milliseconds of CPU. Done
        inside the publish call, it would hold the loop (no request, ACK or commit
        is served meanwhile) and the publisher's own reply (a commit is answered only
        after it). Sliced, the publisher is answered once its messages are durable and
        queued, and what it publishes next while the walk goes on reaches the sessions
        not yet written in the same ``send`` as the earlier messages.
        """
        idle = True
        while True:
            if not self._unflushed:
                wanted = self._flush_wanted = trio.Event()
                await wanted.wait()
                idle = True
                continue
            # A session touched again while this batch is written is either still ahead
            # in it (its new frames go out with the old ones) or already written (then
            # it is in the next batch).
            batch = list(self._unflushed)
            self._unflushed = {}
            walk_end, self._next_walk_end = self._next_walk_end, None
            if walk_end is None:
                walk_end = trio.Event()
            self._walk_end = walk_end
            if idle:
                self._burst_end = walk_end
            idle = False
            try:
                for index, session in enumerate(batch, 1):
                    if not session.closed:
                        self._end_burst(session)
                    if index % FLUSH_SLICE == 0:
                        await trio.lowlevel.checkpoint()
            finally:
                self._walk_end = self._burst_end = None
                walk_end.set()
            await trio.lowlevel.checkpoint()

    async def wait_walk(self) -> None:
        """Return once the flusher's walk in progress is written, if that walk started
        from idle (a new burst); at once otherwise, without a checkpoint.

        A client's message waits here before it is handled: the work it causes (an ACK's
        commit and reply) then comes after the burst its sender is part of, instead of
        stretching it. Measured with 1,000 ACKing clients getting 5 frames a block, the
        walk took 140-160 ms with the first clients' ACKs handled between its slices,
        and 20-60 ms without. Walks that follow each other (a backlog) are not waited
        for: a reader would then handle one message per walk instead of one per
        scheduling round, and a steady stream's ACKs would fall behind it.
        """
        burst_end = self._burst_end
        if burst_end is not None:
            await burst_end.wait()

    async def wait_backlog(self) -> None:
        """Return once what was published before the call is written: the sessions
        handed to the flusher wait for the next walk, which ends after them; with none,
        the walk in progress (it may hold them) is waited for; with no walk either, at
        once, without a checkpoint. Written means handed to the kernel, or queued to a
        congested socket's drain task.

        Publishers that wait here before they answer (a replay, a channel publish) are
        answered once their message is on its way to every socket, at the pace the
        sockets are written, instead of queueing messages in every session without
        bound (which would end with healthy clients closed as too slow). Concurrent
        publishers' messages still share walks and writes. An earlier version returned
        while the walk in progress had not reached the publisher's sessions: a publisher
        sending one message after another then had each wait for the previous walk's
        end, and the clients' p99 latency was 1.2 times the ``websockets`` peer's at
        1,000 clients and 1.2-1.3 times at 5,000-10,000 (benchmark section 10).
        """
        if self._unflushed:
            if self._next_walk_end is None:
                self._next_walk_end = trio.Event()
            await self._next_walk_end.wait()
        elif self._walk_end is not None:
            await self._walk_end.wait()

    def _end_burst(self, session: Session) -> None:
        """Write what a hand-over queued to ``session``; detach it if that failed it."""
        session.end_burst()
        if session.closed:
            self.detach(session)

    def _hand_over(self, touched: list[Session]) -> None:
        """Write the sessions a publish queued frames to: at once if they are few (or no
        flusher runs), else through the flusher (:meth:`_run_flusher`)."""
        if len(touched) <= FLUSH_INLINE or self._writers is None:
            for session in touched:
                self._end_burst(session)
            return
        unflushed = self._unflushed
        for session in touched:
            unflushed[session] = None
        wanted = self._flush_wanted
        if wanted is not None:
            wanted.set()

    def detach(self, session: Session) -> None:
        """Remove ``session`` from every index (idempotent): it gets nothing more."""
        if self._by_conn.get(session.conn_id) is session:
            del self._by_conn[session.conn_id]
        topics, session.topics = session.topics, set()
        for topic in topics:
            self._leave(session, topic)
        user_id = session.user_id
        if user_id is not None:
            of_user = self._by_user.get(user_id)
            if of_user is not None and session in of_user:
                of_user.remove(session)
                if not of_user:
                    del self._by_user[user_id]

    def sessions(self, topic: str) -> list[Session]:
        """The sessions subscribed to ``topic``, in subscription order."""
        return list(self._by_topic.get(topic, ()))

    def identify(self, session: Session, user_id: str) -> None:
        """Index ``session`` under ``user_id`` (a protocol that learns the user after the
        upgrade, from its first message): :meth:`sessions_of_user` and :meth:`close_user`
        then reach it. A no-op for a session that already has a user, is closed or is
        detached."""
        if session.user_id is not None or session.closed:
            return
        if self._by_conn.get(session.conn_id) is not session:
            return
        session.user_id = user_id
        self._by_user.setdefault(user_id, []).append(session)

    def session(self, conn_id: str) -> Session | None:
        """The attached session of a connection, if any."""
        return self._by_conn.get(conn_id)

    def user_keys(self) -> list[str]:
        """The users with at least one attached session."""
        return list(self._by_user)

    def sessions_of_user(self, user_id: str) -> list[Session]:
        """The user's attached sessions, oldest first."""
        return list(self._by_user.get(user_id, ()))

    def close_user(self, user_id: str, code: int, reason: str, *, flush: bool = False) -> int:
        """Fail every session of the user with ``code`` (forced logout, one socket per
        user) and detach them at once: they get nothing more, and their front-ends
        close the sockets with ``code`` (after what was queued, with ``flush``).
        Returns how many were closed."""
        sessions = self._by_user.get(user_id, [])
        closed = list(sessions)
        for session in closed:
            session.fail(code, reason, flush=flush)
            self.detach(session)
        return len(closed)

    def finish_recovery(
        self,
        session: Session,
        topic: str,
        messages: Sequence[StreamMessage],
        *,
        through: int = 0,
    ) -> int:
        """Queue the recovered ``messages`` of ``topic`` (oldest first) in the session's
        format, then the live ones held since :meth:`subscribe`, each offset once.

        ``through``: the session already has the topic up to this offset by other means
        (the protocol read the current state and sent it itself): held live messages up
        to it are dropped. Returns how many frames were queued. A no-op (0) if the
        session left the topic meanwhile.
        """
        recovering = session._recovering
        held = None if recovering is None else recovering.pop(topic, None)
        if held is None or session.closed:
            return 0
        if not recovering:
            session._recovering = None
        if through:
            session._new_offset(topic, through)
        fmt = session.format
        pending = [
            (m.offset, Frame(text))
            for m in messages
            if m.topic == topic and (text := m.frames.get(fmt)) is not None
        ]
        queued = 0
        for offset, frame in [*pending, *held]:
            if session._new_offset(topic, offset):
                session.offer(frame)
                queued += 1
        self._end_burst(session)
        return queued

    def finish_resend(self, session: Session, entries: Iterable[OutboxEntry]) -> list[Frame]:
        """Queue the resent ``entries`` (oldest first), then the live messages held since
        :meth:`attach`, once each; the resent ones are retried like live ones until
        ACKed (on their topic, if the session is subscribed to it)."""
        frames: list[Frame] = []
        due = self._clock.monotonic() + self._retry_interval
        for entry in entries:
            frame = entry_frame(entry)
            frames.append(frame)
            topic = entry_topic(entry)
            if topic in session.topics:
                unacked = self._unacked.setdefault(topic, {})
                if frame.message_id not in unacked:
                    self._track(unacked, frame, due)
        session.finish_resend(frames)
        return frames

    def _track(self, unacked: dict[str, _InFlight], frame: Frame, due: float) -> None:
        assert frame.message_id is not None
        unacked[frame.message_id] = (frame, due, self._retry_interval)
        if len(unacked) > self._inflight_max:
            del unacked[next(iter(unacked))]

    # -- fan-out --------------------------------------------------------------------

    def publish(self, entries: Sequence[OutboxEntry]) -> None:
        """Hand committed entries to every session of their topic (never blocks).

        Each entry is rendered once, for all its sessions, and only if its topic has a
        session; each session gets one write for the whole batch. Outbox entries are
        ACK-stream messages: each stays in flight on its topic until ACKed.
        """
        due = self._clock.monotonic() + self._retry_interval
        by_topic = self._by_topic
        touched: list[Session] = []
        for entry in entries:
            topic = entry_topic(entry)
            sessions = by_topic.get(topic)
            if not sessions:
                continue
            frame = entry_frame(entry)
            self._track(self._unacked.setdefault(topic, {}), frame, due)
            for session in sessions:
                if session.offer(frame):
                    touched.append(session)
            if self._on_fanout is not None:
                self._on_fanout(entry.app_id, len(sessions))
        self._hand_over(touched)

    def publish_stream(self, messages: Sequence[StreamMessage]) -> None:
        """Hand committed stream messages (history and state topics) to every session of
        their topic, each in its format (never blocks; no retries: a client that missed
        one recovers it from the stream). Each message's frame of a format is built once
        for all the sessions of that format; each session gets one write per batch."""
        by_topic = self._by_topic
        touched: list[Session] = []
        for message in messages:
            sessions = by_topic.get(message.topic)
            if not sessions:
                continue
            texts = message.frames
            frames: dict[str, Frame | None] = {}
            for session in sessions:
                fmt = session.format
                frame = frames.get(fmt, _UNSET)
                if frame is _UNSET:
                    text = texts.get(fmt)
                    frame = frames[fmt] = None if text is None else Frame(text)
                if frame is not None and session.offer_stream(message.topic, message.offset, frame):
                    touched.append(session)
        self._hand_over(touched)

    def publish_to_connection(self, conn_id: str, frame: Frame) -> bool:
        """A connection-scoped message: to that connection only, never stored or retried."""
        session = self._by_conn.get(conn_id)
        if session is None:
            return False
        session.send(frame)
        if session.closed:
            self.detach(session)
        return True

    def publish_transient(self, conn_id: str, entry: OutboxEntry) -> bool:
        """A connection-scoped entry (never stored, never retried): rendered and sent to
        that connection only if it is still attached; False (and nothing rendered) if not."""
        if conn_id not in self._by_conn:
            return False
        return self.publish_to_connection(conn_id, entry_frame(entry))

    def acked(self, topic: str, message_ids: Iterable[str]) -> None:
        """Stop retrying these messages of ``topic`` on every session."""
        unacked = self._unacked.get(topic)
        if unacked is not None:
            for message_id in message_ids:
                unacked.pop(message_id, None)

    def close_all(self, code: int, reason: str) -> None:
        for session in list(self._by_conn.values()):
            session.fail(code, reason)

    # -- retries --------------------------------------------------------------------

    def retry_due(self) -> list[str]:
        """Push unACKed messages due by the hub's clock again; return their ids (once per
        message).

        A message goes to its topic's sessions whose resend window covers it, within
        their queue room; one no session's window covers any more leaves the bookkeeping.
        A tick retries at most RETRY_BURST messages per topic: what does not fit stays due
        for the next tick, so many unACKed messages coming due together (clients that
        never ACK) are spread over ticks instead of stalling the loop in one.
        """
        now = self._clock.monotonic()
        now_ms = self._clock.time_ms()
        retried: list[str] = []
        touched: list[Session] = []
        for topic, unacked in list(self._unacked.items()):
            sessions = self._by_topic.get(topic, {})
            widest = max((s.window_ms for s in sessions), default=-1)
            expired: list[str] = []
            due_now: list[tuple[str, Frame, float]] = []
            # Oldest first, and (nearly) in due order: stop at the first one not yet due,
            # so a tick costs what is due, not every unACKed message of every topic.
            for message_id, (frame, due, interval) in unacked.items():
                if frame.created_at_ms < now_ms - widest:
                    expired.append(message_id)
                    continue
                if due > now or len(due_now) >= RETRY_BURST:
                    break
                due_now.append((message_id, frame, interval))
            for message_id in expired:
                del unacked[message_id]
            for message_id, frame, interval in due_now:
                interval = min(interval * 2, self._retry_max)
                # Re-inserted: a retried message moves behind the others.
                del unacked[message_id]
                unacked[message_id] = (frame, now + interval, interval)
                for session in sessions:
                    # Retries never push a session over its queue limit.
                    if (
                        session.covers(frame, now_ms)
                        and len(session._queue) < session.limit
                        and session.offer(frame)
                    ):
                        touched.append(session)
                retried.append(message_id)
        self._hand_over(touched)
        return retried

    async def run_retries(
        self,
        retried: Callable[[list[str]], None],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Service: every ``min(1 s, retry interval)``, push due unACKed messages again
        and tell ``retried`` their ids."""
        task_status.started()
        tick = min(1.0, self._retry_interval)
        while True:
            await trio.sleep(tick)
            ids = self.retry_due()
            if ids:
                retried(ids)
