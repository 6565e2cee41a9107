"""Where rtserver reads the time: one :class:`Clock` per server, on the core.

Every timestamp the server stores or sends and every deadline or interval it measures
comes from ``core.clock`` (or a clock injected into the object that needs it); no other
module reads a clock itself, which ``tests/test_clock.py`` checks. So a test that runs
the server under a Trio ``MockClock`` (pytest-trio's ``autojump_clock``) and injects
:meth:`Clock.following_trio` moves retries, resend windows and expiries without sleeping.
``trio.sleep``, ``trio.move_on_after`` and ``trio.current_time`` inside the event loop
need no clock object: they already follow the run's clock, as :meth:`Clock.monotonic` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio


class Clock:
    """Wall time and monotonic time, from one place.

    Guarantees:

    * :meth:`time` and :meth:`time_ms` are Unix time (seconds as a float, and whole
      milliseconds); :meth:`monotonic` is seconds on the Trio run's clock (the value
      ``trio.current_time()`` has in the run that built the clock), so a deadline computed
      from it agrees with ``trio.sleep`` and ``trio.move_on_after``, and never goes back.
    * Every method may be called from any thread, the store's writer and reader threads
      included: they call plain methods of clock objects captured at construction, never
      Trio's run-local API (which only works on the event loop's thread).
    * Under :meth:`following_trio`, wall time moves exactly as far as the run's clock, so
      a ``MockClock`` jump moves stored and sent timestamps too, not only deadlines.
    """

    __slots__ = ("_monotonic", "_wall")

    def __init__(self, wall: Callable[[], float], monotonic: Callable[[], float]) -> None:
        """A clock from two sources: ``wall()`` in Unix seconds, ``monotonic()`` in seconds."""
        self._wall = wall
        self._monotonic = monotonic

    @classmethod
    def system(cls) -> Clock:
        """Production: wall time from the system (``time.time``), monotonic time from the
        running Trio run's clock.

        Built outside a Trio run (the CLI, which measures no interval), monotonic time is
        the system's monotonic clock instead.
        """
        try:
            run_clock = trio.lowlevel.current_clock()
        except RuntimeError:
            return cls(time.time, time.monotonic)
        return cls(time.time, run_clock.current_time)

    @classmethod
    def following_trio(cls) -> Clock:
        """Tests: wall time is the wall time at creation plus how far the run's clock has
        moved since, monotonic time is the run's clock. Must be built inside the run.

        Under ``MockClock`` (``autojump_clock``, ``mock_clock``) a jump of the run's clock
        moves both, so a test passes an hour of retries, windows and expiries at once.
        """
        run_clock = trio.lowlevel.current_clock()
        now = run_clock.current_time
        wall_start, run_start = time.time(), now()
        return cls(lambda: wall_start + (now() - run_start), now)

    def time(self) -> float:
        """Unix time in seconds."""
        return self._wall()

    def time_ms(self) -> int:
        """Unix time in whole milliseconds (how the outbox and webhooks store time)."""
        return int(self._wall() * 1000)

    def monotonic(self) -> float:
        """Seconds on the Trio run's clock: for deadlines and intervals, never for dates."""
        return self._monotonic()
