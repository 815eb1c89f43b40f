"""The HUD: what the window shows over the picture, as text lines made from one frozen view.

The fps and latency figures come from the telemetry summary, refreshed every `STATS_EVERY_S`
seconds of presented video (computing it every frame would cost the loop time it measures).
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
    """The HUD's state and its stats, refreshed every STATS_EVERY_S seconds of presented video."""

    def __init__(self, summary, fps: float):
        """summary: () -> the telemetry summary; fps: the presentation rate."""
        self.state = HudState(visible=True)
        self._summary, self._fps = summary, fps
        self._stats: dict = {}
        self._stats_at_s: float | None = None

    def toggle(self) -> None:
        self.state.visible = not self.state.visible

    def update(self, view: HudView, frames_presented: int) -> HudState:
        """The HUD for the frame about to be shown after `frames_presented` others."""
        video_s = frames_presented / self._fps
        if self._stats_at_s is None or video_s - self._stats_at_s >= STATS_EVERY_S - 1e-9:
            self._stats, self._stats_at_s = self._summary() or {}, video_s
        self.state.lines = hud_lines(view, self._stats)
        return self.state
