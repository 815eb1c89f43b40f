"""The key and gamepad help (window overlay, play --help) is generated from the bindings."""
import dataclasses
import subprocess
import sys
from pathlib import Path

from controllers.config import ControllersConfig, KeyBindings, PadButtons
from controllers.help import ACTIONS, help_rows
from controllers.keyboard import PygameKeyboard
from runtime.config import load_config

REPO = Path(__file__).resolve().parents[2]


def test_every_binding_has_a_row():
    keys = {f for _, fields, _ in ACTIONS for f in fields}
    pads = {f for _, _, pad in ACTIONS if not isinstance(pad, str) for f in pad}
    assert keys == {f.name for f in dataclasses.fields(KeyBindings)}
    assert pads == {f.name for f in dataclasses.fields(PadButtons)}


def test_a_rebinding_changes_the_help():
    cfg = load_config(overrides=["controllers.keys.reset=[t]", "controllers.gamepad.buttons.reset=[start]",
                                 "controllers.gamepad.buttons.hud=[y]"])
    rows = {action: (keys, pad) for keys, pad, action in help_rows(cfg.controllers)}
    assert rows["back to the video's camera"] == ("T", "Start")
    assert rows["show / hide the HUD"] == ("H", "Y")
    assert rows["show / hide this help"] == ("?, F1", "")
    assert "drag with the mouse" not in help_rows(ControllersConfig(mouse_look=False))[2][0]


def test_play_help_says_what_the_keys_do():
    out = subprocess.run([sys.executable, "main.py", "play", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=120).stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert "back to the video's camera" in rows["R"] and "recording" in rows["C"]
    assert "screenshot" in rows["P"] and "help" in rows["?,"]


def test_a_typed_question_mark_toggles_the_help(pg, pump):
    keyboard = PygameKeyboard(load_config().controllers)
    pg.event.post(pg.event.Event(pg.KEYDOWN, key=pg.K_SLASH, mod=pg.KMOD_LSHIFT, unicode="?", scancode=0))
    pump(pg, keyboard)
    assert keyboard.poll().app.toggle_help
    pg.event.post(pg.event.Event(pg.KEYDOWN, key=pg.K_F1, mod=0, unicode="", scancode=0))
    pump(pg, keyboard)
    assert keyboard.poll().app.toggle_help
