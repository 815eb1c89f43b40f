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
    move_forward: tuple[str, ...] = ("w", "up")  # held: move forward
    move_back: tuple[str, ...] = ("s", "down")  # held: move back
    move_left: tuple[str, ...] = ("a", "left")  # held: move left
    move_right: tuple[str, ...] = ("d", "right")  # held: move right
    move_down: tuple[str, ...] = ("q",)  # held: move down (fly), orbit down
    move_up: tuple[str, ...] = ("e",)  # held: move up (fly), orbit up
    look_left: tuple[str, ...] = ("j",)  # held: turn left
    look_right: tuple[str, ...] = ("l",)  # held: turn right
    look_up: tuple[str, ...] = ("i",)  # held: look up
    look_down: tuple[str, ...] = ("k",)  # held: look down
    run: tuple[str, ...] = ("left shift", "right shift")  # held: move faster
    pause: tuple[str, ...] = ("space",)  # play / pause (time freezes, the camera still moves)
    speed_up: tuple[str, ...] = ("]",) # next playback speed
    speed_down: tuple[str, ...] = ("[",)  # previous playback speed
    reverse: tuple[str, ...] = ("backspace",)  # play backwards / forwards
    step_back: tuple[str, ...] = (",",)  # one source frame back (pauses)
    step_forward: tuple[str, ...] = (".",)  # one source frame forward (pauses)
    scrub_back: tuple[str, ...] = ("page down",)  # scrub_step_s back
    scrub_forward: tuple[str, ...] = ("page up",)  # scrub_step_s forward
    jump_start: tuple[str, ...] = ("home",)  # jump to the first frame
    jump_end: tuple[str, ...] = ("end",)  # jump to the last frame
    cycle_mode: tuple[str, ...] = ("tab",)  # camera mode: walk -> fly -> orbit -> tripod
    reset: tuple[str, ...] = ("r",)    # camera back to the source camera
    hud: tuple[str, ...] = ("h",)      # show / hide the HUD
    help: tuple[str, ...] = ("?", "f1")  # show / hide the key and gamepad help
    fullscreen: tuple[str, ...] = ("f",)  # toggle fullscreen
    screenshot: tuple[str, ...] = ("p",)  # save the current frame as PNG
    record: tuple[str, ...] = ("c",)   # start / stop recording a camera run (OUT/recording-N/)
    quit: tuple[str, ...] = ("escape",)  # end the session

    def __post_init__(self):
        _check_bindings(self, None)


@dataclass(frozen=True)
class PadButtons:
    """Action -> logical gamepad buttons (PAD_BUTTONS). Sticks and triggers are fixed: left stick
    moves, right stick looks, left/right trigger move down/up."""
    run: tuple[str, ...] = ("ls",)     # held: move faster
    pause: tuple[str, ...] = ("a",)    # play / pause
    reverse: tuple[str, ...] = ("b",)  # play backwards / forwards
    step_forward: tuple[str, ...] = ("x", "dpad_up")  # one source frame forward (pauses)
    step_back: tuple[str, ...] = ("dpad_down",)  # one source frame back (pauses)
    reset: tuple[str, ...] = ("y",)    # camera back to the source camera
    speed_down: tuple[str, ...] = ("lb",)  # previous playback speed
    speed_up: tuple[str, ...] = ("rb",)  # next playback speed
    scrub_back: tuple[str, ...] = ("dpad_left",)  # scrub_step_s back
    scrub_forward: tuple[str, ...] = ("dpad_right",)  # scrub_step_s forward
    cycle_mode: tuple[str, ...] = ("back",)  # camera mode: walk -> fly -> orbit -> tripod
    hud: tuple[str, ...] = ("start",)  # show / hide the HUD

    def __post_init__(self):
        _check_bindings(self, PAD_BUTTONS)


