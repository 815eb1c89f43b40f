"""`main.py play` in a real window on a virtual X server (Xvfb), driven with real key presses (xdotool):
the loading screen instead of a black window, the kiosk fullscreen at the screen's resolution, the help
overlay on ?, a quick Ctrl+Alt+Q, P saving at once even when Esc follows, and no ALSA errors or pygame
banner. Skipped where Xvfb, xdotool or Pillow's X11 screen grab is missing (apt-get install xvfb xdotool)."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCREEN = (1280, 800)
TINY = ["scenes.width=208", "scenes.height=120", "scenes.sample.frames=24"]     # KEY=VALUE settings of every play here
LOADING_BG = np.array([20, 20, 25])              # WindowPresenter.show_status's background (0.08, 0.08, 0.1)
HELP_HEADER = np.array([255, 220, 120])          # the help table's "keys" column colour


@pytest.fixture(scope="module")
def display():
    if not (shutil.which("Xvfb") and shutil.which("xdotool")):
        pytest.skip("Xvfb and xdotool are not installed (apt-get install xvfb xdotool)")
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24",
                               "-nolisten", "tcp"], pass_fds=(write,), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    os.close(write)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read, 16)
        if not chunk:
            break
        number += chunk
    os.close(read)
    name = f":{number.decode().strip()}"
    try:
        from PIL import ImageGrab
        ImageGrab.grab(xdisplay=name)
    except Exception as err:            # Pillow built without XCB: no way to look at the screen
        server.terminate()
        pytest.skip(f"cannot grab the X screen with Pillow: {err}")
    yield name
    server.terminate()
    server.wait(timeout=10)


class Play:
    """A play subprocess on `display`, its stderr in a file that the test reads as it grows."""

    def __init__(self, display: str, tmp: Path, *args: str):
        self.display, self.log = display, tmp / f"stderr-{len(list(tmp.glob('stderr-*')))}.txt"
        self.window: str | None = None                           # its X window id, found on the first key
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SDL_")} | {"DISPLAY": display,
                                                                                       "PYTHONFAULTHANDLER": "1"}
        self.env.pop("PYGAME_HIDE_SUPPORT_PROMPT", None)        # the banner must be hidden by roam itself
        self.settings = [*TINY, f"scenes.cache_dir={tmp.parent / 'cache'}"]       # the config it plays with
        flags = [flag for setting in self.settings for flag in ("--set", setting)]
        self.proc = subprocess.Popen([sys.executable, "main.py", "play", *args, *flags], cwd=REPO, env=self.env,
                                     stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True)

    def stderr(self) -> str:
        return self.log.read_text()

    def grab(self) -> np.ndarray:
        from PIL import ImageGrab
        return np.asarray(ImageGrab.grab(xdisplay=self.display).convert("RGB")).astype(int)   # [H, W, 3]

    def xdotool(self, *args: str) -> None:
        """An xdotool keyboard command (key, keydown, keyup) into this play's window, which gets the
        keyboard focus first: there is no window manager to give it."""
        if self.window is None:
            self.window = subprocess.run(["xdotool", "search", "--pid", str(self.proc.pid)], env=self.env,
                                         check=True, capture_output=True, text=True).stdout.split()[-1]
        subprocess.run(["xdotool", "windowfocus", "--sync", self.window], env=self.env, check=True, timeout=10)
        subprocess.run(["xdotool", *args], env=self.env, check=True)

    def keys(self, *keys: str) -> None:
        self.xdotool("key", "--delay", "0", *keys)

    def wait_ready(self, timeout_s: float = 600) -> list[np.ndarray]:
        """Wait for the first frame; -> the screens grabbed meanwhile."""
        grabs, deadline = [], time.time() + timeout_s
        while "roam: ready in" not in self.stderr():
            assert self.proc.poll() is None and time.time() < deadline, self.stderr()[-2000:]
            grabs.append(self.grab())
            time.sleep(0.5)
        time.sleep(2.0)                                          # a few frames
        return grabs

    def wait(self, timeout_s: float = 60) -> tuple[int, str]:
        """Its exit code and output; a play still running after timeout_s fails the test with every
        thread's stack (SIGABRT: PYTHONFAULTHANDLER prints them to its stderr)."""
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
            return self.proc.returncode, out + self.stderr()
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            self.proc.communicate(timeout=30)
        pytest.fail(f"play still running {timeout_s:g} s after the keys that end it:\n{self.stderr()[-6000:]}")


