"""The walk-mode collision probe: how far the camera can move along a direction before it meets the
scene, measured on the current source frame's depth (so moving things count where they are now)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


class DepthProbe:
    """probe(c2w, direction) -> distance along `direction` to the nearest scene point inside a
    cylinder of `body_radius` around the ray, or inf. Points are each source frame's depth
    unprojected on a coarse pixel grid (every `stride` pixels), in world coordinates."""

    def __init__(self, scene, frame_index: Callable[[], int], body_radius: float, stride: int = 8):
        depth = scene.depth[:, ::stride, ::stride].double()                              # [N, h, w]
        h, w = depth.shape[-2:]
        v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64) * stride,
                              torch.arange(w, dtype=torch.float64) * stride, indexing="ij")
        pix = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3)                 # [h*w, 3]
        rays = pix @ torch.linalg.inv(scene.K.double()).transpose(-1, -2)               # [N, h*w, 3]
        cam = rays * depth.reshape(len(depth), -1, 1)                                    # [N, h*w, 3]
        c2w = scene.c2w.double()
        world = cam @ c2w[:, :3, :3].transpose(-1, -2) + c2w[:, None, :3, 3]             # [N, h*w, 3]
        valid = (depth.reshape(len(depth), -1) > 0)
        self.points = [world[i][valid[i]].numpy() for i in range(len(world))]
        self.frame_index, self.radius = frame_index, float(body_radius)

    def __call__(self, c2w: np.ndarray, direction: np.ndarray) -> float:
        rel = self.points[self.frame_index()] - c2w[:3, 3]                                # [P, 3]
        along = rel @ direction                                                           # [P]
        lateral = np.linalg.norm(rel - along[:, None] * direction, axis=1)                # [P]
        ahead = along[(along > 0) & (lateral < self.radius)]
        return float(ahead.min()) if ahead.size else float("inf")
