"""The reprojecting display (runtime/display.py) through the engine: the headless GL path draws the
world, a scripted camera reaches the screen at the display's rate with its pose exact at present
time, a reprojected session's recording replays to the same frames, and a real window under Xvfb
shows the world (screenshot checked)."""
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from controllers.commands import AppCommand, CameraCommand, Commands
from model.refiners import GeometryRefiner
from runtime.config import load_config
from runtime.display import SOFTWARE_RENDER_SCALE, Display, resolve_render_scale
from runtime.present import HeadlessPresenter, HudState
from runtime.recorder import Recorder, load_displayed
from runtime.scripts import TimedInputs, load_script
from runtime.session import Session, scene_scale
from scenes.config import SampleConfig
from scenes.sample import SampleRenderer, build_sample_scene
from tests.reliability import decoded_frames

REPO = Path(__file__).resolve().parents[2]
W, H = 208, 120
CFG = SampleConfig(frames=12, fps=24.0, seed=0)


@pytest.fixture(scope="module")
def sample():
    return build_sample_scene(CFG, W, H)


def psnr(a, b) -> float:
    err = a.astype(np.float64) - b.astype(np.float64)
    return 10 * math.log10(255.0 ** 2 / max(float(np.mean(err ** 2)), 1e-9))


def test_the_headless_gl_path_draws_the_world(sample, tmp_path):
    """At a source camera the displayed frame is the source frame; a step aside matches the exact
    render of the sample scene from there. Frames are read back one frame late, each with its own
    pixels; the last one when the presenter closes."""
    presenter = HeadlessPresenter(tmp_path, 60.0, W, H)
    display = Display(presenter, sample, scale=scene_scale(sample), render_scale=1.0)
    read = []
    c2w = sample.c2w[4].double().numpy()
    aside = c2w @ np.array([[1, 0, 0, 0.25], [0, 1, 0, 0], [0, 0, 1, 0.1], [0, 0, 0, 1.0]])
    try:
        display.show(c2w, 4, None, HudState(visible=False), on_read=read.append)
        assert read == [] and presenter.frames_presented == 0
        display.show(aside, 4, None, HudState(visible=False), on_read=read.append)
        assert len(read) == 1 and np.array_equal(read[0], sample.frames[4].numpy())
    finally:
        display.release()
        presenter.close()
    with SampleRenderer(W, H, CFG.seed) as renderer:
        truth, _ = renderer.render(aside, 4 / CFG.fps, sample.K[4].numpy())
    assert len(read) == 2 and psnr(read[1], truth) > 24.0      # every pixel, holes and border filled
    assert presenter.frames_presented == 2


def test_a_render_scale_draws_fewer_pixels_and_scales_them_up(sample, tmp_path):
    """At half the size the world is drawn at 104 x 60 and shown at 208 x 120: at a source camera
    and a step aside, close to the full-size frames (softer, the same places)."""
    c2w = sample.c2w[4].double().numpy()
    aside = c2w @ np.array([[1, 0, 0, 0.25], [0, 1, 0, 0], [0, 0, 1, 0.1], [0, 0, 0, 1.0]])
    frames = {}
    for render_scale in (1.0, 0.5):
        presenter = HeadlessPresenter(tmp_path / str(render_scale), 60.0, W, H)
        display = Display(presenter, sample, scale=scene_scale(sample), render_scale=render_scale)
        try:
            assert display.view.drawn_size == (round(W * render_scale), round(H * render_scale))
            with display.ctx:
                frames[render_scale] = []
                for pose in (c2w, aside):
                    display._draw(pose, 4, None)
                    frames[render_scale].append(display.view.read().copy())     # [H, W, 3]
        finally:
            display.release()
            presenter.close()
    source = sample.frames[4].numpy()
    assert psnr(frames[0.5][0], source) > 22.0 and psnr(frames[0.5][1], frames[1.0][1]) > 22.0
    shifted = np.roll(frames[0.5][0], 2, axis=1)                        # two pixels off: clearly worse
    assert psnr(shifted, source) < psnr(frames[0.5][0], source) - 3.0


