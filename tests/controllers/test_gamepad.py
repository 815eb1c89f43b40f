"""Gamepad: deadzones and the pure mapping, pygame joystick events with hot-plug (SDL dummy
video, events posted to the real queue), and the `inputs` backend fed by a synthetic reader."""
import math
import queue
import time
from types import SimpleNamespace

import pytest

from controllers.commands import merge
from controllers.config import ControllersConfig, GamepadConfig
from controllers.gamepad import (NO_PAD, UNPLUGGED, GamepadUnplugged, InputsGamepad, PadState,
                                 PygameGamepad, commands_from_pad, radial_deadzone, trigger_deadzone)
from controllers.keyboard import PygameKeyboard
from runtime.config import RigConfig
from runtime.rig import CameraRig

CFG = GamepadConfig()


def test_radial_deadzone_keeps_direction_and_rescales():
    assert radial_deadzone(0.1, 0.1, 0.15) == (0.0, 0.0)          # |v| = 0.14 < 0.15
    x, y = radial_deadzone(0.3, 0.4, 0.15)                         # |v| = 0.5
    assert math.hypot(x, y) == pytest.approx((0.5 - 0.15) / 0.85)
    assert x / y == pytest.approx(0.75)
    assert math.hypot(*radial_deadzone(0.0, -1.0, 0.15)) == pytest.approx(1.0)
    assert math.hypot(*radial_deadzone(0.9, 0.9, 0.15)) == pytest.approx(1.0)   # corners clamp to 1
    assert trigger_deadzone(0.04, 0.05) == 0.0 and trigger_deadzone(1.0, 0.05) == 1.0


def test_pure_mapping():
    state = PadState(left=(0.0, -1.0), right=(1.0, -1.0), left_trigger=0.0, right_trigger=1.0,
                     held=frozenset({"ls"}))
    c = commands_from_pad(state, frozenset({"a", "rb", "dpad_right", "y"}), CFG, scrub_step_s=2.0)
    assert c.camera.move == pytest.approx((0.0, -1.0, 1.0))       # stick up: forward; right trigger: up
    assert c.camera.look[0] == pytest.approx(math.sqrt(0.5)) and c.camera.look[1] > 0   # stick up looks up
    assert c.camera.run and c.camera.reset
    assert c.time.toggle_pause and c.time.speed_steps == 1 and c.time.scrub_s == 2.0
    inverted = commands_from_pad(state, frozenset(), GamepadConfig(invert_look_y=True))
    assert inverted.camera.look[1] < 0
    assert commands_from_pad(PadState(left=(0.1, 0.05)), frozenset(), CFG).is_idle


class FakeJoystick:
    def __init__(self, device_index):
        self.instance_id = 40 + device_index

    def get_instance_id(self):
        return self.instance_id

    def get_name(self):
        return "Fake Pad"


def test_pygame_events_move_the_rig_and_survive_unplug(pg, pump):
    pad, kb = PygameGamepad(CFG, open_joystick=FakeJoystick), PygameKeyboard(ControllersConfig())
    rig = CameraRig(RigConfig(mode="fly"), scene_scale=1.0)
    assert pad.status == NO_PAD
    pg.event.post(pg.event.Event(pg.JOYDEVICEADDED, device_index=0))
    pg.event.post(pg.event.Event(pg.JOYAXISMOTION, instance_id=40, joy=0, axis=1, value=-1.0))   # left stick up
    pg.event.post(pg.event.Event(pg.JOYAXISMOTION, instance_id=40, joy=0, axis=5, value=1.0))    # right trigger
    pg.event.post(pg.event.Event(pg.JOYAXISMOTION, instance_id=99, joy=1, axis=0, value=1.0))    # another pad
    pg.event.post(pg.event.Event(pg.JOYBUTTONDOWN, instance_id=40, joy=0, button=0))             # a: pause
    pg.event.post(pg.event.Event(pg.JOYHATMOTION, instance_id=40, joy=0, hat=0, value=(0, -1)))  # d-pad down
    pump(pg, pad, kb)
    assert pad.connected and pad.status == "gamepad: Fake Pad"
    c = merge(kb.poll(), pad.poll())
    assert c.camera.move == pytest.approx((0.0, -1.0, 1.0))
    assert c.time.toggle_pause and c.time.step == -1
    for _ in range(60):
        rig.step(c.camera, 1 / 60)
        c = merge(kb.poll(), pad.poll())
    moved = rig.c2w()[:3, 3].copy()
    assert moved[2] > 0.3 and moved[1] < -0.3                   # forward and up (-y)

    pg.event.post(pg.event.Event(pg.JOYDEVICEREMOVED, instance_id=40))
    pg.event.post(pg.event.Event(pg.KEYDOWN, key=pg.K_d, mod=0, unicode="d", scancode=0))
    pump(pg, pad, kb)
    assert pad.status == UNPLUGGED and not pad.connected
    assert pad.poll().is_idle                                    # every pad input let go
    c = merge(kb.poll(), pad.poll())
    assert c.camera.move == (1.0, 0.0, 0.0)                      # the keyboard goes on

    pg.event.post(pg.event.Event(pg.JOYDEVICEADDED, device_index=1))
    pg.event.post(pg.event.Event(pg.JOYAXISMOTION, instance_id=41, joy=0, axis=3, value=0.8))   # right stick x
    pump(pg, pad, kb)
    assert pad.connected and pad.poll().camera.look[0] > 0.5     # resumed on the new instance


