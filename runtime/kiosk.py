"""Kiosk mode: an unattended demo that a visitor can walk up to.

`KioskInputs` sits between the live controllers and the session. While a visitor plays, their
commands pass through, except quit, which only the admin key combination gives. After
`idle_timeout_s` without input it resets the world (camera back to the source, time to the start)
and plays the attract input (a recorded run's inputs, or the built-in demo walk); the first visitor
input takes over at once. Everything is expressed as Commands, so the session needs no kiosk logic.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from controllers.commands import AppCommand, CameraCommand, Commands, TimeCommand, merge


class KioskInputs:
    """poll() once per tick. live: objects with poll(); attract: one object with poll();
    held_keys: the key names the keyboard holds, or pressed since the last tick (the admin
    combination: a quick tap of all its keys quits too)."""

    def __init__(self, live, attract, *, idle_timeout_s: float, tick_hz: float,
                 admin_quit: tuple[str, ...], held_keys: Callable[[], frozenset[str]] = frozenset):
        self.live, self.attract, self.held_keys = list(live), attract, held_keys
        self.idle_ticks, self.admin_quit = max(1, round(idle_timeout_s * tick_hz)), frozenset(admin_quit)
        self.idle_for = self.idle_ticks          # start in attract mode
        self.attracting = False
        self.visitor_sessions = 0

    @property
    def status(self) -> str:
        return "kiosk: attract loop (touch any control)" if self.attracting else "kiosk: visitor"

    def poll(self) -> Commands:
        admin = bool(self.admin_quit) and self.admin_quit <= self.held_keys()
        cmds = self._next()
        return dataclasses.replace(cmds, app=dataclasses.replace(cmds.app, quit=admin))

    def _next(self) -> Commands:
        live = merge(*(source.poll() for source in self.live)) if self.live else Commands()
        live = dataclasses.replace(live, app=AppCommand(toggle_hud=live.app.toggle_hud, toggle_help=live.app.toggle_help))
        if not _is_idle(live):
            if self.attracting:
                self.attracting, self.visitor_sessions = False, self.visitor_sessions + 1
            self.idle_for = 0
            return live
        self.idle_for += 1
        if self.idle_for < self.idle_ticks:
            return live
        if not self.attracting:                  # idle timeout: reset the world, start attract mode
            self.attracting = True
            return Commands(camera=CameraCommand(reset=True, mode="walk"), time=TimeCommand(jump_fraction=0.0))
        return dataclasses.replace(self.attract.poll(), app=live.app)     # the HUD and help toggles work


def _is_idle(cmds: Commands) -> bool:
    """No visitor intent: app toggles such as a screenshot do not count, quit is handled apart."""
    return dataclasses.replace(cmds, app=AppCommand()) == Commands()


class LoopedInputLog:
    """A recorded run's inputs.jsonl played over and over, one tick per poll() (attract mode)."""

    def __init__(self, path):
        from controllers.scripted import InputLogReplayer
        self.log = InputLogReplayer(path)
        self.tick = 0

    def poll(self) -> Commands:
        cmds = self.log.commands_for(self.tick % (self.log.last_tick + 1 or 1))
        self.tick += 1
        return cmds
