"""The chain-agnostic watcher: follow the head, store what is watched, survive reorgs and crashes.

One :class:`ChainWatcher` per configured chain, talking to its node through a
:class:`~rtserver.chains._adapter.ChainAdapter`. Guarantees:

* **No gaps, no duplicates.** Blocks are processed in order. A batch of blocks is
  committed in *one* write job together with the checkpoint (last block number and
  hash), the recent block hashes and the delivery rows (``match_sink.stage``), so a crash
  at any instant either keeps the whole batch or none of it; after a restart the watcher
  resumes after its checkpoint. Re-processing a block stores nothing new and emits
  nothing (``store_records`` is idempotent and only new or changed records are emitted).
* **Errors never skip a block.** Any failure to fetch (after the RPC client's own
  retries) makes the watcher wait (capped exponential backoff with jitter) and fetch the
  *same* blocks again. The only blocks ever skipped are those beyond
  ``max_catchup_blocks`` behind the head after a long outage: that is logged at ERROR
  level and counted in ``rtserver_chain_skipped_blocks_total``.
* **Reorgs.** The hashes of the last ``reorg_depth`` processed blocks are kept in
  ``chain_blocks``. When a block's parent hash does not match, the watcher walks back to
  the highest block whose hash the node still has (the fork point), then in one write
  job: stores the new canonical blocks' records, marks records of orphaned blocks that
  are in no new block ``removed``, and emits every record that appeared or changed as a
  reorg resend (``is_reorg_resend=True``; removed ones carry ``removed: true``).
* **Matching** uses the in-memory address index on the event loop, before the write job
  (the index belongs to the loop): O(addresses of a transaction), whatever the number
  of watched addresses. Only records someone watches are stored.
"""

from __future__ import annotations

import logging
import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace

import trio

from rtserver.addresses import normalize_address
from rtserver.chains._adapter import Block, ChainAdapter
from rtserver.config import ChainConfig
from rtserver.core import Core
from rtserver.events import TransactionMatch
from rtserver.exceptions import ChainError, StoreError
from rtserver.logs import fields
from rtserver.matching import MatchResult
from rtserver.records import TransactionRecord
from rtserver.store import chain_state
from rtserver.store.chain_state import BlockRef
from rtserver.store.transactions import store_records

log = logging.getLogger("rtserver.chains")

#: Pause after the first failed round, seconds; doubles per failure up to the cap.
RETRY_BASE = 0.5
RETRY_CAP = 30.0
#: Seconds between progress lines of a long catch-up.
CATCH_UP_LOG_INTERVAL = 5.0


@dataclass(frozen=True)
class _Progress:
    """What one committed job did (for logs and tests)."""

    first: int
    last: int
    created: int
    changed: int
    emitted: int


