"""Frame pacing: which buffered frame is due now (after Daydream Scope's src/scope/core/pacing.py).

`decide` is pure: the pacing state, how many frames are buffered, the monotonic now and the frame
period in; a decision out (present the oldest buffered frame, or hold the last one). Frames are
paced against an anchor: frame k is due at anchor_s + (k - anchor_seq) * period. Playback starts
once `target_buffer_frames` are buffered (a small jitter buffer: blocks of 12 frames arrive at
once). When the buffer runs dry it waits for the target again, and whenever a frame is shown
more than `max_late_frames` periods late (a stall of generation or of the presenter itself) the
schedule is re-anchored to now: no fast-forward burst to catch up on lost time.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace

from runtime.config import PacingConfig


@dataclass(frozen=True)
class PacingState:
    anchor_s: float = 0.0       # monotonic time at which frame `anchor_seq` was shown
    anchor_seq: int = 0
    presented: int = 0          # frames shown so far (the next frame's sequence number)
    rebuffering: bool = True    # waiting for target_buffer_frames (at start and after an underrun)


@dataclass(frozen=True)
class PacingDecision:
    present: bool               # pop and show the oldest buffered frame; else keep showing the last one
    drop: int                   # first discard this many oldest frames (buffer above max_buffer_frames)
    state: PacingState
    event: str                  # "" | "start" | "resume" | "reanchor" | "underrun"
    next_due_s: float | None    # when the next frame is due (None while rebuffering)


def decide(state: PacingState, *, buffered: int, now_s: float, period_s: float, cfg: PacingConfig,
           draining: bool = False) -> PacingDecision:
    """Decide what to show at `now_s`. `draining`: no more frames will come, so play out what is
    buffered without waiting for the target."""
    drop = max(0, buffered - cfg.max_buffer_frames)
    buffered -= drop
    if state.rebuffering:
        if buffered < (1 if draining else cfg.target_buffer_frames):
            return PacingDecision(False, drop, state, "", None)
        new = PacingState(anchor_s=now_s, anchor_seq=state.presented, presented=state.presented + 1, rebuffering=False)
        return PacingDecision(True, drop, new, "start" if state.presented == 0 else "resume", now_s + period_s)
    due_s = state.anchor_s + (state.presented - state.anchor_seq) * period_s
    if now_s < due_s - cfg.deadband_s:
        return PacingDecision(False, drop, state, "", due_s)
    if buffered == 0:
        return PacingDecision(False, drop, replace(state, rebuffering=True), "underrun", None)
    event = ""
    if now_s - due_s > cfg.max_late_frames * period_s:           # late: re-anchor, never burst
        state, event, due_s = replace(state, anchor_s=now_s, anchor_seq=state.presented), "reanchor", now_s
    new = replace(state, presented=state.presented + 1)
    return PacingDecision(True, drop, new, event, due_s + period_s)


class JitterBuffer:
    """A small FIFO of (frame, metadata) filled by the generation side and read by the presenter."""

    def __init__(self):
        self._items: deque = deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def push(self, frame, meta=None) -> None:
        with self._lock:
            self._items.append((frame, meta))

    def extend(self, items) -> None:
        """Append many (frame, meta) pairs at once (a whole decoded block)."""
        with self._lock:
            self._items.extend(items)

    def pop(self):
        """The oldest (frame, meta); IndexError when empty."""
        with self._lock:
            return self._items.popleft()

    def drop_oldest(self, n: int) -> int:
        with self._lock:
            n = min(n, len(self._items))
            for _ in range(n):
                self._items.popleft()
            return n

    def clear(self) -> int:
        """Empty the buffer (after a discontinuity the buffered frames are stale); returns how many."""
        with self._lock:
            n = len(self._items)
            self._items.clear()
            return n


class Pacer:
    """`decide` plus its state and counters: call `poll(now_s)` at every display refresh."""

    def __init__(self, buffer: JitterBuffer, period_s: float, cfg: PacingConfig = PacingConfig()):
        self.buffer, self.period_s, self.cfg = buffer, period_s, cfg
        self.state = PacingState()
        self.counts = {"presented": 0, "held": 0, "dropped": 0, "underruns": 0, "reanchors": 0, "resumes": 0}
        self.next_due_s: float | None = None

    def poll(self, now_s: float, draining: bool = False):
        """The (frame, meta) to show now, or None to keep showing the last frame."""
        d = decide(self.state, buffered=len(self.buffer), now_s=now_s, period_s=self.period_s,
                   cfg=self.cfg, draining=draining)
        self.state, self.next_due_s = d.state, d.next_due_s
        self.counts["dropped"] += self.buffer.drop_oldest(d.drop) if d.drop else 0
        for event, key in (("underrun", "underruns"), ("reanchor", "reanchors"), ("resume", "resumes")):
            self.counts[key] += d.event == event
        if not d.present:
            self.counts["held"] += 1
            return None
        self.counts["presented"] += 1
        return self.buffer.pop()
