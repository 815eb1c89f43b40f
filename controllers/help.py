"""What each key and gamepad button does, generated from the bindings, for the window's help overlay
(? or F1) and `play --help`: one row per action group, so a changed binding changes the help."""
from __future__ import annotations

from controllers.config import ControllersConfig

# (what it does, the KeyBindings fields, the PadButtons fields or a fixed pad control)
ACTIONS = (
    ("move forward / left / back / right", ("move_forward", "move_left", "move_back", "move_right"), "left stick"),
    ("move down / up", ("move_down", "move_up"), "left / right trigger"),
    ("look left / right / up / down", ("look_left", "look_right", "look_up", "look_down"), "right stick"),
    ("run while held", ("run",), ("run",)),
    ("camera mode: walk, fly, orbit, tripod", ("cycle_mode",), ("cycle_mode",)),
    ("back to the video's camera", ("reset",), ("reset",)),
    ("pause / play time (the camera still moves)", ("pause",), ("pause",)),
    ("slower / faster", ("speed_down", "speed_up"), ("speed_down", "speed_up")),
    ("play backwards / forwards", ("reverse",), ("reverse",)),
    ("one frame back / forward", ("step_back", "step_forward"), ("step_back", "step_forward")),
    ("scrub back / forward", ("scrub_back", "scrub_forward"), ("scrub_back", "scrub_forward")),
    ("jump to the start / end", ("jump_start", "jump_end"), ()),
    ("start / stop recording a camera run", ("record",), ()),
    ("screenshot", ("screenshot",), ()),
    ("show / hide the HUD", ("hud",), ("hud",)),
    ("show / hide this help", ("help",), ()),
    ("fullscreen", ("fullscreen",), ()),
    ("quit", ("quit",), ()),
)
PAD_NAMES = {"a": "A", "b": "B", "x": "X", "y": "Y", "lb": "LB", "rb": "RB", "back": "Back", "start": "Start",
             "guide": "Guide", "ls": "left stick press", "rs": "right stick press", "dpad_up": "d-pad up",
             "dpad_down": "d-pad down", "dpad_left": "d-pad left", "dpad_right": "d-pad right"}


def key_label(name: str) -> str:
    """A pygame key name as people write it: "w" -> "W", "left shift" -> "Left Shift", "[" -> "["."""
    return name.upper() if len(name) == 1 else name.title()


def keys_text(bindings, fields: tuple[str, ...]) -> str:
    """The keys of `fields` in order, alternatives after a comma: "W A S D, Up Left Down Right"."""
    per_field = [getattr(bindings, f) for f in fields]
    alternatives = max((len(keys) for keys in per_field), default=0)
    groups = []
    for i in range(alternatives):
        labels = [key_label(keys[i]) for keys in per_field if len(keys) > i]
        groups.append((" " if all(len(label) == 1 for label in labels) else " / ").join(labels))
    return ", ".join(groups)


def pad_text(buttons, pad) -> str:
    if isinstance(pad, str):
        return pad
    per_field = [getattr(buttons, f) for f in pad]
    return " / ".join(", ".join(PAD_NAMES[b] for b in names) for names in per_field if names)


def help_rows(cfg: ControllersConfig) -> list[tuple[str, str, str]]:
    """(keys, gamepad, what it does) for every action with a key or a pad control."""
    rows = []
    for action, keys, pad in ACTIONS:
        key_text = keys_text(cfg.keys, keys)
        if keys == ("look_left", "look_right", "look_up", "look_down") and cfg.mouse_look:
            key_text += ", drag with the mouse" if key_text else "drag with the mouse"
        rows.append((key_text, pad_text(cfg.gamepad.buttons, pad), action))
    return [row for row in rows if row[0] or row[1]]


def help_text(cfg: ControllersConfig) -> str:
    """The rows as plain text columns (play --help)."""
    rows = help_rows(cfg)
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"  {k:<{widths[0]}}  {p:<{widths[1]}}  {a}" for k, p, a in rows)