def test_play_draws_at_the_render_scale_it_is_given(tmp_path, cache):
    """The user's command with `--set runtime.render_scale=0.5`: play says and records the scale, and
    its video keeps the display size, softer than the same play at full size but the same picture."""
    from tests.reliability import cache_flags, cache_overrides, run_roam
    scenes = load_config(overrides=cache_overrides(cache)).scenes
    first = {}
    for render_scale in ("1", "0.5"):
        out = tmp_path / render_scale
        done = run_roam("play", "--headless", "--seconds", "0.5", "--out", str(out), *cache_flags(cache),
                        "--set", f"runtime.render_scale={render_scale}")
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"render scale {render_scale}" in done.stderr
        assert json.loads((out / "telemetry.json").read_text())["run"]["render_scale"] == float(render_scale)
        with av.open(str(out / "video.mp4")) as container:
            first[render_scale] = next(container.decode(video=0)).to_ndarray(format="rgb24")     # [H, W, 3]
    assert first["0.5"].shape == first["1"].shape == (scenes.height, scenes.width, 3)
    assert 22.0 < psnr(first["0.5"], first["1"]) < 40.0


def test_auto_render_scale_is_full_size_on_a_gpu_and_smaller_on_a_software_renderer():
    assert resolve_render_scale("auto", "NVIDIA H100 80GB HBM3/PCIe/SSE2") == 1.0
    assert resolve_render_scale("auto", "llvmpipe (LLVM 15.0.6, 256 bits)") == SOFTWARE_RENDER_SCALE < 1.0
    assert resolve_render_scale(0.5, "NVIDIA H100 80GB HBM3/PCIe/SSE2") == 0.5


def walk() -> TimedInputs:
    """Held input that changes every 0.2 s: forward, turn right, strafe left, stop, ..."""
    segments = ((0.0, 0.2, CameraCommand(move=(0.0, 0.0, 1.0))), (0.2, 0.4, CameraCommand(look=(1.0, 0.0))),
                (0.4, 0.6, CameraCommand(move=(-1.0, 0.0, 0.0))), (0.6, 0.8, CameraCommand()),
                (0.8, 1.0, CameraCommand(move=(0.0, 0.0, -1.0), look=(-0.5, 0.0))))
    return TimedInputs(segments, 1.0, 60.0)


def run_display(sample, out, *, inputs=(), script=None, shown=None, record=False, seconds=1.0, overrides=()):
    cfg = load_config(overrides=list(overrides))
    presenter = HeadlessPresenter(out, cfg.runtime.display_hz, W, H)
    display = Display(presenter, sample, scale=scene_scale(sample))
    recorder = Recorder(out / "recording", cfg.runtime.display_hz, W, H) if record else None
    if recorder is not None:                             # keep the displayed frames (x264 may encode
        recorder.shown = []                              # equal frames to different bits)
        log = recorder.log_frame
        recorder.log_frame = lambda frame, *a, **k: (recorder.shown.append(frame.numpy().copy()), log(frame, *a, **k))
    session = Session(cfg, sample, GeometryRefiner(), presenter, device=torch.device("cpu"), inputs=inputs,
                      script=script, recorder=recorder, frame_locked=True, max_frames=round(seconds * cfg.runtime.loop.fps),
                      display=display, live_content=True, shown=shown)
    return session, session.run(), recorder


def test_a_scripted_camera_reaches_the_screen_at_the_display_rate_with_its_pose_exact(sample, tmp_path):
    session, summary, _ = run_display(sample, tmp_path, inputs=[walk()])
    display = summary["display"]
    assert display["frames"] == 60 and display["fps"] == pytest.approx(60.0) and display["gaps"] == 0
    assert summary["frames_presented"] == 24                       # content still at 24 fps
    photon = summary["control_to_photon_ms"]
    assert photon["n"] >= 4 and photon["max"] <= 1000 / 60 + 1e-6  # every change on the next displayed frame
    assert summary["content_latency_ms"]["p50"] > photon["p50"]     # content comes through the jitter buffer
    error = summary["pose_error"]
    assert error["translation"]["n"] >= 55 and error["translation"]["max"] < 1e-9
    assert error["rotation_deg"]["max"] < 1e-4
    assert not np.allclose(session.rig.c2w(), sample.c2w[0].double().numpy()), "the walk must move the camera"


