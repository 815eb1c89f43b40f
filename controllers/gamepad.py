"""Gamepads -> Commands.

The mapping is pure (`commands_from_pad`): a `PadState` of normalised sticks, triggers and logical
buttons in, `Commands` out. Two backends fill a PadState:
- `PygameGamepad`: SDL joystick events from the window's event loop, with hot-plug
  (JOYDEVICEADDED / JOYDEVICEREMOVED). Unplugging releases every input, so the camera stops and
  the keyboard keeps working; `status` says so for the HUD; plugging a pad in resumes.
- `InputsGamepad`: the `inputs` package for headless or kiosk use without a window. Its read
  blocks until an event arrives (zeth/inputs issue #7), so a daemon thread drains it and `poll`
  never waits; the read function is injected, so tests feed synthetic events.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Callable

from controllers.commands import AppCommand, CameraCommand, Commands, TimeCommand
from controllers.config import GamepadConfig

log = logging.getLogger("roam.gamepad")

NO_PAD = "no gamepad: keyboard only"
UNPLUGGED = "gamepad unplugged: keyboard only (plug it back in to resume)"


class GamepadUnplugged(OSError):
    """The pad went away (or there is none); the reader thread retries every `reconnect_s`."""


@dataclass(frozen=True)
class PadState:
    """A pad at one instant, independent of the backend."""
    left: tuple[float, float] = (0.0, 0.0)     # left stick: x right, y down, each in [-1, 1]
    right: tuple[float, float] = (0.0, 0.0)    # right stick, same axes
    left_trigger: float = 0.0                  # [0, 1], 0 released
    right_trigger: float = 0.0                 # [0, 1]
    held: frozenset[str] = frozenset()         # logical buttons down now (config.PAD_BUTTONS)


def radial_deadzone(x: float, y: float, deadzone: float) -> tuple[float, float]:
    """Zero inside a circle of radius `deadzone`; outside, rescale the magnitude so it rises from
    0 at the edge to 1 at full deflection, keeping the direction (no square-ish axis snapping)."""
    mag = math.hypot(x, y)
    if mag <= deadzone:
        return 0.0, 0.0
    scale = min(1.0, (mag - deadzone) / (1.0 - deadzone)) / mag
    return x * scale, y * scale


def trigger_deadzone(value: float, deadzone: float) -> float:
    if value <= deadzone:
        return 0.0
    return min(1.0, (value - deadzone) / (1.0 - deadzone))


def _clamp(x: float) -> float:
    return max(-1.0, min(1.0, x))


def commands_from_pad(state: PadState, pressed: frozenset[str], cfg: GamepadConfig,
                      scrub_step_s: float = 1.0) -> Commands:
    """Left stick moves, right stick looks, left/right trigger move down/up; buttons as bound."""
    lx, ly = radial_deadzone(*state.left, cfg.stick_deadzone)
    rx, ry = radial_deadzone(*state.right, cfg.stick_deadzone)
    down = trigger_deadzone(state.left_trigger, cfg.trigger_deadzone)
    up = trigger_deadzone(state.right_trigger, cfg.trigger_deadzone)
    pitch = ry if cfg.invert_look_y else -ry             # stick y grows downwards; pushing up looks up
    b = cfg.buttons

    def hit(names: tuple[str, ...]) -> bool:
        return any(n in pressed for n in names)

    camera = CameraCommand(move=(_clamp(lx), _clamp(down - up), _clamp(-ly)),
                           look=(_clamp(rx * cfg.look_scale), _clamp(pitch * cfg.look_scale)),
                           run=any(n in state.held for n in b.run), cycle_mode=hit(b.cycle_mode), reset=hit(b.reset))
    time = TimeCommand(toggle_pause=hit(b.pause), speed_steps=int(hit(b.speed_up)) - int(hit(b.speed_down)),
                       reverse=hit(b.reverse), step=int(hit(b.step_forward)) - int(hit(b.step_back)),
                       scrub_s=scrub_step_s * (int(hit(b.scrub_forward)) - int(hit(b.scrub_back))))
    return Commands(camera=camera, time=time, app=AppCommand(toggle_hud=hit(b.hud)))


def _dpad(x: int, y_up: int) -> set[str]:
    """Hat value -> d-pad button names; y_up is +1 when pushed up."""
    return ({"dpad_left"} if x < 0 else {"dpad_right"} if x > 0 else set()) | \
           ({"dpad_up"} if y_up > 0 else {"dpad_down"} if y_up < 0 else set())


class PygameGamepad:
    """SDL joystick events -> PadState. The first pad plugged in is used; hand every event to
    `handle` (the presenter pumps the queue) and call `poll` once per tick.

    `open_joystick(device_index)` returns an object with get_instance_id() and get_name();
    it defaults to pygame.joystick.Joystick, and tests pass a fake one.
    """
    needs_window_events = True         # SDL delivers its events through the window's queue

    def __init__(self, cfg: GamepadConfig, scrub_step_s: float = 1.0, open_joystick: Callable | None = None):
        import pygame
        self._pg, self._cfg, self._scrub_step_s = pygame, cfg, scrub_step_s
        if open_joystick is None:
            pygame.joystick.init()                 # SDL then posts JOYDEVICEADDED for pads already present
            open_joystick = pygame.joystick.Joystick
        self._open = open_joystick
        self._joystick = None
        self._instance: int | None = None
        self.status = NO_PAD
        self._release()

    @property
    def connected(self) -> bool:
        return self._instance is not None

    def _release(self) -> None:
        self._axes: dict[int, float] = {}
        self._buttons: set[int] = set()
        self._hat: set[str] = set()
        self._pressed: set[str] = set()

    def handle(self, event) -> bool:
        """Consume one pygame event; True when it was a joystick event."""
        pg = self._pg
        if event.type == pg.JOYDEVICEADDED:
            if self._instance is None:
                self._joystick = self._open(event.device_index)
                self._instance = self._joystick.get_instance_id()
                self.status = f"gamepad: {self._joystick.get_name()}"
                log.info("%s connected", self.status)
            return True
        if event.type not in (pg.JOYDEVICEREMOVED, pg.JOYAXISMOTION, pg.JOYBUTTONDOWN, pg.JOYBUTTONUP, pg.JOYHATMOTION):
            return False
        if getattr(event, "instance_id", None) != self._instance:
            return True                            # another pad, or a stale event after unplug
        if event.type == pg.JOYDEVICEREMOVED:
            self._joystick, self._instance, self.status = None, None, UNPLUGGED
            self._release()                        # every input let go: the camera stops, keyboard goes on
            log.warning(UNPLUGGED)
        elif event.type == pg.JOYAXISMOTION:
            self._axes[event.axis] = float(event.value)
        elif event.type == pg.JOYBUTTONDOWN:
            self._buttons.add(event.button)
            if event.button < len(self._cfg.joystick.buttons):
                self._pressed.add(self._cfg.joystick.buttons[event.button])
        elif event.type == pg.JOYBUTTONUP:
            self._buttons.discard(event.button)
        elif event.type == pg.JOYHATMOTION and event.hat == self._cfg.joystick.dpad_hat:
            hat = _dpad(event.value[0], event.value[1])
            self._pressed |= hat - self._hat
            self._hat = hat
        return True

    def _trigger(self, axis: int) -> float:
        if axis not in self._axes:                 # SDL reports nothing until a trigger moves: released
            return 0.0
        value = self._axes[axis]
        value = (value + 1.0) / 2.0 if self._cfg.joystick.triggers_signed else value
        return max(0.0, min(1.0, value))

    def state(self) -> PadState:
        lay, a = self._cfg.joystick, self._axes
        names = {lay.buttons[i] for i in self._buttons if i < len(lay.buttons)}
        return PadState(left=(a.get(lay.left_x, 0.0), a.get(lay.left_y, 0.0)),
                        right=(a.get(lay.right_x, 0.0), a.get(lay.right_y, 0.0)),
                        left_trigger=self._trigger(lay.left_trigger), right_trigger=self._trigger(lay.right_trigger),
                        held=frozenset(names | self._hat))

    def poll(self) -> Commands:
        cmds = commands_from_pad(self.state(), frozenset(self._pressed), self._cfg, self._scrub_step_s)
        self._pressed.clear()
        return cmds


def inputs_reader() -> Callable[[], list]:
    """A read function over the `inputs` package that survives unplugging: it rescans for pads
    after an error and raises GamepadUnplugged while there is none. `inputs` scans /dev/input
    when imported, so the import happens on the reader thread's first call."""
    manager = None

    def read() -> list:
        nonlocal manager
        import inputs
        if manager is None:
            manager = inputs.DeviceManager()
        if not manager.gamepads:
            manager = None
            raise GamepadUnplugged("no gamepad found")
        try:
            return manager.gamepads[0].read()
        except (OSError, inputs.UnpluggedError) as err:
            manager = None
            raise GamepadUnplugged(str(err)) from err
    return read


