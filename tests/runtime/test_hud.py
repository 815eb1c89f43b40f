"""The HUD (runtime/hud.py): its text, and stats refreshed by presented seconds, whatever the fps."""
import pytest

from runtime.hud import Hud, HudView

VIEW = HudView(refiner="geometry", camera_mode="walk", source_index=7, source_frames=120, paused=False,
               speed=2.0, reverse=True, buffered=5, block_id=3, statuses=("gamepad: none",), recording_frames=None)


def test_the_hud_says_what_the_session_does():
    hud = Hud(lambda: {"fps": 23.9, "control_to_photon_ms": {"p50": 180.0}})
    lines = hud.update(VIEW).lines
    assert lines[0] == "roam  geometry refiner  walk mode"
    assert lines[1] == "fps  23.9   latency p50  180 ms"
    assert lines[2] == "time    7/119  2x rev" and lines[3] == "buffer  5 frames  block 3"
    assert lines[4:] == ["gamepad: none", "C records"]
    assert hud.update(VIEW.__class__(**{**VIEW.__dict__, "paused": True, "recording_frames": 12})).lines[2:] \
        == ["time    7/119  paused", "buffer  5 frames  block 3", "gamepad: none", "REC 12 frames"]
    hud.toggle()
    assert not hud.state.visible


@pytest.mark.parametrize("fps", [24.0, 30.0, 60.0])
def test_stats_refresh_every_two_seconds_whatever_the_frame_rate(fps):
    clock = [0.0]
    refreshed = []
    hud = Hud(lambda: refreshed.append(round(clock[0] * fps)) or {}, now=lambda: clock[0])
    for frame in range(int(6 * fps)):
        clock[0] = frame / fps
        hud.update(VIEW)
    assert refreshed == [0, round(2 * fps), round(4 * fps)]


def test_with_a_display_the_hud_shows_the_displays_rate():
    hud = Hud(lambda: {"fps": 24.0, "display": {"fps": 59.8}})
    assert hud.update(VIEW).lines[1].startswith("fps  59.8")