def test_walking_up_to_a_crate_shows_what_is_there(sample, tmp_path):
    """Run forward looking down for a second, up to a crate: every displayed frame against the exact
    view from its pose at its world time. The source frames see the crate and the floor from far and
    from elsewhere: a surface seen more squarely than by any camera must not crack (the last frames,
    nearest), and the floor a source camera saw behind the crate must not cover the crate's front
    that another one saw (a wedge of floor over the crate, 21 dB), nor carry the crate's colour from
    across its edge (dotted lines on the floor). Then the same take replayed through `play --script`
    and recorded, as a user replays a recorded run."""
    run_down = TimedInputs(((0.0, 1.0, CameraCommand(move=(0.0, 0.0, 1.0), look=(0.0, -0.6), run=True)),), 1.0, 60.0)
    _, _, recorder = run_display(sample, tmp_path, inputs=[run_down], record=True)
    shown = load_displayed(tmp_path / "recording")
    with SampleRenderer(W, H, CFG.seed) as renderer:
        exact = [renderer.render(c2w, k / CFG.fps)[0] for c2w, k in zip(shown.c2w, shown.content)]
    frames = recorder.shown
    assert len(frames) == len(exact) == 60
    db = np.array([psnr(f, x) for f, x in zip(frames, exact)])
    off = [(np.abs(f.astype(int) - x).max(-1) > 64)[:-20].mean() for f, x in zip(frames, exact)]   # above the unseen border
    assert db.min() > 22.5 and max(off) < 0.03, (db.min(), max(off))
    assert db[-10:].mean() > 24.5, db[-10:]
    moved = shown.c2w[-1, :3, 3] - shown.c2w[0, :3, 3]
    assert np.linalg.norm(moved) > 0.5 * scene_scale(sample) and shown.c2w[-1, 1, 2] > 0.3, "the run must go forward looking down"
    # the user's command: that take replayed by `play --script`, recorded, its video against the exact views
    from tests.reliability import run_roam
    scene = [f"scenes.width={W}", f"scenes.height={H}", f"scenes.sample.frames={CFG.frames}",
             f"scenes.cache_dir={tmp_path / 'cache'}"]
    done = run_roam("play", "--headless", "--script", str(tmp_path / "recording"), "--record", "--out",
                    str(tmp_path / "replay"), *[arg for setting in scene for arg in ("--set", setting)])
    assert done.returncode == 0, done.stderr[-2000:]
    replayed = load_displayed(tmp_path / "replay" / "recording")
    np.testing.assert_array_equal(replayed.c2w, shown.c2w)
    with av.open(str(tmp_path / "replay" / "recording" / "video.mp4")) as container:
        video = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]          # [H, W, 3] each
    assert len(video) == 60 and min(psnr(f, x) for f, x in zip(video, exact)) > 22.5     # the wedge: 21.0


def test_a_reprojected_session_replays_to_the_same_frames(sample, tmp_path):
    _, _, first = run_display(sample, tmp_path / "a", inputs=[walk()], record=True, seconds=0.5)
    recording = tmp_path / "a" / "recording"
    shown = load_displayed(recording)
    assert shown is not None and len(shown) == 30                  # display rate: 0.5 s at 60 Hz
    _, summary, replay = run_display(sample, tmp_path / "b", script=load_script(recording, sample.c2w), shown=shown,
                                     record=True, seconds=0.5)
    assert summary["pose_error"]["translation"]["n"] == 0          # a replay has no user's camera to miss
    assert len(first.shown) == len(replay.shown) == 30
    assert all(np.array_equal(x, y) for x, y in zip(first.shown, replay.shown))
    assert not np.array_equal(first.shown[0], first.shown[-1]), "the recorded run must actually move"
    replayed = load_displayed(tmp_path / "b" / "recording")
    np.testing.assert_array_equal(replayed.c2w, shown.c2w)
    np.testing.assert_array_equal(replayed.content, shown.content)


class PressRecord:
    """Walks forward and presses the record key at the given ticks."""

    def __init__(self, ticks: set[int]):
        self.ticks, self.tick = ticks, 0

    def poll(self) -> Commands:
        cmds = Commands(camera=CameraCommand(move=(0.0, 0.0, 1.0)), app=AppCommand(toggle_record=self.tick in self.ticks))
        self.tick += 1
        return cmds