class InputsGamepad:
    """`inputs` events (ev_type, code, state) -> PadState, drained on a daemon thread."""
    needs_window_events = False        # it reads the device itself

    def __init__(self, cfg: GamepadConfig, scrub_step_s: float = 1.0,
                 read_events: Callable[[], list] | None = None, start: bool = True):
        self._cfg, self._scrub_step_s = cfg, scrub_step_s
        self._read = read_events or inputs_reader()
        self._codes = cfg.evdev.button_codes()
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._values: dict[str, float] = {}
        self._held: set[str] = set()
        self._pressed: set[str] = set()
        self.status = NO_PAD
        self._thread = threading.Thread(target=self._drain, name="gamepad", daemon=True)
        if start:
            self._thread.start()

    @property
    def connected(self) -> bool:
        return self.status not in (NO_PAD, UNPLUGGED)

    def close(self) -> None:
        """Ask the reader thread to stop (it ends after its current blocking read returns)."""
        self._stop.set()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                events = self._read()
            except GamepadUnplugged as err:
                self._unplugged(err)
                self._stop.wait(self._cfg.reconnect_s)
                continue
            with self._lock:
                if not self.connected:
                    self.status = "gamepad: connected (inputs)"
                    log.info("gamepad connected (inputs)")
                for event in events:
                    self._apply(event)

    def _unplugged(self, err: Exception) -> None:
        with self._lock:
            if self.connected:                     # say it once per unplug, not once per retry
                log.warning("%s (%s)", UNPLUGGED, err)
                self.status = UNPLUGGED
            self._values.clear()                   # every input let go: the camera stops
            self._held.clear()

    def _apply(self, event) -> None:
        if event.ev_type == "Absolute":
            self._values[event.code] = float(event.state)
            ev = self._cfg.evdev
            if event.code in (ev.dpad_x, ev.dpad_y):
                hat = _dpad(int(self._values.get(ev.dpad_x, 0)), -int(self._values.get(ev.dpad_y, 0)))  # evdev y: -1 up
                self._pressed |= hat - self._held
                self._held = (self._held - _ALL_DPAD) | hat
        elif event.ev_type == "Key" and event.code in self._codes:
            name = self._codes[event.code]
            if event.state:
                self._held.add(name)
                self._pressed.add(name)
            else:
                self._held.discard(name)

    def state(self) -> PadState:
        ev = self._cfg.evdev
        with self._lock:
            v, held = dict(self._values), frozenset(self._held)

        def stick(code: str) -> float:
            return _clamp(v.get(code, 0.0) / ev.stick_max)

        def trigger(code: str) -> float:
            return max(0.0, min(1.0, v.get(code, 0.0) / ev.trigger_max))
        return PadState(left=(stick(ev.left_x), stick(ev.left_y)), right=(stick(ev.right_x), stick(ev.right_y)),
                        left_trigger=trigger(ev.left_trigger), right_trigger=trigger(ev.right_trigger), held=held)

    def poll(self) -> Commands:
        state = self.state()
        with self._lock:
            pressed, self._pressed = frozenset(self._pressed), set()
        return commands_from_pad(state, pressed, self._cfg, self._scrub_step_s)


_ALL_DPAD = frozenset({"dpad_up", "dpad_down", "dpad_left", "dpad_right"})


def make_gamepad(cfg: GamepadConfig, scrub_step_s: float = 1.0):
    """The configured backend, or None for `backend: none`. A PygameGamepad needs the window's
    events (`handle`); an InputsGamepad reads on its own thread. Both offer poll() and status."""
    if cfg.backend == "pygame":
        return PygameGamepad(cfg, scrub_step_s)
    if cfg.backend == "inputs":
        return InputsGamepad(cfg, scrub_step_s)
    return None
