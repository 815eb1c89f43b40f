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
        self._points: OrderedDict[int, np.ndarray] = OrderedDict()

    def points(self, i: int) -> np.ndarray:
        """World points [P, 3] (float64) of source frame i."""
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
        self._points[i] = cam @ c2w[:3, :3].T + c2w[:3, 3]                                  # [P, 3]
        if len(self._points) > self.keep:
            self._points.popitem(last=False)
        return self._points[i]

    def __call__(self, c2w: np.ndarray, direction: np.ndarray) -> float:
        rel = self.points(self.frame_index()) - c2w[:3, 3]                                  # [P, 3]
        along = rel @ direction                                                             # [P]
        front = along > 0
        rel, along = rel[front], along[front]                                               # [P'], [P', 3]
        lateral_sq = np.einsum("pi,pi->p", rel, rel) - along * along                       # [P']
        ahead = along[lateral_sq < self.radius * self.radius]
        return float(ahead.min()) if ahead.size else float("inf")
