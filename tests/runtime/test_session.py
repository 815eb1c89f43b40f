"""The engine end to end on a small synthetic scene: keyboard events move the camera, the clock
drives source indices, recordings replay exactly, and the CLI writes a decodable video."""
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pygame
import pytest
import torch

from benchmarks import perf_report
from controllers.keyboard import PygameKeyboard
from model.refiners import GeometryRefiner
from runtime.config import load_config
from runtime.display import resolve_render_scale
from runtime.present import HeadlessPresenter
from runtime.recorder import Recorder, load_recorded_poses
from runtime.scripts import load_script
from runtime.session import Session
from scenes.scene import Scene

REPO = Path(__file__).resolve().parents[2]
H, W, N = 48, 80, 10


def plane_scene() -> Scene:
    """A textured plane 3 units in front of a static camera; frame i has a stripe at column 4i."""
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 255, (N, H, W, 3), generator=g, dtype=torch.uint8)
    for i in range(N):
        frames[i, :, 4 * i:4 * i + 3] = 255
    K = torch.tensor([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]]).expand(N, 3, 3).clone()
    return Scene(frames=frames, depth=torch.full((N, H, W), 3.0), K=K,
                 c2w=torch.eye(4).expand(N, 4, 4).clone(), fps=24.0, caption="plane")


def run_session(tmp_path, inputs=(), sinks=(), script=None, record=False, frames=24, overrides=()):
    cfg = load_config(overrides=["runtime.clock.ends=loop", *overrides])
    scene = plane_scene()
    presenter = HeadlessPresenter(tmp_path / "out", cfg.runtime.loop.fps, W, H)
    recorder = Recorder(tmp_path / "out" / "recording", cfg.runtime.loop.fps, W, H) if record else None
    session = Session(cfg, scene, GeometryRefiner(), presenter, device=torch.device("cpu"), inputs=inputs,
                      event_sinks=sinks, script=script, recorder=recorder, frame_locked=True, max_frames=frames)
    poses = []
    present = session._present
    session._present = lambda frame, info: (poses.append((info.source_index, info.c2w.copy(), frame.clone())),
                                            present(frame, info))
    summary = session.run()
    return session, poses, summary


def dit_scene(h: int = 64, w: int = 96) -> Scene:
    """A random-texture scene of N frames for the tiny DiT (a plane 3 units away, still cameras)."""
    g = torch.Generator().manual_seed(1)
    K = torch.tensor([[80.0, 0, w / 2], [0, 80.0, h / 2], [0, 0, 1]]).expand(N, 3, 3).clone()
    return Scene(frames=torch.randint(0, 255, (N, h, w, 3), generator=g, dtype=torch.uint8),
                 depth=torch.full((N, h, w), 3.0), K=K, c2w=torch.eye(4).expand(N, 4, 4).clone(), fps=24.0)


def tiny_dit_refiner(scene: Scene):
    """The tiny DiT with TAEHV, random weights, fixed seeds: the same frames for the same requests."""
    from model.config import ModelConfig
    from model.dit import DiTConfig
    from model.dit_refiner import random_dit_refiner
    return random_dit_refiner(ModelConfig(use_tae=True, seed=7), "cpu", (scene.height // 8, scene.width // 8), seed=1,
                              dit_cfg=DiTConfig.tiny())


@contextlib.contextmanager
def keys_down(*keys):
    """A dummy-driver pygame display with KEYDOWN events posted for `keys`; yields the keyboard."""
    pygame.display.init()
    pygame.display.set_mode((W, H))
    try:
        keyboard = PygameKeyboard(load_config().controllers)
        for key in keys:
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))
        yield keyboard
    finally:
        pygame.display.quit()


def test_a_held_w_key_event_walks_the_camera_forward(tmp_path):
    with keys_down(pygame.K_w) as keyboard:
        _, poses, _ = run_session(tmp_path, inputs=[keyboard], sinks=[keyboard])
    z = [c2w[2, 3] for _, c2w, _ in poses]
    assert z[-1] > z[0] + 0.05, f"camera did not move forward: z {z[0]:.3f} -> {z[-1]:.3f}"
    assert np.all(np.diff(z) >= -1e-9), "walking forward never moves the camera back"