@dataclass(frozen=True)
class JoystickLayout:
    """pygame (SDL joystick API) axis and button indices; defaults are an Xbox pad on Linux."""
    left_x: int = 0                    # left stick x axis (moves)
    left_y: int = 1                    # left stick y axis
    right_x: int = 3                   # right stick x axis (looks)
    right_y: int = 4                   # right stick y axis
    left_trigger: int = 2              # left trigger axis (moves down)
    right_trigger: int = 5             # right trigger axis (moves up)
    triggers_signed: bool = True       # triggers report [-1, 1] with -1 released (SDL); false: [0, 1]
    dpad_hat: int = 0                  # hat index of the d-pad
    buttons: tuple[str, ...] = ("a", "b", "x", "y", "lb", "rb", "back", "start", "guide", "ls", "rs")  # logical name of button 0, 1, ...

    RANGES: ClassVar[dict] = {name: (0, 255, "an SDL axis or hat index") for name in (
        "left_x", "left_y", "right_x", "right_y", "left_trigger", "right_trigger", "dpad_hat")}

    def __post_init__(self):
        if bad := [b for b in self.buttons if b not in PAD_BUTTONS]:
            raise ValueError(f"buttons: unknown names {bad}; expected some of {list(PAD_BUTTONS)}")


@dataclass(frozen=True)
class EvdevLayout:
    """`inputs` package event codes. Some Linux xpad versions report X/Y as BTN_NORTH/BTN_WEST: swap x and y."""
    left_x: str = "ABS_X"              # left stick x (moves)
    left_y: str = "ABS_Y"              # left stick y
    right_x: str = "ABS_RX"            # right stick x (looks)
    right_y: str = "ABS_RY"            # right stick y
    left_trigger: str = "ABS_Z"        # left trigger (moves down)
    right_trigger: str = "ABS_RZ"      # right trigger (moves up)
    dpad_x: str = "ABS_HAT0X"          # d-pad left/right
    dpad_y: str = "ABS_HAT0Y"          # d-pad up/down
    stick_max: float = 32767.0         # raw stick value at full deflection
    trigger_max: float = 255.0         # raw trigger value fully pressed (1023 on some pads)
    a: str = "BTN_SOUTH"               # bottom face button
    b: str = "BTN_EAST"                # right face button
    x: str = "BTN_WEST"                # left face button
    y: str = "BTN_NORTH"               # top face button
    lb: str = "BTN_TL"                 # left bumper
    rb: str = "BTN_TR"                 # right bumper
    back: str = "BTN_SELECT"           # back / select / view
    start: str = "BTN_START"           # start / menu
    guide: str = "BTN_MODE"            # guide / home
    ls: str = "BTN_THUMBL"             # left stick press
    rs: str = "BTN_THUMBR"             # right stick press

    RANGES: ClassVar[dict] = {"stick_max": (1, 2**31, "the raw value of a full stick"),
                              "trigger_max": (1, 2**31, "the raw value of a full trigger")}

    def button_codes(self) -> dict[str, str]:
        """Raw code -> logical button name."""
        return {getattr(self, name): name for name in PAD_BUTTONS if not name.startswith("dpad")}


@dataclass(frozen=True)
class GamepadConfig:
    backend: str = "pygame"            # pygame (window event loop) | inputs (headless/kiosk, no window) | none
    stick_deadzone: float = 0.15       # radial: stick deflection below this reads as centred
    trigger_deadzone: float = 0.05     # trigger travel below this reads as released
    invert_look_y: bool = False        # push the right stick up to look down
    look_scale: float = 1.0            # right-stick look rate multiplier
    reconnect_s: float = 1.0           # inputs backend: seconds between reconnect tries while unplugged
    buttons: PadButtons = field(default_factory=PadButtons)  # action: [logical buttons] (a b x y lb rb back start guide ls rs dpad_up/down/left/right)
    joystick: JoystickLayout = field(default_factory=JoystickLayout)  # pygame (SDL joystick) indices; defaults: an Xbox pad on Linux
    evdev: EvdevLayout = field(default_factory=EvdevLayout)  # inputs package event codes (swap x and y if your pad reports them swapped)

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
    scrub_step_s: float = 1.0          # seconds of source time per scrub key (Page Up/Down) or d-pad press
    keys: KeyBindings = field(default_factory=KeyBindings)  # action: [pygame key names] (pygame.key.name); held keys move and look
    gamepad: GamepadConfig = field(default_factory=GamepadConfig)

    RANGES: ClassVar[dict] = {"mouse_sensitivity_deg": (0, 100, "degrees per pixel of mouse motion"),
                              "scrub_step_s": (0, 3600, "seconds of source time")}
