"""Config of the input devices (section `controllers` of config.yaml).

Key names are pygame's (`pygame.key.name`: "w", "left shift", "page up", "[", ...); the keyboard
checks them against pygame when it is built. Gamepad bindings name logical buttons (PAD_BUTTONS),
and each backend's layout maps its raw axes and buttons onto them.
"""
from dataclasses import dataclass, field, fields
from typing import ClassVar

# Logical gamepad buttons (Xbox names; a PlayStation pad's cross is "a", circle "b", square "x").
PAD_BUTTONS = ("a", "b", "x", "y", "lb", "rb", "back", "start", "guide", "ls", "rs",
               "dpad_up", "dpad_down", "dpad_left", "dpad_right")


def _check_bindings(obj, allowed: tuple[str, ...] | None) -> None:
    owner: dict[str, str] = {}
    for f in fields(obj):
        names = getattr(obj, f.name)
        bad = [n for n in names if not isinstance(n, str) or not n or (allowed and n not in allowed)]
        if bad:
            hint = f"; expected some of {list(allowed)}" if allowed else ""
            raise ValueError(f"{f.name}: bad names {bad}{hint}")
        for n in names:
            if n in owner:
                raise ValueError(f"{f.name}: {n!r} is already bound to {owner[n]}; unbind it there first")
            owner[n] = f.name


@dataclass(frozen=True)
class KeyBindings:
    """Action -> pygame key names. Held: move/look/run. The rest act when the key goes down."""
    move_forward: tuple[str, ...] = ("w", "up")
    move_back: tuple[str, ...] = ("s", "down")
    move_left: tuple[str, ...] = ("a", "left")
    move_right: tuple[str, ...] = ("d", "right")
    move_down: tuple[str, ...] = ("q",)
    move_up: tuple[str, ...] = ("e",)
    look_left: tuple[str, ...] = ("j",)
    look_right: tuple[str, ...] = ("l",)
    look_up: tuple[str, ...] = ("i",)
    look_down: tuple[str, ...] = ("k",)
    run: tuple[str, ...] = ("left shift", "right shift")
    pause: tuple[str, ...] = ("space",)
    speed_up: tuple[str, ...] = ("]",)
    speed_down: tuple[str, ...] = ("[",)
    reverse: tuple[str, ...] = ("backspace",)
    step_back: tuple[str, ...] = (",",)
    step_forward: tuple[str, ...] = (".",)
    scrub_back: tuple[str, ...] = ("page down",)
    scrub_forward: tuple[str, ...] = ("page up",)
    jump_start: tuple[str, ...] = ("home",)
    jump_end: tuple[str, ...] = ("end",)
    cycle_mode: tuple[str, ...] = ("tab",)
    reset: tuple[str, ...] = ("r",)
    hud: tuple[str, ...] = ("h",)
    help: tuple[str, ...] = ("?", "f1")
    fullscreen: tuple[str, ...] = ("f",)
    screenshot: tuple[str, ...] = ("p",)
    record: tuple[str, ...] = ("c",)
    quit: tuple[str, ...] = ("escape",)

    def __post_init__(self):
        _check_bindings(self, None)


@dataclass(frozen=True)
class PadButtons:
    """Action -> logical gamepad buttons (PAD_BUTTONS). Sticks and triggers are fixed: left stick
    moves, right stick looks, left/right trigger move down/up."""
    run: tuple[str, ...] = ("ls",)
    pause: tuple[str, ...] = ("a",)
    reverse: tuple[str, ...] = ("b",)
    step_forward: tuple[str, ...] = ("x", "dpad_up")
    step_back: tuple[str, ...] = ("dpad_down",)
    reset: tuple[str, ...] = ("y",)
    speed_down: tuple[str, ...] = ("lb",)
    speed_up: tuple[str, ...] = ("rb",)
    scrub_back: tuple[str, ...] = ("dpad_left",)
    scrub_forward: tuple[str, ...] = ("dpad_right",)
    cycle_mode: tuple[str, ...] = ("back",)
    hud: tuple[str, ...] = ("start",)

    def __post_init__(self):
        _check_bindings(self, PAD_BUTTONS)


