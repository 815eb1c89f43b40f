"""The session's two clocks (DESIGN.md "One engine, two clocks"), each an object the loop asks.

- `RealTime` (play in a window, `--realtime`): wall time; the pacer shows frames from the jitter
  buffer when due and holds the last frame when generation is late; the tick never waits for
  generation; blocks are planned just in time and the worker prepares ahead while idle.
- `FrameLocked` (headless play, render, tests): a virtual clock that advances one frame period per
  presented frame and waits for every frame, so the output is complete and deterministic.
"""
from __future__ import annotations

import time
from typing import Callable

from runtime.pacing import JitterBuffer, Pacer
from runtime.planner import PlanState, frame_locked_due, real_time_due

MAX_SLEEP_S = 0.005              # the loop wakes at least this often (input, window events)


def next_display_due(due_s: float | None, finished_s: float, period_s: float) -> float:
    """When the next displayed frame is due, after the one due at `due_s` (None: the first) finished
    drawing at `finished_s`: one period later, keeping the display's cadence; a display too slow to
    keep it draws the next frame at once (waiting out a period after a late frame would add a
    whole period to every late frame's interval)."""
    if due_s is None:
        return finished_s + period_s
    return max(due_s + period_s, finished_s)


class RealTime:
    frame_locked = False
    sends_hints = True           # the worker prepares the next block while it waits for the request

    def __init__(self, pacer: Pacer, plan_margin_s: float):
        self.pacer, self.plan_margin_s = pacer, plan_margin_s

    def now(self) -> float:
        return time.perf_counter()

    def plan_due(self, state: PlanState) -> bool:
        return real_time_due(state, self.plan_margin_s)

    def next_due_s(self) -> float | None:
        """When the pacer shows its next frame (None while it rebuffers)."""
        return self.pacer.next_due_s

    def take_frame(self, wait_for_block: Callable[[], bool], draining: bool):
        """The (frame, info) due now, or None to keep showing the last one."""
        return self.pacer.poll(time.perf_counter(), draining=draining)

    def presented(self, frames: int) -> None:
        pass

    def rest(self, to_next_tick_s: float, wake_at_s: float | None = None) -> None:
        """Sleep until the next tick, the next frame or `wake_at_s` (perf_counter time), but never long."""
        now = time.perf_counter()
        wake = [to_next_tick_s]
        if self.pacer.next_due_s is not None:
            wake.append(self.pacer.next_due_s - now)
        if wake_at_s is not None:
            wake.append(wake_at_s - now)
        time.sleep(min(max(0.0, min(wake)), MAX_SLEEP_S))


class FrameLocked:
    frame_locked = True
    sends_hints = False          # a request always waits, so the worker never idles

    def __init__(self, buffer: JitterBuffer, fps: float, low_water: int):
        """low_water: frames kept buffered or requested (a block's frames plus the jitter target)."""
        self.buffer, self.fps, self.low_water = buffer, fps, low_water
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def plan_due(self, state: PlanState) -> bool:
        return frame_locked_due(state, self.low_water)

    def next_due_s(self) -> float | None:
        return None

    def take_frame(self, wait_for_block: Callable[[], bool], draining: bool):
        """The next frame, waiting for its block (`wait_for_block` collects one; False when none can
        come); None when there is none."""
        while len(self.buffer) == 0 and wait_for_block():
            pass
        return self.buffer.pop() if len(self.buffer) else None

    def presented(self, frames: int) -> None:
        self.t = frames / self.fps

    def rest(self, to_next_tick_s: float, wake_at_s: float | None = None) -> None:
        pass