def test_a_recording_stopped_mid_session_keeps_every_frame_it_showed(sample, tmp_path):
    """Frames are read back one frame late: stopping the recording hands it the last one first."""
    cfg = load_config()
    presenter = HeadlessPresenter(tmp_path, cfg.runtime.display_hz, W, H)
    made = []

    def new_recorder() -> Recorder:
        made.append(Recorder(tmp_path / "recording", cfg.runtime.display_hz, W, H))
        return made[-1]
    session = Session(cfg, sample, GeometryRefiner(), presenter, device=torch.device("cpu"), inputs=[PressRecord({6, 24})],
                      new_recorder=new_recorder, frame_locked=True, max_frames=round(cfg.runtime.loop.fps),
                      display=Display(presenter, sample, scale=scene_scale(sample)), live_content=True)
    summary = session.run()
    assert summary["display"]["frames"] == 60 and len(made) == 1 and made[0].closed
    rows = json.loads((tmp_path / "recording" / "poses.json").read_text())["frames"]
    assert 15 <= len(rows) <= 20 and decoded_frames(tmp_path / "recording" / "video.mp4") == len(rows)
    assert rows[0]["c2w"] != rows[-1]["c2w"], "the recorded run must move"


@pytest.fixture
def xvfb():
    """A virtual X server for a real window; skipped where Xvfb is not installed."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install -y xvfb)")
    display = f":{90 + os.getpid() % 500}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket = Path(f"/tmp/.X11-unix/X{display[1:]}")
    deadline = time.time() + 10
    while not socket.exists() and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_window_under_xvfb_shows_the_world(sample, tmp_path, xvfb, monkeypatch):
    """A real X window: the display draws into it, and its screenshot shows the scene (the source
    frame at its own camera; the exact render's view from a step aside), not a black or stale buffer."""
    import pygame
    from runtime.present import WindowPresenter
    monkeypatch.setenv("DISPLAY", xvfb)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    pygame.display.quit()                                # an earlier test may hold the dummy driver
    window = WindowPresenter(W, H, out_dir=tmp_path)
    display = Display(window, sample, scale=scene_scale(sample), render_scale=1.0)
    c2w = sample.c2w[4].double().numpy()
    aside = c2w @ np.array([[1, 0, 0, 0.25], [0, 1, 0, 0], [0, 0, 1, 0.1], [0, 0, 0, 1.0]])
    shots = []
    try:
        for pose in (c2w, aside):
            display.show(pose, 4, None, HudState(visible=False))
            path = window.save_screenshot()
            shots.append(pygame.surfarray.array3d(pygame.image.load(str(path))).transpose(1, 0, 2))   # [H, W, 3]
    finally:
        display.release()
        window.close()
    with SampleRenderer(W, H, CFG.seed) as renderer:
        truth, _ = renderer.render(aside, 4 / CFG.fps, sample.K[4].numpy())
    assert shots[0].shape == (H, W, 3)
    assert psnr(shots[0], sample.frames[4].numpy()) > 40.0
    assert psnr(shots[1], truth) > 24.0


def test_play_runs_in_a_window_under_xvfb(tmp_path, xvfb):
    """`main.py play` with a display: a window session whose frames come from the GL display path."""
    out = tmp_path / "play"
    env = {**os.environ, "DISPLAY": xvfb, "SDL_VIDEODRIVER": "x11", "SDL_AUDIODRIVER": "dummy"}
    cmd = [sys.executable, "main.py", "play", "--seconds", "1", "--out", str(out),
           "--set", "scenes.width=208", "--set", "scenes.height=120", "--set", "scenes.sample.frames=12",
           "--set", f"scenes.cache_dir={tmp_path / 'cache'}", "--set", "scenes.fusion.enabled=false"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "window session" in proc.stderr and "from the camera at present time" in proc.stderr
    import json
    summary = json.loads((out / "telemetry.json").read_text())["summary"]
    assert summary["display"]["frames"] >= 10 and summary["frames_presented"] >= 20


def test_generated_frames_are_warped_from_the_camera_they_were_made_for(tmp_path):
    """With a model refiner (the tiny DiT, random weights) each block carries its render's depth;
    the display shows every generated frame from its own camera, where it is the frame itself."""
    from tests.runtime.test_session import dit_scene, tiny_dit_refiner
    scene = dit_scene()
    cfg = load_config()
    presenter = HeadlessPresenter(tmp_path, cfg.runtime.display_hz, scene.width, scene.height)
    display = Display(presenter, scene, scale=scene_scale(scene), render_scale=1.0)
    recorder = Recorder(tmp_path / "recording", cfg.runtime.display_hz, scene.width, scene.height)
    shown, made = [], {}
    log = recorder.log_frame
    recorder.log_frame = lambda frame, *a, content, **k: (shown.append((content, frame.numpy().copy())),
                                                           log(frame, *a, content=content, **k))
    session = Session(cfg, scene, tiny_dit_refiner(scene), presenter, device=torch.device("cpu"),
                      recorder=recorder, frame_locked=True, max_frames=12, display=display)
    take = session._take_content
    session._take_content = lambda frame, info: (made.setdefault(session.frames_presented, frame.numpy().copy()),
                                                 take(frame, info))
    summary = session.run()
    assert summary["frames_presented"] == 12 and len(shown) == 30   # 0.5 s: 12 content, 30 displayed frames
    assert session.worker.with_depth
    for content, frame in shown:                                 # a still camera: the warp is the identity
        assert np.array_equal(frame, made[content])
    assert len({content for content, _ in shown}) == 12


def frame_times(path: Path) -> list[float]:
    """The presentation time of each frame of a video, in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(frame.pts * stream.time_base) for frame in container.decode(video=0)]


def test_real_time_videos_keep_the_times_frames_were_shown_when_the_display_is_slower(sample, tmp_path):
    """At display_hz 1000 no machine draws every slot: the headless video and a recording still last
    as long as the session showed frames, not (frames / 1000) seconds."""
    cfg = load_config(overrides=["runtime.display_hz=1000"])
    presenter = HeadlessPresenter(tmp_path, cfg.runtime.display_hz, W, H)
    display = Display(presenter, sample, scale=scene_scale(sample))
    recorder = Recorder(tmp_path / "recording", cfg.runtime.display_hz, W, H)
    session = Session(cfg, sample, GeometryRefiner(), presenter, device=torch.device("cpu"), inputs=[walk()],
                      recorder=recorder, frame_locked=False, max_frames=36, display=display, live_content=True)
    summary = session.run()
    shown_s = (summary["display"]["frames"] - 1) / summary["display"]["fps"]      # first to last displayed frame
    assert shown_s > 1.0 and summary["display"]["frames"] < 0.5 * 1000 * shown_s   # slower than the slots
    for path in (tmp_path / "video.mp4", tmp_path / "recording" / "video.mp4"):
        times = frame_times(path)
        assert len(times) == summary["display"]["frames"]
        assert times == sorted(times) and abs(times[-1] - times[0] - shown_s) < 0.15, (path, times, shown_s)


def test_play_realtime_writes_a_video_as_long_as_the_session_it_showed(tmp_path, cache):
    """The user's command: `play --headless --realtime --record` at a display rate no machine keeps
    (1000 Hz): video.mp4 and the recording last as long as the displayed frames took, not frames/1000 s."""
    from tests.reliability import cache_flags, run_roam
    out = tmp_path / "play"
    done = run_roam("play", "--headless", "--realtime", "--record", "--seconds", "2", "--out", str(out),
                    "--set", "runtime.display_hz=1000", *cache_flags(cache))
    assert done.returncode == 0, done.stderr[-3000:]
    display = json.loads((out / "telemetry.json").read_text())["summary"]["display"]
    shown_s = (display["frames"] - 1) / display["fps"]
    assert shown_s > 1.5 and display["frames"] < 0.5 * 1000 * shown_s
    for path in (out / "video.mp4", out / "recording" / "video.mp4"):
        times = frame_times(path)
        assert abs(times[-1] - times[0] - shown_s) < 0.15, (path, times[-1] - times[0], shown_s)
