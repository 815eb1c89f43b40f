"""Keyboard: the pure key-set mapping, and real pygame events (SDL dummy video) reaching the rig."""
import numpy as np
import pytest

from controllers.commands import TimeCommand
from controllers.config import ControllersConfig, KeyBindings
from controllers.keyboard import KeyState, PygameKeyboard, commands_from_keys
from runtime.config import RigConfig
from runtime.rig import CameraRig

CFG = ControllersConfig()


def keys(held=(), pressed=(), **kw):
    return commands_from_keys(KeyState(held=frozenset(held), pressed=frozenset(pressed), **kw), CFG)


def test_held_keys_move_and_look():
    c = keys(held={"w", "d", "e"}).camera
    assert c.move == (1.0, -1.0, 1.0)                         # right, up (-y), forward
    assert keys(held={"s", "left", "q"}).camera.move == (-1.0, 1.0, -1.0)
    assert keys(held={"w", "s"}).camera.move == (0.0, 0.0, 0.0)   # opposite keys cancel
    assert keys(held={"up"}).camera.move == (0.0, 0.0, 1.0)   # arrows too
    assert keys(held={"l", "i"}).camera.look == (1.0, 1.0)
    assert keys(held={"j", "k"}).camera.look == (-1.0, -1.0)
    assert keys(held={"left shift"}).camera.run and not keys(held={"w"}).camera.run


def test_mouse_look_only_while_dragging():
    s = CFG.mouse_sensitivity_deg
    assert keys(mouse_delta=(10.0, -4.0), mouse_look=True).camera.look_delta_deg == pytest.approx((10 * s, 4 * s))
    assert keys(mouse_delta=(10.0, -4.0), mouse_look=False).camera.look_delta_deg == (0.0, 0.0)


def test_pressed_keys_toggle_time_and_app():
    assert keys(pressed={"space"}).time == TimeCommand(toggle_pause=True)
    assert keys(pressed={"]"}).time.speed_steps == 1 and keys(pressed={"["}).time.speed_steps == -1
    assert keys(pressed={"backspace"}).time.reverse
    assert keys(pressed={"."}).time.step == 1 and keys(pressed={","}).time.step == -1
    assert keys(pressed={"home"}).time.jump_fraction == 0.0 and keys(pressed={"end"}).time.jump_fraction == 1.0
    assert keys(pressed={"page up"}).time.scrub_s == CFG.scrub_step_s
    assert keys(pressed={"tab"}).camera.cycle_mode and keys(pressed={"r"}).camera.reset
    app = keys(pressed={"h", "f", "p", "escape"}).app
    assert app.toggle_hud and app.toggle_fullscreen and app.screenshot and app.quit
    # held but not pressed this tick: no repeat of the toggle
    assert not keys(held={"space"}).time.toggle_pause


def test_bindings_come_from_config():
    cfg = ControllersConfig(keys=KeyBindings(move_forward=("z",), pause=("p",), screenshot=("f12",)))
    state = KeyState(held=frozenset({"z"}), pressed=frozenset({"p"}))
    c = commands_from_keys(state, cfg)
    assert c.camera.move == (0.0, 0.0, 1.0) and c.time.toggle_pause and not c.app.screenshot


def test_pygame_events_reach_commands_and_move_the_rig(pg, pump):
    kb = PygameKeyboard(CFG)
    rig = CameraRig(RigConfig(mode="fly"), scene_scale=2.0)
    pg.event.post(pg.event.Event(pg.KEYDOWN, key=pg.K_w, mod=0, unicode="w", scancode=0))
    pg.event.post(pg.event.Event(pg.KEYDOWN, key=pg.K_SPACE, mod=0, unicode=" ", scancode=0))
    pump(pg, kb)
    first = kb.poll()
    assert first.camera.move == (0.0, 0.0, 1.0) and first.time.toggle_pause
    assert not kb.poll().time.toggle_pause                    # pressed lasts one tick; held stays
    rig.step(first.camera, 1 / 60)
    for _ in range(59):
        rig.step(kb.poll().camera, 1 / 60)
    assert rig.c2w()[2, 3] > 0.5 and abs(rig.c2w()[0, 3]) < 1e-9   # moved forward (+z)
    pg.event.post(pg.event.Event(pg.KEYUP, key=pg.K_w, mod=0, unicode="w", scancode=0))
    pump(pg, kb)
    assert kb.poll().camera.move == (0.0, 0.0, 0.0)


def test_pygame_mouse_drag_and_focus_loss(pg, pump):
    kb = PygameKeyboard(CFG)
    pg.event.post(pg.event.Event(pg.MOUSEMOTION, rel=(50, 0), pos=(0, 0), buttons=(0, 0, 0)))   # not dragging
    pg.event.post(pg.event.Event(pg.MOUSEBUTTONDOWN, button=1, pos=(0, 0)))
    pg.event.post(pg.event.Event(pg.MOUSEMOTION, rel=(10, 20), pos=(0, 0), buttons=(1, 0, 0)))
    pump(pg, kb)
    yaw, pitch = kb.poll().camera.look_delta_deg
    assert yaw == pytest.approx(10 * CFG.mouse_sensitivity_deg) and pitch == pytest.approx(-20 * CFG.mouse_sensitivity_deg)
    pg.event.post(pg.event.Event(pg.KEYDOWN, key=pg.K_a, mod=0, unicode="a", scancode=0))
    pg.event.post(pg.event.Event(pg.WINDOWFOCUSLOST))
    pump(pg, kb)
    assert kb.poll().camera.move == (0.0, 0.0, 0.0)           # focus loss lets go of every key
    pg.event.post(pg.event.Event(pg.QUIT))
    pump(pg, kb)
    assert kb.poll().app.quit


def test_a_key_bound_twice_is_an_error():
    with pytest.raises(ValueError, match="'p' is already bound to pause"):
        KeyBindings(pause=("p",))


def test_unknown_key_name_is_a_clear_error(pg):
    with pytest.raises(ValueError, match="controllers.keys.pause: 'spacebar'"):
        PygameKeyboard(ControllersConfig(keys=KeyBindings(pause=("spacebar",))))


def test_rig_moves_right_with_d_in_world_x():
    rig = CameraRig(RigConfig(mode="fly"), scene_scale=1.0)
    for _ in range(30):
        rig.step(keys(held={"d"}).camera, 1 / 60)
    assert rig.c2w()[0, 3] > 0.05 and np.allclose(rig.c2w()[:3, :3], np.eye(3))
