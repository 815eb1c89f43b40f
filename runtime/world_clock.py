"""WorldClock: which source frame every presented frame shows (DESIGN.md "WorldClock").

Stepped once per presented frame, never by a wall clock, so a session replays exactly. Pausing
freezes time: the last presented source index repeats, which is exactly the reference's freeze
(pipeline-spec 6.3: [0..f] + [f] x F + [f+1..] is play to f, pause F frames, play). At the clip's
ends it loops, ping-pongs (0, 1, .., N-1, N-2, .., 0, 1: the reference's bounce, spec 6.4) or stops.
Scrubs, jumps and loop wraps are reported as discontinuities so the planner restarts the model
context instead of feeding it a mismatched history.

Positions are exact fractions of a source frame: at 1x with match_source_fps a presented frame
advances source_fps / output_fps source frames, and no rounding drift builds up.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction

from controllers.commands import TimeCommand
from runtime.config import ClockConfig


@dataclass(frozen=True)
class ClockFrame:
    index: int              # source frame shown at this presented frame, in [0, N)
    discontinuity: bool     # source time jumped here (scrub, jump, loop wrap): restart model context
    reason: str             # "" | "scrub" | "jump" | "step" | "loop"
    paused: bool
    speed: float            # playback speed (x source rate)
    direction: int          # +1 forward, -1 reverse


@dataclass(frozen=True)
class _State:
    pos: Fraction           # source position of the last presented frame (of the next one while `hold`)
    direction: int
    speed: Fraction
    paused: bool
    hold: bool              # the next frame shows `pos` without moving (start, after a seek)
    pending: str            # discontinuity reason for the next frame
    presented: int | None   # index of the last presented frame


class WorldClock:
    """Source time over `n_frames` frames at `source_fps`, stepped per presented frame at `output_fps`."""

    def __init__(self, n_frames: int, source_fps: float, output_fps: float,
                 cfg: ClockConfig = ClockConfig(), start_index: int = 0):
        if n_frames < 1 or source_fps <= 0 or output_fps <= 0:
            raise ValueError(f"WorldClock needs n_frames >= 1 and positive fps, got {n_frames}, "
                             f"{source_fps}, {output_fps}")
        self.n, self.source_fps, self.cfg = n_frames, source_fps, cfg
        self.rate = Fraction(source_fps) / Fraction(output_fps) if cfg.match_source_fps else Fraction(1)
        self._s = _State(pos=Fraction(self._bound(start_index)), direction=1, speed=Fraction(cfg.start_speed),
                         paused=cfg.start_paused, hold=True, pending="", presented=None)

    # ---- read-only state -------------------------------------------------------------------
    @property
    def index(self) -> int:
        """Source index of the frame that is (or would next be) shown."""
        return math.floor(self._s.pos)

    @property
    def paused(self) -> bool:
        return self._s.paused

    @property
    def speed(self) -> float:
        return float(self._s.speed)

    @property
    def direction(self) -> int:
        return self._s.direction

    # ---- stepping ------------------------------------------------------------------------
    def advance(self) -> ClockFrame:
        """The source frame of the next presented frame (moves time unless paused)."""
        self._s, frame = self._advance(self._s)
        return frame

    def peek(self, n: int) -> list[int]:
        """Source indices of the next n presented frames under the current state (held
        playback: a pause repeats); nothing changes. For filling a block request."""
        return [frame.index for frame in self.peek_frames(n)]

    def peek_frames(self, n: int) -> list[ClockFrame]:
        """The next n ClockFrames under the current state; nothing changes."""
        state, out = self._s, []
        for _ in range(n):
            state, frame = self._advance(state)
            out.append(frame)
        return out

    def _advance(self, s: _State) -> tuple[_State, ClockFrame]:
        if not s.hold and not s.paused:
            s = self._move(s)
        index = math.floor(s.pos)
        jumped = bool(s.pending) and s.presented is not None and abs(index - s.presented) > self.cfg.discontinuity_frames
        frame = ClockFrame(index, jumped, s.pending if jumped else "", s.paused, float(s.speed), s.direction)
        return dataclasses.replace(s, hold=False, pending="", presented=index), frame

    def _move(self, s: _State) -> _State:
        pos, direction, paused, wrapped = s.pos + s.speed * self.rate * s.direction, s.direction, s.paused, False
        last = self.n - 1
        if self.cfg.ends == "loop":
            if not 0 <= pos < self.n:
                pos, wrapped = pos % self.n, True
        elif self.cfg.ends == "pingpong":
            while last > 0 and not 0 <= pos <= last:     # reflect; the end frame is not repeated
                pos, direction = (2 * last - pos if pos > last else -pos), -direction
            pos = pos if last > 0 else Fraction(0)
        elif not 0 <= pos <= last:                       # stop: hold the end frame, paused
            pos, paused = Fraction(min(max(pos, 0), last)), True
        return dataclasses.replace(s, pos=pos, direction=direction, paused=paused,
                                   pending="loop" if wrapped else s.pending)

    # ---- controls ------------------------------------------------------------------------
    def apply(self, cmd: TimeCommand) -> None:
        """Apply one tick's TimeCommand; it takes effect at the next presented frame."""
        if cmd.toggle_pause:
            self.set_paused(not self.paused)
        if cmd.speed_steps:
            self.change_speed(cmd.speed_steps)
        if cmd.reverse:
            self.reverse()
        if cmd.step:
            self.step(cmd.step)
        if cmd.scrub_s:
            self.scrub(cmd.scrub_s)
        if cmd.jump_fraction is not None:
            self.jump(fraction=cmd.jump_fraction)

    def set_paused(self, paused: bool) -> None:
        self._s = dataclasses.replace(self._s, paused=paused)

    def set_speed(self, speed: float) -> None:
        speed = min(max(speed, self.cfg.min_speed), self.cfg.max_speed)
        self._s = dataclasses.replace(self._s, speed=Fraction(speed))

    def change_speed(self, steps: int) -> None:
        """Move `steps` entries up (+) or down (-) the configured speed list from the current speed."""
        speed = float(self._s.speed)
        for _ in range(abs(steps)):
            options = [v for v in self.cfg.speed_steps if (v > speed if steps > 0 else v < speed)]
            if options:
                speed = options[0] if steps > 0 else options[-1]
        self.set_speed(speed)

    def reverse(self) -> None:
        self._s = dataclasses.replace(self._s, direction=-self._s.direction)

    def step(self, frames: int) -> None:
        """Pause and show the source frame `frames` away from the current one."""
        self._seek(Fraction(math.floor(self._s.pos) + frames), "step")
        self.set_paused(True)

    def scrub(self, delta_s: float) -> None:
        """Move by `delta_s` seconds of source time (+ later); keeps playing or paused."""
        self._seek(self._s.pos + Fraction(delta_s) * Fraction(self.source_fps), "scrub")

    def jump(self, fraction: float | None = None, index: int | None = None) -> None:
        """Jump to a point of the clip: `fraction` 0 is the first frame, 1 the last; or an `index`."""
        if (fraction is None) == (index is None):
            raise ValueError("WorldClock.jump: give exactly one of fraction or index")
        target = round(fraction * (self.n - 1)) if fraction is not None else index
        self._seek(Fraction(target), "jump")

    def _seek(self, pos: Fraction, reason: str) -> None:
        if self.cfg.ends == "loop":
            pos = pos % self.n
        else:
            pos = Fraction(min(max(pos, 0), self.n - 1))
        pending = self._s.pending or reason
        self._s = dataclasses.replace(self._s, pos=pos, hold=True, pending=pending)

    def _bound(self, index: int) -> int:
        if not 0 <= index < self.n:
            raise ValueError(f"WorldClock: start index {index} is outside [0, {self.n - 1}]")
        return index
