"""Automatic walks (the headless demo, the kiosk's attract run), planned from what the source cameras saw.

A walk is a loop of goals (`CameraCommand.goal`), each a pose relative to the source camera of the
moment; the rig steers toward the current one (runtime/rig.py). So the walk follows the video's
camera through time and sways around it: a step right that looks back at the scene's near centre,
a step forward, a step left that looks back, and home. Its size is the largest candidate whose views,
placed on a sample of the source cameras, each keep `min_seen` of what that camera's own view covers,
coverage being the share of a coarse grid over the image that the camera's depth points reach: what
a per-frame render can show (the fused world only adds to it). A walk planned this way never turns
away from what the video saw, and it cannot drift: every goal is tied to the source camera.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controllers.commands import CameraCommand
from runtime.probe import DepthProbe
from runtime.rig import pose, rot_y

# One loop: (start, end) as fractions of the period, and the goal in units of the sway:
# (right, forward, look back at the near centre: +1 / -1 / 0)
WALK_SHAPE = (
    (0.00, 0.25, (1.0, 0.0, 1)),
    (0.25, 0.50, (0.0, 1.0, 0)),
    (0.50, 0.75, (-1.0, 0.5, 1)),
    (0.75, 1.00, (0.0, 0.0, 0)),
)
SWAYS = (0.6, 0.45, 0.3, 0.2, 0.12, 0.06, 0.0)   # candidate sways in scene scales, largest first
GRID = (32, 18)                                  # coverage grid over the image: columns, rows


@dataclass(frozen=True)
class WalkPlan:
    segments: tuple[tuple[float, float, CameraCommand], ...]   # (start, end fraction, held command)
    sway: float                # scene scales
    worst_seen: float          # the smallest share of its source view's coverage a planned view keeps


def seen_share(points: np.ndarray, K: np.ndarray, size: tuple[int, int], c2w: np.ndarray) -> float:
    """Share of the cells of a GRID over a (W, H) image that world points [P, 3] reach when seen
    from c2w [4, 4] with intrinsics K [3, 3] (in front of the camera)."""
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]                              # [P, 3]
    cam = cam[cam[:, 2] > 1e-6]
    uv = cam @ np.asarray(K, dtype=np.float64).T                           # [P', 3]
    (W, H), (cols, rows) = size, GRID
    col, row = uv[:, 0] / uv[:, 2] * cols / W, uv[:, 1] / uv[:, 2] * rows / H
    inside = (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
    cells = row[inside].astype(np.int64) * cols + col[inside].astype(np.int64)
    return np.unique(cells).size / (cols * rows)


def goal_pose(goal: tuple[float, float, float, float], scale: float) -> np.ndarray:
    """A goal (x, y, z in scene scales, yaw deg) as a pose relative to the source camera [4, 4]."""
    x, y, z, yaw = goal
    return pose(rot_y(yaw), np.array([x, y, z]) * scale)


def walk_goals(sway: float, focus: float) -> list[tuple[float, float, float, float]]:
    """The loop's goals for a sway (scene scales); looking back aims at the point `focus` scene
    scales ahead of the source camera."""
    goals = []
    for _, _, (right, forward, look_back) in WALK_SHAPE:
        x, z = right * sway, forward * sway
        yaw = -math.degrees(math.atan2(x, max(focus - z, 1e-3))) if look_back else 0.0
        goals.append((x, 0.0, z, yaw))
    return goals


def views_to_check(goals: list) -> list[tuple[float, float, float, float]]:
    """The goals and the halfway poses between consecutive ones (the rig passes near them)."""
    out = []
    for a, b in zip(goals, goals[1:] + goals[:1]):
        out += [a, tuple((p + q) / 2 for p, q in zip(a, b))]
    return out


def plan_walk(scene, scale: float, *, min_seen: float, frames: int = 8) -> WalkPlan:
    """The largest sway whose views keep `min_seen` of their source view's coverage, checked on
    `frames` source cameras spread over the clip."""
    stride = max(1, min(scene.width // (2 * GRID[0]), scene.height // (2 * GRID[1])))   # >= 2 points a cell
    probe = DepthProbe(scene, lambda: 0, body_radius=0.0, stride=stride, keep=1)
    indices = np.unique(np.linspace(0, scene.num_frames - 1, frames).round().astype(int))
    centre = scene.depth[0, scene.height // 3: 2 * scene.height // 3, scene.width // 3: 2 * scene.width // 3]
    focus = float(centre[centre > 0].median()) / scale if bool((centre > 0).any()) else 2.0
    views = {}                                  # frame -> (points, K, its source c2w, its own coverage)
    for i in indices:
        c2w, K = scene.c2w[i].double().numpy(), scene.K[i].double().numpy()
        points, _ = probe.points(int(i))
        views[int(i)] = (points, K, c2w, max(seen_share(points, K, (scene.width, scene.height), c2w), 1e-6))
    for sway in SWAYS:
        goals = walk_goals(sway, focus)
        worst = min(seen_share(points, K, (scene.width, scene.height), c2w @ goal_pose(goal, scale)) / own
                    for points, K, c2w, own in views.values() for goal in views_to_check(goals))
        if worst >= min_seen or sway == SWAYS[-1]:
            segments = tuple((start, end, CameraCommand(goal=goal))
                             for (start, end, _), goal in zip(WALK_SHAPE, goals))
            return WalkPlan(segments, sway, worst)
    raise AssertionError("unreachable: the last sway is always taken")
