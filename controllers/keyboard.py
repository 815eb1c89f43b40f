"""Keyboard and mouse -> Commands.

`commands_from_keys` is pure: the keys held now, the keys that went down this tick and the mouse
motion of this tick in, one `Commands` out. `PygameKeyboard` only turns pygame events into that
state (pygame is imported when it is built, so this module imports on a machine without pygame).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from controllers.commands import AppCommand, CameraCommand, Commands, TimeCommand
from controllers.config import ControllersConfig, KeyBindings


@dataclass(frozen=True)
class KeyState:
    """One tick of keyboard and mouse input, with pygame key names (lower case)."""
    held: frozenset[str] = frozenset()       # keys down now
    pressed: frozenset[str] = frozenset()    # keys that went down since the last tick
    mouse_delta: tuple[float, float] = (0.0, 0.0)   # pixels moved this tick: x right, y down
    mouse_look: bool = False                 # the look button is held (drag to look)


def _axis(held: frozenset[str], negative: tuple[str, ...], positive: tuple[str, ...]) -> float:
    return float(any(k in held for k in positive)) - float(any(k in held for k in negative))


def _hit(pressed: frozenset[str], keys: tuple[str, ...]) -> bool:
    return any(k in pressed for k in keys)


def camera_from_keys(state: KeyState, keys: KeyBindings, cfg: ControllersConfig) -> CameraCommand:
    held = state.held
    move = (_axis(held, keys.move_left, keys.move_right),
            _axis(held, keys.move_up, keys.move_down),            # y points down: E (up) is -1
            _axis(held, keys.move_back, keys.move_forward))
    look = (_axis(held, keys.look_left, keys.look_right), _axis(held, keys.look_down, keys.look_up))
    delta = (0.0, 0.0)
    if cfg.mouse_look and state.mouse_look:
        dx, dy = state.mouse_delta
        flip = 1.0 if cfg.invert_mouse_y else -1.0                 # mouse y grows downwards; up looks up
        delta = (dx * cfg.mouse_sensitivity_deg, flip * dy * cfg.mouse_sensitivity_deg)
    return CameraCommand(move=move, look=look, look_delta_deg=delta, run=any(k in held for k in keys.run),
                         cycle_mode=_hit(state.pressed, keys.cycle_mode), reset=_hit(state.pressed, keys.reset))


def time_from_keys(pressed: frozenset[str], keys: KeyBindings, scrub_step_s: float) -> TimeCommand:
    jump = 0.0 if _hit(pressed, keys.jump_start) else 1.0 if _hit(pressed, keys.jump_end) else None
    return TimeCommand(
        toggle_pause=_hit(pressed, keys.pause),
        speed_steps=int(_hit(pressed, keys.speed_up)) - int(_hit(pressed, keys.speed_down)),
        reverse=_hit(pressed, keys.reverse),
        step=int(_hit(pressed, keys.step_forward)) - int(_hit(pressed, keys.step_back)),
        scrub_s=scrub_step_s * (int(_hit(pressed, keys.scrub_forward)) - int(_hit(pressed, keys.scrub_back))),
        jump_fraction=jump)


def commands_from_keys(state: KeyState, cfg: ControllersConfig) -> Commands:
    """The whole mapping: held keys move and look, keys that went down this tick toggle and step."""
    keys, pressed = cfg.keys, state.pressed
    app = AppCommand(toggle_hud=_hit(pressed, keys.hud), toggle_help=_hit(pressed, keys.help),
                     toggle_fullscreen=_hit(pressed, keys.fullscreen),
                     screenshot=_hit(pressed, keys.screenshot), toggle_record=_hit(pressed, keys.record),
                     quit=_hit(pressed, keys.quit))
    return Commands(camera=camera_from_keys(state, keys, cfg),
                    time=time_from_keys(pressed, keys, cfg.scrub_step_s), app=app)


class PygameKeyboard:
    """Collects pygame keyboard and mouse events between ticks; `poll()` turns them into Commands.

    The presenter pumps the event queue and hands every event to `handle`; keys are tracked by
    pygame key name, so the bindings in config.yaml are plain strings ("w", "left shift").
    Losing window focus releases every key, so the camera never drifts on a stuck key.
    """

    def __init__(self, cfg: ControllersConfig):
        import pygame
        self._pg, self._cfg = pygame, cfg
        for f in dataclasses.fields(cfg.keys):
            for name in getattr(cfg.keys, f.name):
                try:
                    pygame.key.key_code(name)
                except ValueError:
                    raise ValueError(f"controllers.keys.{f.name}: {name!r} is not a pygame key name "
                                     f"(see pygame.key.name, e.g. 'w', 'left shift', 'page up')") from None
        self._held: set[str] = set()
        self._pressed: set[str] = set()
        self._mouse = [0.0, 0.0]
        self._dragging = False
        self._quit = False

    def handle(self, event) -> bool:
        """Consume one pygame event; True when it was a keyboard, mouse or window event we use."""
        pg = self._pg
        if event.type == pg.KEYDOWN:
            name = pg.key.name(event.key).lower()
            if name not in self._held:            # ignore the OS key repeat
                self._pressed.add(name)
                if getattr(event, "unicode", "").strip() and event.unicode.isprintable():
                    self._pressed.add(event.unicode)   # the typed character too: "?" is Shift + "/" here
            self._held.add(name)
        elif event.type == pg.KEYUP:
            self._held.discard(pg.key.name(event.key).lower())
        elif event.type == pg.MOUSEBUTTONDOWN and event.button == 1:
            self._dragging = True
        elif event.type == pg.MOUSEBUTTONUP and event.button == 1:
            self._dragging = False
        elif event.type == pg.MOUSEMOTION:
            if self._dragging:
                self._mouse[0] += event.rel[0]
                self._mouse[1] += event.rel[1]
        elif event.type == pg.WINDOWFOCUSLOST:
            self.release_all()
        elif event.type == pg.QUIT:
            self._quit = True
        else:
            return False
        return True

    def release_all(self) -> None:
        self._held.clear()
        self._dragging = False

    def state(self) -> KeyState:
        return KeyState(held=frozenset(self._held), pressed=frozenset(self._pressed),
                        mouse_delta=(self._mouse[0], self._mouse[1]),
                        mouse_look=self._dragging or any(self._mouse))   # a drag released this tick still counts

    def poll(self) -> Commands:
        """This tick's Commands; clears the per-tick state (keys pressed, mouse motion)."""
        cmds = commands_from_keys(self.state(), self._cfg)
        if self._quit:
            cmds = dataclasses.replace(cmds, app=dataclasses.replace(cmds.app, quit=True))
        self._pressed.clear()
        self._mouse = [0.0, 0.0]
        self._quit = False
        return cmds
