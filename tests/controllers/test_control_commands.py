"""Commands: validation, merging of devices, and the inputs.jsonl round trip."""
import pytest

from controllers.commands import (IDLE, AppCommand, CameraCommand, Commands, TimeCommand,
                                  commands_from_dict, merge)


def test_commands_validate_ranges():
    with pytest.raises(ValueError, match="move"):
        CameraCommand(move=(1.5, 0.0, 0.0))
    with pytest.raises(ValueError, match="mode"):
        CameraCommand(mode="swim")
    with pytest.raises(ValueError, match="jump_fraction"):
        TimeCommand(jump_fraction=1.2)
    with pytest.raises(ValueError, match="look_delta"):
        CameraCommand(look_delta_deg=(float("nan"), 0.0))


def test_merge_adds_axes_clamps_and_ors_flags():
    a = Commands(camera=CameraCommand(move=(1.0, 0.0, 0.5), look=(0.5, 0.0), look_delta_deg=(2.0, 1.0)),
                 time=TimeCommand(toggle_pause=True, step=1), app=AppCommand(toggle_hud=True))
    b = Commands(camera=CameraCommand(move=(0.5, -1.0, 0.0), run=True, mode="fly"),
                 time=TimeCommand(speed_steps=-1, scrub_s=2.0, jump_fraction=0.5))
    m = merge(a, b)
    assert m.camera.move == (1.0, -1.0, 0.5)
    assert m.camera.look == (0.5, 0.0) and m.camera.look_delta_deg == (2.0, 1.0)
    assert m.camera.run and m.camera.mode == "fly"
    assert m.time == TimeCommand(toggle_pause=True, speed_steps=-1, step=1, scrub_s=2.0, jump_fraction=0.5)
    assert m.app.toggle_hud and not m.app.quit
    assert merge(IDLE, IDLE).is_idle
    # the same pause button on two devices in one tick toggles once... twice cancels
    p = Commands(time=TimeCommand(toggle_pause=True))
    assert not merge(p, p).time.toggle_pause


def test_dict_round_trip_is_exact_and_compact():
    c = Commands(camera=CameraCommand(move=(0.25, 0.0, -1.0), look_delta_deg=(0.15, -0.3), cycle_mode=True),
                 time=TimeCommand(scrub_s=-1.0, jump_fraction=1.0), app=AppCommand(screenshot=True))
    d = c.to_dict()
    assert set(d) == {"camera", "time", "app"} and "reset" not in d["camera"]
    assert commands_from_dict(d) == c
    assert IDLE.to_dict() == {} and commands_from_dict({}) == IDLE
    with pytest.raises(ValueError, match="unknown"):
        commands_from_dict({"camera": {"warp": 1}})
    with pytest.raises(ValueError):
        commands_from_dict({"gamepad": {}})
