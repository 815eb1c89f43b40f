"""Fixed-rate simulation ticks from wall time (the accumulator of Fiedler's "Fix Your Timestep").

The clock is injected, so tests drive it with a fake; nothing here sleeps. After a stall the
backlog is clamped to `max_catchup` ticks (no spiral of death) and the dropped time is counted.
"""
from __future__ import annotations

import time
from typing import Callable


class FixedTicker:
    """Turns wall time into whole fixed ticks. The clock is injected, so tests drive it."""

    def __init__(self, tick_hz: float, max_catchup: int, now: Callable[[], float] = time.perf_counter):
        if tick_hz <= 0 or max_catchup < 1:
            raise ValueError(f"FixedTicker needs tick_hz > 0 and max_catchup >= 1, got {tick_hz}, {max_catchup}")
        self.dt, self.max_catchup = 1.0 / tick_hz, max_catchup
        self.tick = 0                    # ticks simulated so far (the tick number of the next one)
        self.dropped_ticks = 0           # ticks skipped because of stalls
        self.stalls = 0                  # advances that had to drop ticks
        self.longest_gap_s = 0.0         # longest wall time between two advances
        self._now, self._last, self._acc = now, now(), 0.0

    def advance(self) -> tuple[int, float]:
        """Return (ticks to simulate now, alpha in [0, 1) for presentation)."""
        t = self._now()
        gap = t - self._last
        self.longest_gap_s = max(self.longest_gap_s, gap)
        self._acc, self._last = self._acc + gap, t
        due = int((self._acc + 1e-9) // self.dt)      # 1 ns slack: t = k/60 is due at k ticks despite rounding
        self._acc -= due * self.dt
        run = min(due, self.max_catchup)
        if due > run:
            self.dropped_ticks += due - run      # a stall shows in stats, not as a jump
            self.stalls += 1
        self.tick += run
        return run, max(0.0, self._acc) / self.dt

    def time_to_next_tick(self) -> float:
        """Seconds until the next tick is due (0 when one is due now); for the loop's sleep."""
        return max(0.0, self.dt - self._acc - (self._now() - self._last))

    def restart(self) -> None:
        """Forget the time since the last advance (after loading or a deliberate pause)."""
        self._last, self._acc = self._now(), 0.0

    def stats(self) -> dict:
        return {"tick_hz": 1.0 / self.dt, "ticks": self.tick, "dropped_ticks": self.dropped_ticks,
                "stalls": self.stalls, "longest_gap_s": self.longest_gap_s}