@pytest.fixture
def start_play(display, tmp_path):
    """Play(display, tmp_path, *args) for the test; a play still running when the test ends is killed
    (a failed test must not leave a window drawing through the rest of the suite)."""
    plays = []

    def start(*args: str) -> Play:
        plays.append(Play(display, tmp_path, *args))
        return plays[-1]
    yield start
    for play in plays:
        if play.proc.poll() is None:
            play.proc.kill()
            play.proc.wait()


def near(image: np.ndarray, colour: np.ndarray, tol: int = 12) -> np.ndarray:
    return (np.abs(image - colour) <= tol).all(axis=-1)


def test_kiosk_loads_visibly_fills_the_screen_shows_help_and_quits_on_a_quick_ctrl_alt_q(start_play, tmp_path):
    play = start_play("--kiosk", "--out", str(tmp_path / "kiosk"))
    loading = play.wait_ready()
    assert any(near(g, LOADING_BG).sum() > 10_000 and (g.min(axis=-1) > 180).any() for g in loading), \
        "no loading screen (dark, with text) before the first frame"
    geometry = subprocess.run(["xdotool", "search", "--class", "main.py", "getwindowgeometry"], env=play.env,
                              capture_output=True, text=True).stdout
    assert f"Geometry: {SCREEN[0]}x{SCREEN[1]}" in geometry, geometry
    before = play.grab()
    assert near(before, HELP_HEADER, 30).sum() == 0
    play.keys("shift+slash")                                     # "?"
    time.sleep(2.0)
    assert near(play.grab(), HELP_HEADER, 30).sum() > 20, "no help overlay after ?"
    play.keys("ctrl+alt+q")                                      # a quick tap, not a 200 ms hold
    code, output = play.wait(timeout_s=60)
    assert code == 0, output[-2000:]
    assert "ALSA lib" not in output and "pygame community" not in output


def test_p_saves_the_screenshot_at_once_even_when_esc_follows(start_play, tmp_path):
    play = start_play("--out", str(tmp_path / "window"))
    play.wait_ready()
    play.keys("p", "Escape")
    code, output = play.wait(timeout_s=60)
    shot = tmp_path / "window" / "screenshot-0.png"
    assert code == 0 and shot.is_file(), output[-2000:]
    from PIL import Image
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape == (120, 208, 3) and image.std() > 10     # the window's frame, not a blank
    assert "ALSA lib" not in output and "pygame community" not in output


def test_c_records_a_take_that_keeps_every_frame_it_showed_and_walks_up_to_the_scene(start_play, tmp_path):
    """Recording started and stopped with C in the window: the take's video has a frame for every pose
    row (displayed frames are read back one frame late; stopping hands over the last one first). Time
    paused and Shift+W held meanwhile, the camera walks up to the surface ahead and stops
    collision_margin scene scales short of it on the shown source frame (the probe's points, the
    distance written out here: tests/runtime/test_session.nearest_ahead)."""
    import json
    from runtime.config import load_config
    from runtime.probe import DepthProbe
    from runtime.session import scene_scale
    from scenes.sample import load_sample_scene
    from tests.reliability import decoded_frames
    from tests.runtime.test_session import nearest_ahead
    play = start_play("--out", str(tmp_path / "window"))
    play.wait_ready()
    play.keys("space")
    time.sleep(1.0)                                             # the paused source frame reaches the screen
    play.keys("c")
    play.xdotool("keydown", "shift", "w")
    time.sleep(3.0)
    play.xdotool("keyup", "w", "shift")
    play.keys("c")
    time.sleep(0.5)
    play.keys("Escape")
    code, output = play.wait(timeout_s=60)
    take = tmp_path / "window" / "recording-1"
    assert code == 0 and (take / "poses.json").is_file(), output[-2000:]
    rows = json.loads((take / "poses.json").read_text())["frames"]
    assert len(rows) >= 10 and all("content" in row for row in rows)       # displayed frames, while C was on
    assert decoded_frames(take / "video.mp4") == len(rows)

    cfg = load_config(overrides=play.settings)
    scene = load_sample_scene(cfg.scenes)
    margin = cfg.runtime.rig.collision_margin * scene_scale(scene)
    probe = DepthProbe(scene, lambda: 0, body_radius=0.5 * margin)
    assert len({row["source_index"] for row in rows}) == 1                  # time paused: one source frame
    points, _ = probe.points(rows[0]["source_index"])
    c2w = np.array([row["c2w"] for row in rows])                             # [T, 4, 4]
    ahead = [nearest_ahead(points, m[:3, 3], m[:3, 2], probe.radius) for m in c2w]
    assert np.linalg.norm(c2w[-1, :3, 3] - c2w[0, :3, 3]) > margin, "the held W did not walk"
    assert min(ahead) >= margin * 0.98 and ahead[-1] <= margin * 1.05, (margin, ahead[0], ahead[-1], min(ahead))
