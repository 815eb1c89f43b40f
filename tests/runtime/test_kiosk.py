"""Kiosk mode: attract loop when idle, instant visitor takeover, admin-only quit, a watchdog for a
crashed worker, and a long session whose memory does not grow."""
import resource

import torch

from controllers.commands import AppCommand, CameraCommand, Commands
from model.refiners import GeometryRefiner
from runtime.config import load_config
from runtime.kiosk import KioskInputs
from runtime.present import HeadlessPresenter
from runtime.session import Session
from scenes.scene import Scene

WALK = Commands(camera=CameraCommand(move=(0.0, 0.0, 1.0)))
ESC = Commands(app=AppCommand(quit=True))


class Scripted:
    """A live controller that returns the command scheduled for each tick (idle otherwise)."""
    def __init__(self, schedule: dict):
        self.schedule, self.tick = schedule, 0

    def poll(self):
        cmd = self.schedule.get(self.tick, Commands())
        self.tick += 1
        return cmd


class Constant:
    def __init__(self, cmd):
        self.cmd = cmd

    def poll(self):
        return self.cmd


ATTRACT = Commands(camera=CameraCommand(look=(0.5, 0.0)))


def kiosk(schedule, held=frozenset()):
    return KioskInputs([Scripted(schedule)], Constant(ATTRACT), idle_timeout_s=1.0, tick_hz=10,
                       admin_quit=("left ctrl", "q"), held_keys=lambda: held)


def test_attract_starts_with_a_reset_and_a_visitor_takes_over_at_once():
    k = kiosk({3: WALK, 4: WALK})
    first = k.poll()
    assert first.camera.reset and first.time.jump_fraction == 0.0 and k.attracting
    assert [k.poll() for _ in range(2)] == [ATTRACT, ATTRACT]
    assert k.poll() == WALK and not k.attracting and k.visitor_sessions == 1
    assert k.poll() == WALK
    idle = [k.poll() for _ in range(9)]                # 1 s at 10 Hz: still the visitor's session
    assert all(c == Commands() for c in idle) and not k.attracting
    back = k.poll()
    assert back.camera.reset and k.attracting and k.poll() == ATTRACT


def test_only_the_admin_combination_quits():
    assert not kiosk({0: ESC}).poll().app.quit
    assert kiosk({}, held=frozenset({"left ctrl", "q", "x"})).poll().app.quit


def tiny_scene(n=8, h=24, w=32) -> Scene:
    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[30.0, 0, w / 2], [0, 30.0, h / 2], [0, 0, 1]]).expand(n, 3, 3).clone()
    return Scene(frames=torch.randint(0, 255, (n, h, w, 3), generator=g, dtype=torch.uint8),
                 depth=torch.full((n, h, w), 4.0), K=K, c2w=torch.eye(4).expand(n, 4, 4).clone(), fps=24.0)


class FlakyRefiner(GeometryRefiner):
    """Crashes on its third block, as a driver fault would."""
    def __init__(self):
        super().__init__()
        self.calls = 0

    def refine(self, block):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("simulated CUDA fault")
        return super().refine(block)


def test_watchdog_restarts_a_crashed_worker(tmp_path):
    cfg = load_config()
    scene = tiny_scene()
    session = Session(cfg, scene, FlakyRefiner(), HeadlessPresenter(tmp_path, 24, 32, 24), device=torch.device("cpu"),
                      frame_locked=True, max_frames=96, max_worker_restarts=3)
    summary = session.run()
    assert summary["frames_presented"] == 96 and summary["worker_restarts"] == 1


def test_ten_minute_kiosk_session_does_not_grow_memory(tmp_path):
    """10 simulated minutes at 24 fps (frame locked, tiny frames): visitors come and go, attract mode
    loops; the resident memory and every buffer stay bounded."""
    cfg = load_config(overrides=["runtime.kiosk.idle_timeout_s=20"])
    tick_hz, minutes = cfg.runtime.loop.tick_hz, 10
    visits = {t: WALK for start in range(0, int(minutes * 60 * tick_hz), int(90 * tick_hz))
              for t in range(start, start + int(15 * tick_hz))}       # a 15 s visitor every 90 s
    inputs = KioskInputs([Scripted(visits)], Constant(ATTRACT), idle_timeout_s=cfg.runtime.kiosk.idle_timeout_s,
                         tick_hz=tick_hz, admin_quit=cfg.runtime.kiosk.admin_quit)
    session = Session(cfg, tiny_scene(), GeometryRefiner(), HeadlessPresenter(tmp_path, 24, 32, 24),
                      device=torch.device("cpu"), inputs=[inputs], frame_locked=True, max_frames=minutes * 60 * 24)
    rss_mb, sizes = [], []
    present = session._present

    def watch(frame, info):
        present(frame, info)
        if session.frames_presented % (60 * 24) == 0:                 # once a simulated minute
            rss_mb.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            sizes.append((len(session.buffer), len(session.telemetry._blocks), len(session.presenter._sheet)))
    session._present = watch
    summary = session.run()
    assert summary["frames_presented"] == minutes * 60 * 24
    assert inputs.visitor_sessions >= 6
    growth = rss_mb[-1] - rss_mb[1]
    assert growth < 40, f"resident memory grew {growth:.1f} MB between minute 2 and minute {minutes}: {rss_mb}"
    assert max(s[0] for s in sizes) <= cfg.runtime.pacing.max_buffer_frames
    assert sizes[-1][1] <= 20000 // 9 + 1 and sizes[-1][2] <= 2 * session.presenter.sheet_tiles


def test_the_help_and_hud_toggles_work_during_the_attract_loop_without_ending_it():
    help_key = Commands(app=AppCommand(toggle_help=True, screenshot=True))
    k = kiosk({12: help_key})
    cmds = [k.poll() for _ in range(13)]
    assert k.attracting and cmds[12].camera == ATTRACT.camera
    assert cmds[12].app == AppCommand(toggle_help=True)                  # no screenshots from visitors
