"""When to request the next block: a pure decision, as `runtime/pacing.py` decides what to show.

A frame-locked session keeps one block ahead of the buffer. A real-time one plans just in time,
one block at a time: when the buffered frames last only `plan_margin_s` longer than recent blocks
took to make, so each block carries the freshest camera input (control-to-photon latency). A block
the worker prepares ahead takes less time after its request, so it is planned later, from the make
times of prepared blocks. A time command just before the plan leaves the worker preparing when the
request comes; the request waits for it, and the plan margin absorbs most of that.
"""
from __future__ import annotations

from dataclasses import dataclass

KEPT_MAKE_TIMES = 8              # recent blocks whose make time the real-time plan looks at


@dataclass(frozen=True)
class PlanState:
    """What the decision looks at, made fresh by the session at every loop step."""
    worker_busy: bool            # a request waits in the mailbox, or the worker's warm-up is not done
    buffered: int                # frames in the jitter buffer
    in_flight: int               # frames requested and not yet arrived
    lead_s: float                # until the buffered frames run out, counted from the next frame's slot
    make_s: float                # slowest recent request-to-arrival time of a block like the next (inf: none yet)


def frame_locked_due(state: PlanState, low_water: int) -> bool:
    """Keep the buffered and requested frames at `low_water` or more."""
    return not state.worker_busy and state.buffered + state.in_flight < low_water


def real_time_due(state: PlanState, margin_s: float) -> bool:
    """Just in time: nothing in flight, and the buffer runs out within a block's make time plus the margin."""
    if state.worker_busy or state.in_flight > 0:
        return False
    return state.lead_s <= state.make_s + margin_s


class MakeTimes:
    """Request-to-arrival seconds of recent blocks, kept apart for blocks prepared ahead and not."""

    def __init__(self):
        self._seconds: dict[bool, list[float]] = {False: [], True: []}

    def add(self, prepared: bool, seconds: float) -> None:
        self._seconds[prepared] = (self._seconds[prepared] + [seconds])[-KEPT_MAKE_TIMES:]

    def slowest_any(self) -> float | None:
        """The slowest recent block of either kind; None before any."""
        history = self._seconds[False] + self._seconds[True]
        return max(history) if history else None

    def slowest(self, prepared: bool) -> float:
        """The slowest recent block of its kind (prepared blocks fall back on unprepared ones); inf before any."""
        history = self._seconds[True] if prepared and self._seconds[True] else self._seconds[False]
        return max(history) if history else float("inf")