def test_signed_trigger_at_rest_reads_released(pg):
    pad = PygameGamepad(CFG, open_joystick=FakeJoystick)
    pad.handle(pg.event.Event(pg.JOYDEVICEADDED, device_index=0))
    assert pad.state().left_trigger == 0.0                       # never moved: released
    pad.handle(pg.event.Event(pg.JOYAXISMOTION, instance_id=40, axis=2, value=-1.0))
    assert pad.state().left_trigger == 0.0
    pad.handle(pg.event.Event(pg.JOYAXISMOTION, instance_id=40, axis=2, value=0.0))
    assert pad.state().left_trigger == 0.5


class FakeReader:
    """Stands in for inputs.get_gamepad: returns queued event lists or raises queued errors."""

    def __init__(self):
        self.items = queue.Queue()

    def __call__(self):
        try:
            item = self.items.get(timeout=0.02)
        except queue.Empty:
            return []
        if isinstance(item, Exception):
            raise item
        return item


def ev(ev_type, code, state):
    return SimpleNamespace(ev_type=ev_type, code=code, state=state)


def wait_for(cond, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "the reader thread did not get there"
        time.sleep(0.005)


def test_inputs_backend_with_synthetic_events_and_unplug():
    reader = FakeReader()
    pad = InputsGamepad(GamepadConfig(reconnect_s=0.01), read_events=reader)
    try:
        reader.items.put([ev("Absolute", "ABS_Y", -32767), ev("Absolute", "ABS_RX", 16000),
                          ev("Absolute", "ABS_Z", 255), ev("Key", "BTN_SOUTH", 1), ev("Sync", "SYN_REPORT", 0)])
        wait_for(lambda: pad.state().left_trigger > 0)
        assert pad.connected
        c = pad.poll()
        assert c.camera.move == pytest.approx((0.0, 1.0, 1.0))  # forward, left trigger: down
        assert c.camera.look[0] > 0.3 and c.time.toggle_pause
        assert not pad.poll().time.toggle_pause                   # a press counts once

        reader.items.put([ev("Absolute", "ABS_HAT0X", 1)])
        wait_for(lambda: "dpad_right" in pad.state().held)
        assert pad.poll().time.scrub_s == 1.0

        reader.items.put(GamepadUnplugged("gone"))
        wait_for(lambda: pad.status == UNPLUGGED)
        assert pad.poll().is_idle

        reader.items.put([ev("Absolute", "ABS_X", 32767)])
        wait_for(lambda: pad.connected and pad.state().left[0] > 0.9)
        assert pad.poll().camera.move[0] == pytest.approx(1.0)
    finally:
        pad.close()


def test_inputs_backend_without_a_pad_keeps_running():
    def no_pad():
        raise GamepadUnplugged("no gamepad found")
    pad = InputsGamepad(GamepadConfig(reconnect_s=0.01), read_events=no_pad)
    try:
        time.sleep(0.05)                                           # a few retries
        assert pad.status == NO_PAD and pad.poll().is_idle
    finally:
        pad.close()


def test_default_reader_reports_a_missing_pad_as_unplugged():
    inputs = pytest.importorskip("inputs")
    if inputs.devices.gamepads:
        pytest.skip("a real gamepad is plugged in (its read would block)")
    from controllers.gamepad import inputs_reader
    with pytest.raises(GamepadUnplugged):
        inputs_reader()()


def test_make_gamepad_picks_the_configured_backend(pg):
    from controllers.gamepad import make_gamepad
    assert make_gamepad(GamepadConfig(backend="none")) is None
    pad = make_gamepad(GamepadConfig(backend="pygame"))
    assert isinstance(pad, PygameGamepad) and pad.poll().is_idle
