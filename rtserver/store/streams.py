"""Durable streams: a topic's published messages, each with a per-topic offset.

A topic's stream starts with its first message: it gets a random *epoch* and offsets
1, 2, 3, ... in publish order (never reused, no gaps). The epoch names this sequence of
offsets: it only changes when the stream's record is lost (a new database, a topic
deleted), so a client holding ``(epoch, offset)`` can tell "I have everything up to
``offset``" from "my offsets belong to another life of this stream" (Centrifugo's model).

A message is stored as its rendered frames, one per wire format (JSON object
``{format: frame text}``), in the caller's transaction: the transaction that changes the
state the message announces. What is kept is the caller's choice (``keep_last`` at
append, :func:`compact` by age); the retention kinds live in ``rtserver.delivery``.

Plain functions over a connection, like every repository.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A place in a topic's stream: the last offset a client has, in an epoch."""

    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One committed message of a topic: ``frames`` maps a wire format to its text."""

    topic: str
    epoch: str
    offset: int
    frames: Mapping[str, str]
    created_at_ms: int


#: Renders a message once its position is known (a frame may carry its offset).
FrameRender = Callable[[StreamPosition], Mapping[str, str]]


def append(
    conn: sqlite3.Connection,
    topic: str,
    render: FrameRender,
    *,
    keep_last: int,
    now_ms: int,
) -> StreamMessage:
    """Append a message to ``topic`` in the caller's transaction and return it.

    ``render`` gets the message's position and returns its frames. Afterwards at most
    ``keep_last`` (≥ 1) messages of the topic remain: the older ones are deleted here.
    """
    row = conn.execute(
        "SELECT epoch, top_offset FROM stream_topics WHERE topic = ?", (topic,)
    ).fetchone()
    if row is None:
        epoch, offset = secrets.token_hex(4), 1
        conn.execute(
            "INSERT INTO stream_topics (topic, epoch, top_offset) VALUES (?, ?, 1)",
            (topic, epoch),
        )
    else:
        epoch, offset = row[0], row[1] + 1
        conn.execute("UPDATE stream_topics SET top_offset = ? WHERE topic = ?", (offset, topic))
    frames = dict(render(StreamPosition(epoch, offset)))
    conn.execute(
        "INSERT INTO stream_messages (topic, msg_offset, frames, created_at_ms)"
        " VALUES (?, ?, ?, ?)",
        (topic, offset, json.dumps(frames, ensure_ascii=False, separators=(",", ":")), now_ms),
    )
    if offset > keep_last:
        conn.execute(
            "DELETE FROM stream_messages WHERE topic = ? AND msg_offset <= ?",
            (topic, offset - keep_last),
        )
    return StreamMessage(topic, epoch, offset, frames, now_ms)


def top(conn: sqlite3.Connection, topic: str) -> StreamPosition | None:
    """The topic's last published position; None if nothing was ever published to it."""
    row = conn.execute(
        "SELECT epoch, top_offset FROM stream_topics WHERE topic = ?", (topic,)
    ).fetchone()
    return None if row is None else StreamPosition(row[0], row[1])


def first_offset(conn: sqlite3.Connection, topic: str) -> int | None:
    """The oldest offset still stored for ``topic``; None if none is."""
    row = conn.execute(
        "SELECT MIN(msg_offset) FROM stream_messages WHERE topic = ?", (topic,)
    ).fetchone()
    return None if row[0] is None else int(row[0])


def messages_after(
    conn: sqlite3.Connection, topic: str, offset: int, limit: int
) -> list[StreamMessage]:
    """Up to ``limit`` stored messages of ``topic`` after ``offset``, oldest first."""
    rows = conn.execute(
        "SELECT m.msg_offset, m.frames, m.created_at_ms, t.epoch FROM stream_messages m"
        " JOIN stream_topics t ON t.topic = m.topic"
        " WHERE m.topic = ? AND m.msg_offset > ? ORDER BY m.msg_offset LIMIT ?",
        (topic, offset, limit),
    ).fetchall()
    return [StreamMessage(topic, epoch, off, json.loads(fr), at) for off, fr, at, epoch in rows]


def compact(
    conn: sqlite3.Connection,
    prefix: str,
    older_than_ms: int,
    limit: int = 10_000,
) -> int:
    """Delete up to ``limit`` messages of the topics starting with ``prefix`` created
    before ``older_than_ms``; return how many. Topics keep their epoch and offsets."""
    cursor = conn.execute(
        "DELETE FROM stream_messages WHERE (topic, msg_offset) IN (SELECT topic, msg_offset"
        " FROM stream_messages"
        " WHERE created_at_ms < ? AND topic >= ? AND topic < ? LIMIT ?)",
        (older_than_ms, prefix, _after_prefix(prefix), limit),
    )
    return cursor.rowcount


def _after_prefix(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
