"""What controllers emit each tick: frozen, validated commands (DESIGN.md "Commands").

Conventions (OpenCV camera axes, as everywhere in roam):
- `move` is (x right, y down, z forward), each in [-1, 1]; the rig scales it by its speed.
- `look` is (yaw, pitch) *rates* in [-1, 1] (stick, IJKL): yaw + turns right, pitch + looks up.
- `look_delta_deg` is (yaw, pitch) in degrees to turn this tick (mouse), same signs.
- `goal` is a pose to steer toward, relative to the source camera of the moment: (x right, y down,
  z forward) in scene scales and a yaw in degrees (+ right). The rig steers only while no move or
  look is held (automatic walks: runtime/walk_plan.py).
Edge-triggered fields (toggles, steps, jumps) are true only in the tick where the key or button
went down. `Commands.to_dict` / `commands_from_dict` are the one serialised form (inputs.jsonl).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

CAMERA_MODES = ("walk", "fly", "orbit", "tripod")   # Tab cycles in this order


def _check_unit(name: str, values: tuple[float, ...]) -> None:
    for v in values:
        if not (math.isfinite(v) and -1.0 <= v <= 1.0):
            raise ValueError(f"{name}: each component must be a finite number in [-1, 1], got {values}")


@dataclass(frozen=True)
class CameraCommand:
    move: tuple[float, float, float] = (0.0, 0.0, 0.0)   # x right, y down, z forward; [-1, 1]
    look: tuple[float, float] = (0.0, 0.0)               # yaw right, pitch up rates; [-1, 1]
    look_delta_deg: tuple[float, float] = (0.0, 0.0)     # mouse turn this tick (deg): yaw right, pitch up
    run: bool = False                                    # speed x run_multiplier while held
    cycle_mode: bool = False                             # walk -> fly -> orbit -> tripod -> walk
    mode: str | None = None                              # switch straight to one of CAMERA_MODES
    reset: bool = False                                  # back to the source camera
    goal: tuple[float, float, float, float] | None = None   # steer toward: x, y, z (scene scales), yaw (deg)

    def __post_init__(self):
        _check_unit("CameraCommand.move", self.move)
        _check_unit("CameraCommand.look", self.look)
        if self.goal is not None and not (len(self.goal) == 4 and all(math.isfinite(v) for v in self.goal)):
            raise ValueError(f"CameraCommand.goal must be 4 finite numbers (x, y, z, yaw), got {self.goal}")
        if not all(math.isfinite(v) for v in self.look_delta_deg):
            raise ValueError(f"CameraCommand.look_delta_deg must be finite, got {self.look_delta_deg}")
        if self.mode is not None and self.mode not in CAMERA_MODES:
            raise ValueError(f"CameraCommand.mode: {self.mode!r} is not one of {CAMERA_MODES}")


@dataclass(frozen=True)
class TimeCommand:
    toggle_pause: bool = False           # play <-> pause (pause freezes time: the source index repeats)
    speed_steps: int = 0                 # +n faster / -n slower, in steps of the clock's speed list
    reverse: bool = False                # flip the playback direction
    step: int = 0                        # move this many source frames and pause (+1 / -1 per key press)
    scrub_s: float = 0.0                 # move this many seconds of source time (+ later)
    jump_fraction: float | None = None   # jump to this point of the clip: 0 first frame, 1 last frame

    def __post_init__(self):
        if not math.isfinite(self.scrub_s):
            raise ValueError(f"TimeCommand.scrub_s must be finite, got {self.scrub_s}")
        if self.jump_fraction is not None and not 0.0 <= self.jump_fraction <= 1.0:
            raise ValueError(f"TimeCommand.jump_fraction must be in [0, 1], got {self.jump_fraction}")


@dataclass(frozen=True)
class AppCommand:
    toggle_hud: bool = False
    toggle_help: bool = False            # the key and gamepad help overlay
    toggle_fullscreen: bool = False
    screenshot: bool = False
    toggle_record: bool = False          # start / stop recording a camera run
    quit: bool = False


@dataclass(frozen=True)
class Commands:
    """Everything the controllers asked for in one tick."""
    camera: CameraCommand = field(default_factory=CameraCommand)
    time: TimeCommand = field(default_factory=TimeCommand)
    app: AppCommand = field(default_factory=AppCommand)

    @property
    def is_idle(self) -> bool:
        return self == IDLE

    def to_dict(self) -> dict:
        """Plain data with only the non-default fields (one line of inputs.jsonl stays short)."""
        out = {}
        for name, default in (("camera", CameraCommand()), ("time", TimeCommand()), ("app", AppCommand())):
            part = getattr(self, name)
            diff = {f.name: _plain(getattr(part, f.name)) for f in dataclasses.fields(part)
                    if getattr(part, f.name) != getattr(default, f.name)}
            if diff:
                out[name] = diff
        return out


IDLE = Commands()


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def commands_from_dict(raw: dict) -> Commands:
    """Inverse of `Commands.to_dict`; unknown sections or fields are errors (ValueError)."""
    parts = {"camera": CameraCommand, "time": TimeCommand, "app": AppCommand}
    if not isinstance(raw, dict) or raw.keys() - parts.keys():
        raise ValueError(f"commands: expected a mapping with some of {sorted(parts)}, got {raw!r}")
    kwargs = {}
    for name, cls in parts.items():
        fields = raw.get(name, {})
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(fields, dict) or (unknown := fields.keys() - known):
            raise ValueError(f"commands.{name}: unknown fields {sorted(unknown) if isinstance(fields, dict) else fields!r}; "
                             f"expected some of {sorted(known)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        try:
            kwargs[name] = cls(**values)
        except TypeError as err:
            raise ValueError(f"commands.{name}: {err}") from err
    return Commands(**kwargs)


def _clamp(x: float) -> float:
    return max(-1.0, min(1.0, x))


def merge(*items: Commands) -> Commands:
    """Combine the commands of several devices in one tick (keyboard + gamepad): axes add and
    clamp to [-1, 1], flags OR, counts add, the first given mode / jump / goal wins."""
    cams, times, apps = [c.camera for c in items], [c.time for c in items], [c.app for c in items]
    camera = CameraCommand(
        move=tuple(_clamp(sum(c.move[i] for c in cams)) for i in range(3)),
        look=tuple(_clamp(sum(c.look[i] for c in cams)) for i in range(2)),
        look_delta_deg=tuple(sum(c.look_delta_deg[i] for c in cams) for i in range(2)),
        run=any(c.run for c in cams), cycle_mode=any(c.cycle_mode for c in cams),
        mode=next((c.mode for c in cams if c.mode is not None), None), reset=any(c.reset for c in cams),
        goal=next((c.goal for c in cams if c.goal is not None), None))
    time = TimeCommand(
        toggle_pause=sum(t.toggle_pause for t in times) % 2 == 1,   # two pause presses cancel out
        speed_steps=sum(t.speed_steps for t in times), reverse=sum(t.reverse for t in times) % 2 == 1,
        step=sum(t.step for t in times), scrub_s=sum(t.scrub_s for t in times),
        jump_fraction=next((t.jump_fraction for t in times if t.jump_fraction is not None), None))
    app = AppCommand(**{f.name: any(getattr(a, f.name) for a in apps) for f in dataclasses.fields(AppCommand)})
    return Commands(camera=camera, time=time, app=app)