class ChainWatcher:
    """Follows one chain; :meth:`run` is the background service."""

    def __init__(self, core: Core, config: ChainConfig, adapter: ChainAdapter) -> None:
        self.core = core
        self.config = config
        self.adapter = adapter
        self.chain_type = config.chain_type
        self.chain_id = config.chain_id
        self.label = f"{config.chain_type}:{config.chain_id}"
        #: Last block number reported by the node.
        self.head: int | None = None
        #: Last processed (committed) block number; None before the first start position.
        self.processed: int | None = None
        #: Hashes of the last ``reorg_depth`` processed blocks, by number.
        self._hashes: dict[int, str] = {}
        self._hint: int | None = None
        #: Set when the node announced a head at or below the checkpoint (a replaced tip).
        self._tip_suspect = False
        self._wake = trio.Event()
        self._started = False
        self._failing_since: float | None = None
        self._last_error = ""
        m = core.metrics
        self._m_head = m.chain_head.labels(self.label)
        self._m_processed = m.chain_processed.labels(self.label)
        self._m_lag = m.chain_lag.labels(self.label)
        self._m_skipped = m.chain_skipped_blocks.labels(self.label)
        self._m_reorgs = m.chain_reorgs.labels(self.label)
        self._m_created = m.chain_records.labels(self.label, "created")
        self._m_changed = m.chain_records.labels(self.label, "changed")

    # -- service -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check the chain, load the checkpoint, report started, then follow until cancelled.

        Raises :class:`ChainError` (before ``started``) when the node is unreachable or
        serves another chain: the server does not start with a chain it cannot follow.
        """
        try:
            await self.adapter.check()
            await self._load_state()
            self._started = True
            if self.processed is None:
                log.info(
                    "chain %s: no checkpoint; starting at block %s",
                    self.label,
                    self.config.start_block,
                )
            else:
                log.info("chain %s: resuming after block %d", self.label, self.processed)
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.adapter.listen_heads, self._on_head)
                await self._follow()
        finally:
            with trio.CancelScope(shield=True):
                await self.adapter.aclose()

    async def readiness(self) -> str | None:
        """None when following; a reason when not started, lagging or failing for long."""
        if not self._started or self.head is None or self.processed is None:
            return "not following the chain yet"
        failing = self.adapter.failing_for()
        if failing is not None and failing > self.config.unready_after:
            return f"RPC failing for {failing:.0f} s"
        if self._failing_since is not None:
            failing = self.core.clock.monotonic() - self._failing_since
            if failing > self.config.unready_after:
                return f"RPC failing for {failing:.0f} s: {self._last_error}"
        lag = self.lag()
        if lag > self.config.max_lag_blocks:
            return f"{lag} blocks behind the head (max_lag_blocks = {self.config.max_lag_blocks})"
        return None

    def lag(self) -> int:
        """Blocks that could be processed (head minus confirmations) but are not yet."""
        if self.head is None or self.processed is None:
            return 0
        return max(0, self.head - self.config.confirmations - self.processed)

    # -- following ---------------------------------------------------------------------

    def _on_head(self, number: int | None) -> None:
        if number is not None:
            if self.processed is not None and number <= self.processed:
                self._tip_suspect = True
            if self._hint is None or number > self._hint:
                self._hint = number
        self._wake.set()

    async def _check_tip(self, target: int) -> None:
        """Walk back if the node's block at our checkpoint height is not the one we processed."""
        assert self.processed is not None
        ours = self._hashes.get(self.processed)
        header = await self.adapter.block_header(self.processed)
        if ours is not None and (header is None or header.hash != ours):
            await self._reorg(max(target, self.processed))

    async def _load_state(self) -> None:
        checkpoint, blocks = await self.core.store.read(_read_state, self.chain_type, self.chain_id)
        if checkpoint is not None:
            self.processed = checkpoint.block_number
            self._hashes = {b.number: b.hash for b in blocks if b.number <= checkpoint.block_number}
            self._hashes[checkpoint.block_number] = checkpoint.block_hash
            self._m_processed.set(self.processed)

    async def _follow(self) -> None:
        failures = 0
        while True:
            self._wake = trio.Event()
            try:
                head = await self._poll_head()
                target = head - self.config.confirmations
                if self.processed is None:
                    if self.config.start_block == "latest":
                        start = max(0, target)  # a young chain may be shorter than confirmations
                    else:
                        start = int(self.config.start_block)
                    self.processed = start - 1
                if self._tip_suspect and self.processed >= target:
                    # A head announced at a height already processed: the tip was replaced.
                    await self._check_tip(target)
                self._tip_suspect = False
                await self._catch_up(target)
            except (ChainError, StoreError, sqlite3.Error) as exc:
                failures += 1
                self._last_error = str(exc)
                if self._failing_since is None:
                    self._failing_since = self.core.clock.monotonic()
                delay = min(RETRY_CAP, RETRY_BASE * 2 ** min(failures - 1, 10))
                delay *= random.uniform(0.5, 1.0)
                log.warning(
                    "chain %s: %s; retrying from block %s in %.1f s",
                    self.label,
                    exc,
                    None if self.processed is None else self.processed + 1,
                    delay,
                )
                await trio.sleep(delay)
                continue
            if failures:
                assert self._failing_since is not None
                log.warning(
                    "chain %s: following again after %d failed rounds (%.0f s)",
                    self.label,
                    failures,
                    self.core.clock.monotonic() - self._failing_since,
                )
            failures = 0
            self._failing_since = None
            with trio.move_on_after(self.config.poll_interval):
                await self._wake.wait()

    async def _catch_up(self, target: int) -> None:
        """Process blocks up to ``target``; a long catch-up logs its progress (blocks
        done, left, rate) every ``CATCH_UP_LOG_INTERVAL`` seconds and when it ends."""
        assert self.processed is not None
        clock = self.core.clock
        started = last_report = clock.monotonic()
        first = self.processed
        reported = False
        while self.processed < target:
            await self._step(target)
            now = clock.monotonic()
            if now - last_report >= CATCH_UP_LOG_INTERVAL:
                last_report, reported = now, True
                self._log_catch_up("catching up", first, target, now - started)
        if reported:
            self._log_catch_up("caught up", first, target, clock.monotonic() - started)

    def _log_catch_up(self, what: str, first: int, target: int, elapsed: float) -> None:
        assert self.processed is not None
        done, left = self.processed - first, target - self.processed
        rate = done / elapsed if elapsed > 0 else 0.0
        log.info(
            "chain %s: %s: %d blocks done, %d left, %.1f blocks/s",
            self.label,
            what,
            done,
            left,
            rate,
            extra=fields(
                chain=self.label,
                blocks_done=done,
                blocks_left=left,
                blocks_per_s=round(rate, 1),
                processed=self.processed,
            ),
        )

    async def _poll_head(self) -> int:
        hint, self._hint = self._hint, None
        if hint is not None and (self.head is None or hint >= self.head):
            head = hint  # announced by the node's push channel: no need to ask
        else:
            head = await self.adapter.head_number()
        self.head = head
        self._m_head.set(head)
        self._m_lag.set(self.lag())
        return head

    async def _step(self, target: int) -> None:
        """Process the next batch of blocks up to ``target`` (or resolve a reorg)."""
        assert self.processed is not None
        behind = target - self.processed
        if behind > self.config.max_catchup_blocks:
            resume = target - self.config.max_catchup_blocks
            skipped = resume - self.processed
            log.error(
                "chain %s: %d blocks behind, more than max_catchup_blocks = %d: SKIPPING "
                "blocks %d..%d (their transactions are not recorded)",
                self.label,
                behind,
                self.config.max_catchup_blocks,
                self.processed + 1,
                resume,
            )
            self._m_skipped.inc(skipped)
            self.processed = resume
            # No parent check across the gap: the hashes below it say nothing about it.
            self._hashes.clear()
        first = self.processed + 1
        last = min(target, first + self.config.batch_blocks - 1)
        blocks = await self.adapter.fetch_blocks(range(first, last + 1), self._keep)
        linked: list[Block] = []
        expected = self._hashes.get(first - 1)
        for block in blocks:
            if expected is not None and block.parent_hash != expected:
                break
            linked.append(block)
            expected = block.hash
        if not linked:
            await self._reorg(target)
            return
        # A mismatch inside the batch: commit the linked part; the next step sees the reorg.
        await self._commit(linked, [], fork=None)

    async def _reorg(self, target: int) -> None:
        assert self.processed is not None
        old_processed = self.processed
        fork: int | None = None
        for number in sorted(self._hashes, reverse=True):
            header = await self.adapter.block_header(number)
            if header is not None and header.hash == self._hashes[number]:
                fork = number
                break
        if fork is None:
            fork = min(self._hashes, default=old_processed + 1) - 1
            log.error(
                "chain %s: reorg deeper than the %d kept block hashes; treating blocks above "
                "%d as orphaned",
                self.label,
                self.config.reorg_depth,
                fork,
            )
        if fork == old_processed:
            # Our tip is still canonical: the node served a block that was not built on it
            # (a node behind a load balancer, or a reorg in progress). Ask again later.
            raise ChainError(f"block {fork + 1} does not extend the canonical block {fork}")
        end = min(target, max(old_processed, fork + self.config.batch_blocks))
        numbers = list(range(fork + 1, end + 1))
        blocks: list[Block] = []
        for start in range(0, len(numbers), self.config.batch_blocks):
            chunk = numbers[start : start + self.config.batch_blocks]
            blocks.extend(await self.adapter.fetch_blocks(chunk, self._keep))
        expected = self._hashes.get(fork)
        for block in blocks:
            if expected is not None and block.parent_hash != expected:
                raise ChainError(f"chain changed again during the reorg at block {block.number}")
            expected = block.hash
        candidates = await self.core.store.read(
            chain_state.live_records_between, self.chain_type, self.chain_id, fork, old_processed
        )
        canonical = frozenset().union(*(b.tx_hashes for b in blocks))
        orphans = [replace(r, removed=True) for r in candidates if r.tx_hash not in canonical]
        log.warning(
            "chain %s: reorg: fork point %d, %d block(s) orphaned, %d new block(s), "
            "%d stored record(s) removed",
            self.label,
            fork,
            old_processed - fork,
            len(blocks),
            len(orphans),
        )
        await self._commit(blocks, orphans, fork=fork)
        self._m_reorgs.inc()

    def _keep(self, record: TransactionRecord) -> bool:
        watched = self.core.watched
        return any(watched.watches(self.chain_type, a) for a in record.addresses())

    async def _commit(
        self, blocks: Sequence[Block], orphans: Sequence[TransactionRecord], *, fork: int | None
    ) -> None:
        """Store one batch (and a reorg's orphans) with the checkpoint, then hand matches off."""
        chain_type, chain_id = self.chain_type, self.chain_id
        matched: list[tuple[TransactionRecord, MatchResult]] = []
        for record in [r for b in blocks for r in b.records] + list(orphans):
            addresses = {normalize_address(chain_type, a) for a in record.addresses()}
            result = self.core.watched.match(chain_type, addresses)
            # An orphan is stored even if nobody watches it now: its row must say removed.
            if result or record.removed:
                matched.append((record, result))
        refs = [BlockRef(b.number, b.hash, b.parent_hash) for b in blocks]
        top = refs[-1]
        keep = self.config.reorg_depth
        sink = self.core.match_sink
        clock = self.core.clock

        def job(conn: sqlite3.Connection) -> tuple[object, _Progress]:
            now = clock.time()
            outcomes = store_records(conn, [record for record, _ in matched], now=now)
            if fork is not None:
                chain_state.delete_blocks_above(conn, chain_type, chain_id, fork)
            chain_state.save_blocks(conn, chain_type, chain_id, refs, keep=keep)
            chain_state.save_checkpoint(conn, chain_type, chain_id, top.number, top.hash, now=now)
            matches: list[TransactionMatch] = []
            created = changed = 0
            for outcome, (_, result) in zip(outcomes, matched, strict=True):
                assert outcome.record.id is not None
                # Stored by someone else before (the origin fetch): never delivered yet.
                first = chain_state.mark_handed_off(conn, outcome.record.id)
                if not (outcome.is_new_or_changed or first):
                    continue  # re-processing: already stored and handed off as it is
                created += outcome.created
                changed += outcome.changed
                # A change of a record already handed off only comes from a reorg (or from
                # catching up on one after a restart): consumers must re-check their copy.
                resend = fork is not None or (outcome.changed and not first)
                matches.extend(result.matches(outcome.record, resend))
            staged = sink.stage(conn, matches)
            return staged, _Progress(refs[0].number, top.number, created, changed, len(matches))

        _, progress = await self.core.store.write(
            job, after_commit=lambda result: sink.publish(result[0])
        )
        if fork is not None:
            for number in [n for n in self._hashes if n > fork]:
                del self._hashes[number]
        for ref in refs:
            self._hashes[ref.number] = ref.hash
        for number in [n for n in self._hashes if n <= top.number - keep]:
            del self._hashes[number]
        self.processed = top.number
        self._m_processed.set(top.number)
        self._m_lag.set(self.lag())
        self._m_created.inc(progress.created)
        self._m_changed.inc(progress.changed)
        if progress.created or progress.changed:
            log.info(
                "chain %s: blocks %d..%d: %d record(s) stored, %d changed, %d match(es) emitted",
                self.label,
                progress.first,
                progress.last,
                progress.created,
                progress.changed,
                progress.emitted,
                extra=fields(
                    chain=self.label,
                    first_block=progress.first,
                    last_block=progress.last,
                    stored=progress.created,
                    changed=progress.changed,
                    matches=progress.emitted,
                ),
            )
        else:
            log.debug(
                "chain %s: blocks %d..%d processed", self.label, progress.first, progress.last
            )


def _read_state(
    conn: sqlite3.Connection, chain_type: str, chain_id: int
) -> tuple[chain_state.Checkpoint | None, list[BlockRef]]:
    return (
        chain_state.get_checkpoint(conn, chain_type, chain_id),
        chain_state.recent_blocks(conn, chain_type, chain_id),
    )