@dataclass(frozen=True)
class JoystickLayout:
    """pygame (SDL joystick API) axis and button indices; defaults are an Xbox pad on Linux."""
    left_x: int = 0
    left_y: int = 1
    right_x: int = 3
    right_y: int = 4
    left_trigger: int = 2
    right_trigger: int = 5
    triggers_signed: bool = True       # SDL reports triggers in [-1, 1] with -1 released
    dpad_hat: int = 0                  # hat index of the d-pad
    buttons: tuple[str, ...] = ("a", "b", "x", "y", "lb", "rb", "back", "start", "guide", "ls", "rs")  # by index

    RANGES: ClassVar[dict] = {name: (0, 255, "an SDL axis or hat index") for name in (
        "left_x", "left_y", "right_x", "right_y", "left_trigger", "right_trigger", "dpad_hat")}

    def __post_init__(self):
        if bad := [b for b in self.buttons if b not in PAD_BUTTONS]:
            raise ValueError(f"buttons: unknown names {bad}; expected some of {list(PAD_BUTTONS)}")


@dataclass(frozen=True)
class EvdevLayout:
    """`inputs` package event codes. Some Linux xpad versions report X/Y as BTN_NORTH/BTN_WEST: swap x and y."""
    left_x: str = "ABS_X"
    left_y: str = "ABS_Y"
    right_x: str = "ABS_RX"
    right_y: str = "ABS_RY"
    left_trigger: str = "ABS_Z"
    right_trigger: str = "ABS_RZ"
    dpad_x: str = "ABS_HAT0X"
    dpad_y: str = "ABS_HAT0Y"
    stick_max: float = 32767.0         # raw stick value at full deflection
    trigger_max: float = 255.0         # raw trigger value fully pressed (1023 on some pads)
    a: str = "BTN_SOUTH"
    b: str = "BTN_EAST"
    x: str = "BTN_WEST"
    y: str = "BTN_NORTH"
    lb: str = "BTN_TL"
    rb: str = "BTN_TR"
    back: str = "BTN_SELECT"
    start: str = "BTN_START"
    guide: str = "BTN_MODE"
    ls: str = "BTN_THUMBL"
    rs: str = "BTN_THUMBR"

    RANGES: ClassVar[dict] = {"stick_max": (1, 2**31, "the raw value of a full stick"),
                              "trigger_max": (1, 2**31, "the raw value of a full trigger")}

    def button_codes(self) -> dict[str, str]:
        """Raw code -> logical button name."""
        return {getattr(self, name): name for name in PAD_BUTTONS if not name.startswith("dpad")}


@dataclass(frozen=True)
class GamepadConfig:
    backend: str = "pygame"            # pygame (needs the window's event loop) | inputs (headless/kiosk) | none
    stick_deadzone: float = 0.15       # radial: stick deflection below this reads as centred
    trigger_deadzone: float = 0.05     # trigger travel below this reads as released
    invert_look_y: bool = False        # push the right stick up to look down
    look_scale: float = 1.0            # right-stick look rate multiplier
    reconnect_s: float = 1.0           # inputs backend: seconds between reconnect tries while unplugged
    buttons: PadButtons = field(default_factory=PadButtons)
    joystick: JoystickLayout = field(default_factory=JoystickLayout)
    evdev: EvdevLayout = field(default_factory=EvdevLayout)

    RANGES: ClassVar[dict] = {
        "stick_deadzone": (0, 0.99, "a share of the stick's travel"),
        "trigger_deadzone": (0, 0.99, "a share of the trigger's travel"),
        "look_scale": (0, 100, "a rate multiplier"), "reconnect_s": (0.01, 3600, "seconds between tries"),
    }

    def __post_init__(self):
        if self.backend not in ("pygame", "inputs", "none"):
            raise ValueError(f"backend: {self.backend!r} is not one of pygame, inputs, none")
        for name in ("stick_deadzone", "trigger_deadzone"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class ControllersConfig:
    mouse_look: bool = True            # hold the left mouse button and drag to look around
    mouse_sensitivity_deg: float = 0.15  # degrees of look per pixel of mouse motion
    invert_mouse_y: bool = False       # drag up to look down
    scrub_step_s: float = 1.0          # seconds of source time per scrub key or d-pad press
    keys: KeyBindings = field(default_factory=KeyBindings)
    gamepad: GamepadConfig = field(default_factory=GamepadConfig)

    RANGES: ClassVar[dict] = {"mouse_sensitivity_deg": (0, 100, "degrees per pixel of mouse motion"),
                              "scrub_step_s": (0, 3600, "seconds of source time")}
