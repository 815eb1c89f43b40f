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
    """What the HUD shows; the session updates it every frame. help_rows: (keys, gamepad, action)
    rows of the help overlay (controllers/help.py), shown while `show_help`."""
    lines: list[str] = field(default_factory=list)
    visible: bool = True
    help_rows: list[tuple[str, str, str]] = field(default_factory=list)
    show_help: bool = False


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
    seen: float | None = None               # share of the view the video saw (the render's coverage), if known


def seen_lines(seen: float | None, warning: float, reset_keys: tuple[str, ...]) -> list[str]:
    """The HUD's word on how much of the view the video saw (the render's coverage of the frame)."""
    if seen is None:
        return []
    if seen < warning:
        back = f" ({reset_keys[0].upper()}: back to the video's camera)" if reset_keys else ""
        return [f"OUTSIDE THE SEEN WORLD: {100 * seen:.0f} % of the view seen{back}"]
    return [f"seen {100 * seen:3.0f} % of the view"]


def hud_lines(view: HudView, stats: dict, seen_warning: float = 0.0, reset_keys: tuple[str, ...] = ()) -> list[str]:
    """The HUD's text. stats: a telemetry summary (fps, control_to_photon_ms), or {} before one;
    below `seen_warning` of the view seen it warns, naming the first of `reset_keys`."""
    if stats.get("display"):                                   # the display's rate, not the content's
        stats = {**stats, "fps": stats["display"].get("fps")}
    lat = stats.get("control_to_photon_ms", {})
    state = "paused" if view.paused else f"{view.speed:g}x {'rev' if view.reverse else 'fwd'}"
    return [f"roam  {view.refiner} refiner  {view.camera_mode} mode",
            (f"fps {stats['fps']:5.1f}" if stats.get("fps") else "fps    --") + "   latency p50 "
            + (f"{lat['p50']:4.0f} ms" if "p50" in lat else "  -- ms"),
            f"time {view.source_index:4d}/{view.source_frames - 1}  {state}",
            f"buffer {view.buffered:2d} frames  block {view.block_id}",
            *seen_lines(view.seen, seen_warning, reset_keys),
            *view.statuses,
            f"REC {view.recording_frames} frames" if view.recording_frames is not None else "C records"]


class Hud:
    """The HUD's state and its stats, refreshed every STATS_EVERY_S seconds of `now`."""

    def __init__(self, summary: Callable[[], dict], now: Callable[[], float] = time.perf_counter, *,
                 seen_warning: float = 0.0, reset_keys: tuple[str, ...] = (),
                 help_rows: list[tuple[str, str, str]] = ()):
        """summary: () -> the telemetry summary; seen_warning, reset_keys: see hud_lines; help_rows:
        the help overlay's rows."""
        self.state = HudState(visible=True, help_rows=list(help_rows))
        self._summary, self._now = summary, now
        self._seen_warning, self._reset_keys = seen_warning, tuple(reset_keys)
        self._stats: dict = {}
        self._stats_at: float | None = None

    def toggle(self) -> None:
        self.state.visible = not self.state.visible

    def toggle_help(self) -> None:
        self.state.show_help = not self.state.show_help

    def update(self, view: HudView) -> HudState:
        """The HUD for the frame about to be shown."""
        now = self._now()
        if self._stats_at is None or now - self._stats_at >= STATS_EVERY_S:
            self._stats, self._stats_at = self._summary() or {}, now
        self.state.lines = hud_lines(view, self._stats, self._seen_warning, self._reset_keys)
        return self.state
