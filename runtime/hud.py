"""The HUD: what the window shows over the picture, as text lines made from one frozen view.

The fps and latency figures come from the telemetry summary, refreshed every `STATS_EVERY_S`
seconds (computing it every frame would cost the loop time it measures). With a display drawing at
its own rate, the fps shown is the display's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

STATS_EVERY_S = 2.0


@dataclass
class HudState:
    """What the HUD shows; the session updates it every frame."""
    lines: list[str] = field(default_factory=list)
    visible: bool = True


@dataclass(frozen=True)
class HudView:
    """One presented frame's facts the HUD shows."""
    refiner: str
    camera_mode: str
    source_index: int
    source_frames: int
    paused: bool
    speed: float
    reverse: bool
    buffered: int
    block_id: int
    statuses: tuple[str, ...] = ()          # gamepad, kiosk
    recording_frames: int | None = None     # None: not recording


def hud_lines(view: HudView, stats: dict) -> list[str]:
    """The HUD's text. stats: a telemetry summary (fps, control_to_photon_ms), or {} before one."""
    if stats.get("display"):                                   # the display's rate, not the content's
        stats = {**stats, "fps": stats["display"].get("fps")}
    lat = stats.get("control_to_photon_ms", {})
    state = "paused" if view.paused else f"{view.speed:g}x {'rev' if view.reverse else 'fwd'}"
    return [f"roam  {view.refiner} refiner  {view.camera_mode} mode",
            (f"fps {stats['fps']:5.1f}" if stats.get("fps") else "fps    --") + "   latency p50 "
            + (f"{lat['p50']:4.0f} ms" if "p50" in lat else "  -- ms"),
            f"time {view.source_index:4d}/{view.source_frames - 1}  {state}",
            f"buffer {view.buffered:2d} frames  block {view.block_id}",
            *view.statuses,
            f"REC {view.recording_frames} frames" if view.recording_frames is not None else "C records"]


class Hud:
    """The HUD's state and its stats, refreshed every STATS_EVERY_S seconds of `now`."""

    def __init__(self, summary: Callable[[], dict], now: Callable[[], float] = time.perf_counter):
        """summary: () -> the telemetry summary."""
        self.state = HudState(visible=True)
        self._summary, self._now = summary, now
        self._stats: dict = {}
        self._stats_at: float | None = None

    def toggle(self) -> None:
        self.state.visible = not self.state.visible

    def update(self, view: HudView) -> HudState:
        """The HUD for the frame about to be shown."""
        now = self._now()
        if self._stats_at is None or now - self._stats_at >= STATS_EVERY_S:
            self._stats, self._stats_at = self._summary() or {}, now
        self.state.lines = hud_lines(view, self._stats)
        return self.state