def test_without_input_the_camera_stays_and_time_plays(tmp_path):
    session, poses, summary = run_session(tmp_path)
    assert all(np.allclose(c2w, np.eye(4)) for _, c2w, _ in poses)
    assert [i for i, _, _ in poses][:N + 2] == list(range(N)) + [0, 1]   # 24 fps source at 24 fps, looping
    assert summary["frames_presented"] == 24
    with av.open(str(tmp_path / "out" / "video.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 24
    assert (tmp_path / "out" / "contact_sheet.png").stat().st_size > 0


def test_recorded_run_replays_the_same_poses_indices_and_frames(tmp_path):
    with keys_down(pygame.K_w, pygame.K_d) as keyboard:
        _, first, _ = run_session(tmp_path / "a", inputs=[keyboard], sinks=[keyboard], record=True)
    run_dir = tmp_path / "a" / "out" / "recording"
    c2w, indices, fps = load_recorded_poses(run_dir)
    assert len(indices) == 24 and fps == 24.0
    script = load_script(run_dir, plane_scene().c2w)
    _, replay, _ = run_session(tmp_path / "b", script=script, record=True)
    assert [i for i, _, _ in replay] == [i for i, _, _ in first]
    assert all(np.array_equal(a, b) for (_, a, _), (_, b, _) in zip(replay, first))
    # the engine's frames are identical; the H.264 files may not be (x264 threading), so compare frames
    assert all(torch.equal(a, b) for (_, _, a), (_, _, b) in zip(replay, first))
    assert not np.allclose(first[-1][1], np.eye(4)), "the recorded run must actually move"


def test_headless_cli_play_writes_video_sheet_and_telemetry(tmp_path):
    out = tmp_path / "play"
    cmd = [sys.executable, "main.py", "play", "--headless", "--seconds", "1", "--out", str(out),
           "--set", "scenes.width=208", "--set", "scenes.height=120", "--set", "scenes.sample.frames=24",
           "--set", f"scenes.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with av.open(str(out / "video.mp4")) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (208, 120)
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == 60.0   # display rate
        assert sum(1 for _ in c.decode(video=0)) == 60
    telemetry = json.loads((out / "telemetry.json").read_text())
    assert telemetry["summary"]["frames_presented"] == 24 and telemetry["blocks_s"]       # content at 24 fps
    assert telemetry["summary"]["display"]["frames"] == 60
    assert telemetry["session"]["frames_presented"] == 24 and telemetry["run"]["refiner"] == "geometry"
    assert telemetry["run"]["command"].startswith("python3 main.py play --headless --seconds 1")
    assert telemetry["run"]["render_scale"] == resolve_render_scale("auto", telemetry["run"]["gl_renderer"])
    doc = tmp_path / "performance.md"                         # the run becomes a row of docs/performance.md
    perf_report.main(["--add", str(out / "telemetry.json"), "--results", str(tmp_path / "results"), "--doc", str(doc)])
    row = next(line for line in doc.read_text().splitlines() if "main.py play --headless" in line)
    assert telemetry["run"]["date"] in row and telemetry["run"]["device"] in row and "| 24 |" in row
    kept = json.loads(next((tmp_path / "results").iterdir()).read_text())
    assert "present_times_s" not in kept and kept["session"]["frames_presented"] == 24
    assert (out / "contact_sheet.png").is_file()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_recording_survives_sigint(tmp_path):
    out = tmp_path / "play"
    cmd = [sys.executable, "main.py", "play", "--headless", "--seconds", "60", "--record", "--out", str(out),
           "--set", "scenes.width=208", "--set", "scenes.height=120", "--set", "scenes.sample.frames=24",
           "--set", f"scenes.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    poses = out / "recording" / "poses.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and (not poses.exists() or len(poses.read_text().splitlines()) < 30):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    rows = json.loads((out / "recording" / "poses.json").read_text())["frames"]
    assert len(rows) >= 30
    with av.open(str(out / "recording" / "video.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == len(rows)
    assert (out / "video.mp4").is_file() and (out / "telemetry.json").is_file()


def test_walking_into_a_wall_stops_short_of_it(tmp_path):
    """The plane scene is a wall 3 units ahead: holding W for 10 s must stop before it."""
    with keys_down(pygame.K_w) as keyboard:
        session, poses, _ = run_session(tmp_path, inputs=[keyboard], sinks=[keyboard], frames=240,
                                        overrides=["runtime.rig.walk_speed=1.0"])
    z = [c2w[2, 3] for _, c2w, _ in poses]
    margin = session.cfg.runtime.rig.collision_margin * 3.0
    assert z[-1] > 1.0, "the camera should have walked most of the way"
    assert max(z) <= 3.0 - margin + 1e-6, f"walked into the wall: z reached {max(z):.3f}"


def test_a_recorded_dit_run_with_a_scrub_replays_the_same_frames(tmp_path):
    """A stateful refiner (tiny DiT + TAEHV, fixed seed): the scrub restarts the model context, the
    recording keeps every request, and a replay reproduces every presented frame bit for bit."""
    from controllers.commands import Commands, TimeCommand
    class Schedule:
        def __init__(self, at):
            self.at, self.tick = at, 0

        def poll(self):
            cmd = self.at.get(self.tick, Commands())
            self.tick += 1
            return cmd

    scene = dit_scene()
    h, w = scene.height, scene.width
    cfg = load_config(overrides=["runtime.clock.ends=loop"])

    def run(folder, inputs=(), script=None):
        refiner = tiny_dit_refiner(scene)
        frames = []
        session = Session(cfg, scene, refiner, HeadlessPresenter(folder, 24, w, h), device=torch.device("cpu"),
                          inputs=inputs, script=script, recorder=Recorder(folder / "recording", 24, w, h),
                          frame_locked=True, max_frames=None if script else 33)
        present = session._present
        session._present = lambda frame, info: (frames.append(frame.clone()), present(frame, info))
        session.run()
        return frames

    scrub = Schedule({40: Commands(time=TimeCommand(scrub_s=0.2))})     # mid-session: a discontinuity
    first = run(tmp_path / "a", inputs=[scrub])
    restarts = [json.loads(line)["restart"] for line in (tmp_path / "a" / "recording" / "blocks.jsonl").open()]
    assert restarts[0] and any(restarts[1:]), f"the scrub should restart the model context: {restarts}"
    replay = run(tmp_path / "b", script=load_script(tmp_path / "a" / "recording", scene.c2w))
    assert len(replay) >= len(first) and all(torch.equal(a, b) for a, b in zip(first, replay))


def test_depth_probe_measures_the_distance_to_the_wall_and_keeps_few_frames():
    from runtime.probe import DepthProbe
    scene = plane_scene()
    index = [0]
    probe = DepthProbe(scene, lambda: index[0], body_radius=0.2, keep=3)
    ahead, behind = np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -1.0])
    assert probe(np.zeros(3), ahead) == pytest.approx(3.0)
    assert probe(np.zeros(3), behind) == float("inf")
    for index[0] in range(N):
        probe(np.zeros(3), ahead)
    assert len(probe._points) == 3


def nearest_ahead(points: np.ndarray, centre: np.ndarray, direction: np.ndarray, radius: float) -> float:
    """The probe's definition: the distance along `direction` from `centre` to the nearest of
    `points` [P, 3] ahead inside the cylinder of `radius` around the ray, or inf."""
    rel = points - centre                                                   # [P, 3]
    along = rel @ direction                                                 # [P]
    lateral = np.linalg.norm(rel - along[:, None] * direction, axis=1)      # [P]
    inside = (along > 0) & (lateral < radius)
    return float(along[inside].min()) if inside.any() else float("inf")


def test_depth_probe_is_the_nearest_point_ahead_inside_its_cylinder():
    """Against the definition, from cameras off the points' axis, in oblique directions."""
    from runtime.probe import DepthProbe
    scene = plane_scene()
    scene.depth[0] = 2.0 + torch.rand(H, W, generator=torch.Generator().manual_seed(1))     # a rough wall
    probe = DepthProbe(scene, lambda: 0, body_radius=0.3, stride=2)
    points, norm_sq = probe.points(0)
    assert np.allclose(norm_sq, (points ** 2).sum(1))
    rng = np.random.default_rng(0)
    for _ in range(20):
        centre = rng.normal(0.0, 0.5, 3)
        direction = rng.normal(0.0, 1.0, 3) + [0.0, 0.0, 2.0]
        direction /= np.linalg.norm(direction)
        expected = nearest_ahead(points, centre, direction, radius=0.3)
        assert probe(centre, direction) == pytest.approx(expected, rel=1e-9)


def test_a_probe_within_a_distance_searches_near_points_and_finds_every_hit_inside_it():
    """Queries a short step apart (as the rig's) keep their near points; every hit within `within` is
    the definition's, farther ones read as inf or as themselves; leaving the near points rebuilds them,
    and far from every point a query finds nothing without looking at any."""
    from runtime.probe import DepthProbe
    scene = plane_scene()
    scene.depth[0] = 1.0 + 3.0 * torch.rand(H, W, generator=torch.Generator().manual_seed(2))   # a deep, rough wall
    probe = DepthProbe(scene, lambda: 0, body_radius=0.3, stride=2)
    points, _ = probe.points(0)
    rng = np.random.default_rng(1)
    centre, within, rebuilt, clear = np.array([0.0, 0.0, -6.0]), 1.5, set(), 0
    for _ in range(300):
        centre = centre + rng.normal(0.0, 0.02, 3) + [0.03, 0.0, 0.025]     # short steps toward the wall, drifting
        direction = rng.normal(0.0, 1.0, 3) + [0.0, 0.0, 1.0]
        direction /= np.linalg.norm(direction)
        expected = nearest_ahead(points, centre, direction, radius=0.3)
        hit = probe(centre, direction, within=within)
        if expected <= within:
            assert hit == pytest.approx(expected, rel=1e-9)
        else:
            assert hit > within and (hit == float("inf") or hit == pytest.approx(expected, rel=1e-9))
        near = probe._near
        rebuilt.add(tuple(near.centre))
        clear += near.clearance - np.linalg.norm(centre - near.centre) > within + 0.3   # answered without points
    assert 1 < len(rebuilt) < 30 and len(probe._near.points) < len(points)   # rebuilt now and then, and smaller
    assert 0 < clear < 300                                                  # far from the wall, nothing was searched
    ahead = np.array([0.0, 0.0, 1.0])
    assert probe(np.array([0.0, 0.0, -5.0]), ahead, within=within) == float("inf")
    near = probe._near
    assert probe(np.zeros(3), ahead, within=within) == pytest.approx(nearest_ahead(points, np.zeros(3), ahead, 0.3))
    assert probe._near is near                                              # the far query's near points served it


def test_contact_sheet_spans_the_whole_session(tmp_path):
    """However long the session, the sheet's tiles run from its start to its end (frame i is painted
    grey level i, so the last tile's colour says which frame it shows)."""
    from PIL import Image
    presenter = HeadlessPresenter(tmp_path, 24, 64, 48, sheet_tiles=12)
    for i in range(200):
        presenter.present(torch.full((48, 64, 3), i, dtype=torch.uint8), None)
    presenter.close()
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png").convert("L"))
    rows, cols, tile_h = 3, 4, sheet.shape[0] // 3
    last = sheet[(rows - 1) * tile_h + tile_h // 2, (cols - 1) * sheet.shape[1] // cols + sheet.shape[1] // (2 * cols)]
    assert last >= 185, f"the last tile shows frame ~{last} of 200"


def test_real_time_play_prepares_blocks_ahead_and_shows_the_frame_locked_frames(tmp_path):
    """In real time the worker runs each next block's source encode and context pass while it waits
    for the request; with the camera still, the frames are bit for bit those of a frame-locked run,
    which never prepares."""
    scene = dit_scene()
    h, w = scene.height, scene.width
    cfg = load_config(overrides=["runtime.clock.ends=pingpong"])

    def run(folder, frame_locked):
        refiner = tiny_dit_refiner(scene)
        frames = []
        session = Session(cfg, scene, refiner, HeadlessPresenter(folder, 24, w, h), device=torch.device("cpu"),
                          frame_locked=frame_locked, max_frames=45)
        present = session._present
        session._present = lambda frame, info: (frames.append(frame.clone()), present(frame, info))
        return frames, session.run()

    locked, locked_summary = run(tmp_path / "a", frame_locked=True)
    live, live_summary = run(tmp_path / "b", frame_locked=False)
    assert locked_summary["prepared_blocks"] == 0 and live_summary["prepared_blocks"] >= 2
    assert len(live) == len(locked) == 45 and all(torch.equal(a, b) for a, b in zip(locked, live))



def test_a_paused_real_time_session_prepares_every_block_of_the_pause(tmp_path):
    """Paused time repeats the same source frames block after block: each block is still hinted."""
    scene = dit_scene()
    cfg = load_config(overrides=["runtime.clock.start_paused=true"])
    session = Session(cfg, scene, tiny_dit_refiner(scene), HeadlessPresenter(tmp_path, 24, scene.width, scene.height),
                      device=torch.device("cpu"), frame_locked=False, max_frames=60)
    summary = session.run()
    assert summary["prepared_blocks"] >= summary["blocks"] - 2 >= 3, summary


@pytest.mark.parametrize("frame_locked", [True, False])
def test_the_worker_setup_runs_on_the_generation_thread_before_any_block_is_planned(tmp_path, frame_locked):
    import threading
    from controllers.commands import Commands
    ran = {}

    def setup():
        time.sleep(0.3)                                       # a warm-up takes a while
        ran.update(thread=threading.current_thread().name, done=time.perf_counter())

    class PollTimes:                                          # an input that notes when it is polled
        times = []

        def poll(self):
            self.times.append(time.perf_counter())
            return Commands()

    cfg = load_config(overrides=["runtime.clock.ends=loop"])
    polls = PollTimes()
    session = Session(cfg, plane_scene(), GeometryRefiner(), HeadlessPresenter(tmp_path, 24, W, H),
                      device=torch.device("cpu"), inputs=[polls], frame_locked=frame_locked, max_frames=24,
                      worker_setup=setup)
    session.run()
    blocks = session.telemetry.to_dict()["blocks_s"]
    first_request = min(b["request"] for b in blocks.values()) + session.telemetry.t0
    assert ran["thread"] == "generation" and first_request >= ran["done"]
    assert polls.times and min(polls.times) >= ran["done"]    # no input is read during the warm-up
    assert session.frames_presented == 24


def test_until_the_first_frame_shows_the_window_says_it_is_making_it(tmp_path):
    """A first block that takes seconds (a slow CPU, a cold model) leaves no stale loading screen:
    the status counts the wait, and stops once a frame is on screen."""
    class SlowFirstBlock(GeometryRefiner):
        def refine(self, inp):
            if not getattr(self, "slept", False):
                self.slept = True
                time.sleep(1.2)
            return super().refine(inp)

    class Screen(HeadlessPresenter):                          # a headless presenter that keeps the status
        shown: list = []

        def show_status(self, lines):
            self.shown.append((self.frames_presented, lines[0]))

    cfg = load_config(overrides=["runtime.clock.ends=loop", "runtime.reproject=false"])
    screen = Screen(tmp_path, 24, W, H)
    Session(cfg, plane_scene(), SlowFirstBlock(), screen, device=torch.device("cpu"), frame_locked=False,
            max_frames=24).run()
    assert [n for n, _ in screen.shown] == [0] * len(screen.shown) and len(screen.shown) >= 4
    assert screen.shown[0][1] == "making the first frames (0 s)" and screen.shown[-1][1] == "making the first frames (1 s)"
