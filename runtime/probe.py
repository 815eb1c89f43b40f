"""The walk-mode collision probe: how far the camera can move along a direction before it meets the
scene, measured on the current source frame's depth (so moving things count where they are now)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np


class DepthProbe:
    """probe(c2w, direction) -> distance along `direction` to the nearest scene point inside a
    cylinder of `body_radius` around the ray, or inf. Points are a source frame's depth unprojected
    on a coarse pixel grid (every `stride` pixels), in world coordinates, computed when that frame is
    first probed and kept for the last `keep` frames (start-up and memory do not grow with the video)."""

    def __init__(self, scene, frame_index: Callable[[], int], body_radius: float, stride: int = 8, keep: int = 32):
        self.scene, self.frame_index, self.radius = scene, frame_index, float(body_radius)
        self.stride, self.keep = stride, keep
        self._points: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def points(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """World points [P, 3] (float64) of source frame i and their squared norms [P]."""
        if i in self._points:
            self._points.move_to_end(i)
            return self._points[i]
        s = self.stride
        depth = self.scene.depth[i, ::s, ::s].numpy().astype(np.float64)                  # [h, w]
        v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]] * float(s)                     # [h, w] each
        ok = depth > 0
        pix = np.stack([u[ok], v[ok], np.ones(int(ok.sum()))], -1)                          # [P, 3]
        cam = (pix @ np.linalg.inv(self.scene.K[i].double().numpy()).T) * depth[ok][:, None]   # [P, 3]
        c2w = self.scene.c2w[i].double().numpy()
        world = cam @ c2w[:3, :3].T + c2w[:3, 3]                                            # [P, 3]
        self._points[i] = world, np.einsum("pi,pi->p", world, world)                        # [P, 3], [P]
        if len(self._points) > self.keep:
            self._points.popitem(last=False)
        return self._points[i]

    def __call__(self, c2w: np.ndarray, direction: np.ndarray) -> float:
        points, norm_sq = self.points(self.frame_index())                                  # [P, 3], [P]
        centre = c2w[:3, 3]
        dots = points @ np.stack([direction, centre], 1)                                    # [P, 2]: p.d, p.c
        along = dots[:, 0] - centre @ direction                                             # [P] (p - c).d
        lateral_sq = norm_sq - 2.0 * dots[:, 1] + centre @ centre - along * along          # [P] |p - c|^2 - along^2
        ahead = np.where((along > 0) & (lateral_sq < self.radius * self.radius), along, np.inf)   # [P]
        return float(ahead.min()) if ahead.size else float("inf")
