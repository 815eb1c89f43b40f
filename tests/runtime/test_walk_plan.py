"""Automatic walks stay where the source cameras looked: coverage of a view, the planned sway, and a
long headless run of the demo walk whose frames stay covered by the render and do not drift."""
import math

import numpy as np
import torch

from runtime.config import load_config
from runtime.walk_plan import WALK_SHAPE, plan_walk, seen_share
from scenes.scene import Scene

H, W, N = 48, 80, 24
K = np.array([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]])


def wall_points(half_width: float, depth: float = 3.0) -> np.ndarray:
    """A grid of points on a wall `depth` ahead, `half_width` to each side: [P, 3]."""
    x, y = np.meshgrid(np.linspace(-half_width, half_width, 200), np.linspace(-2, 2, 120))
    return np.stack([x.ravel(), y.ravel(), np.full(x.size, depth)], 1)


def turned(yaw_deg: float, x: float = 0.0) -> np.ndarray:
    c2w = np.eye(4)
    s, c = math.sin(math.radians(yaw_deg)), math.cos(math.radians(yaw_deg))
    c2w[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    c2w[0, 3] = x
    return c2w


def test_seen_share_is_the_covered_part_of_the_view():
    wall = wall_points(10.0)
    assert seen_share(wall, K, (W, H), np.eye(4)) == 1.0
    assert seen_share(wall, K, (W, H), turned(180.0)) == 0.0           # looking away
    half = seen_share(wall_points(10.0)[wall[:, 0] > 0], K, (W, H), np.eye(4))
    assert 0.4 < half < 0.7                                              # only the right half is there


def wall_scene(depth: float, n: int = N) -> Scene:
    """Still cameras at the origin facing a wall `depth` ahead that fills the view: a step sideways
    brings the edge of what the video saw into view, sooner the nearer the wall."""
    g = torch.Generator().manual_seed(0)
    return Scene(frames=torch.randint(0, 255, (n, H, W, 3), generator=g, dtype=torch.uint8),
                 depth=torch.full((n, H, W), depth), K=torch.tensor(K, dtype=torch.float32).expand(n, 3, 3).clone(),
                 c2w=torch.eye(4).expand(n, 4, 4).clone(), fps=24.0)


def test_the_sway_shrinks_as_the_seen_world_comes_closer_and_every_view_keeps_min_seen():
    far, near = plan_walk(wall_scene(6.0), 1.0, min_seen=0.9), plan_walk(wall_scene(1.5), 1.0, min_seen=0.9)
    assert far.sway > near.sway > 0.0 and far.worst_seen >= 0.9 and near.worst_seen >= 0.9
    assert [start for start, _, _ in far.segments] == [start for start, _, _ in WALK_SHAPE]
    right = far.segments[0][2].goal
    assert right[0] > 0 and right[3] < 0                                # steps right, looks back left


def dolly_scene(n: int = N) -> Scene:
    """A textured wall 4 units ahead that fills the view, seen by a camera sliding 1 unit right."""
    scene = wall_scene(4.0, n)
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, 0, 3] = torch.linspace(0.0, 1.0, n)
    return Scene(frames=scene.frames, depth=scene.depth, K=scene.K, c2w=c2w, fps=24.0)


def walk_session(tmp_path, scale_goals: float = 1.0, seconds: float = 12.0):
    """A frame-locked headless session of the demo walk (its goals scaled by `scale_goals`)."""
    import dataclasses

    from model.refiners import GeometryRefiner
    from runtime.present import HeadlessPresenter
    from runtime.scripts import demo_walk
    from runtime.session import Session
    cfg = load_config(overrides=["runtime.seen_warning=0.75"])
    scene = dolly_scene()
    walk = demo_walk(scene, seconds, cfg.runtime.loop.tick_hz, min_seen=cfg.runtime.walk_min_seen)
    walk.segments = tuple((a, b, dataclasses.replace(cmd, goal=tuple(v * scale_goals for v in cmd.goal)))
                          for a, b, cmd in walk.segments)
    session = Session(cfg, scene, GeometryRefiner(), HeadlessPresenter(tmp_path, 24.0, W, H),
                      device=torch.device("cpu"), inputs=[walk], frame_locked=True, max_frames=round(seconds * 24))
    hud = []
    present = session._present
    session._present = lambda frame, info: (present(frame, info), hud.append(list(session.hud.state.lines)))
    return session.run(), hud


def test_a_long_demo_walk_keeps_its_frames_inside_the_seen_world(tmp_path):
    planned, hud = walk_session(tmp_path / "planned")
    assert planned["seen"]["n"] == 288 and planned["seen"]["min"] >= 0.8, planned["seen"]
    assert not any("OUTSIDE THE SEEN WORLD" in line for lines in hud for line in lines)
    wider, hud = walk_session(tmp_path / "wider", scale_goals=3.0)      # the same walk, three times as wide
    assert wider["seen"]["min"] < planned["seen"]["min"] - 0.1, (wider["seen"], planned["seen"])
    assert any("OUTSIDE THE SEEN WORLD" in line for lines in hud for line in lines)
