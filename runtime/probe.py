"""The walk-mode collision probe: how far the camera can move along a direction before it meets the
scene, measured on the current source frame's depth (so moving things count where they are now)."""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np


class DepthProbe:
    """probe(centre, direction, within) -> distance from `centre` along `direction` to the nearest scene
    point inside a cylinder of `body_radius` around the ray, or inf; a hit farther than `within` may
    read as inf.
    Points are a source frame's depth unprojected on a coarse pixel grid (every `stride` pixels), in
    world coordinates, computed when that frame is first probed and kept for the last `keep` frames
    (start-up and memory do not grow with the video). A query with a finite `within` searches only the
    points near the camera, kept from the last such query while the camera stays near it (the rig
    probes every tick, and a 12-frame prediction about 80 times, a few millimetres apart), and answers
    at once, without them, while the camera is farther from every point than the query reaches."""

    NEAR_MARGIN = 4.0          # the near points reach this many times a query's own reach around it

    def __init__(self, scene, frame_index: Callable[[], int], body_radius: float, stride: int = 8, keep: int = 32):
        self.scene, self.frame_index, self.radius = scene, frame_index, float(body_radius)
        self.stride, self.keep = stride, keep
        self._points: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._near: NearPoints | None = None

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

    def near_points(self, i: int, centre: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Every point of source frame i within `reach` of `centre` (and maybe more) [Q, 3], with their
        squared norms [Q]; None when there is none."""
        near = self._near
        moved = math.inf if near is None or near.frame != i else float(np.linalg.norm(centre - near.centre))
        if moved == math.inf or moved + reach > near.radius:
            near, moved = self._gather_near(i, centre, self.NEAR_MARGIN * reach), 0.0
        return None if near.clearance - moved > reach else (near.points, near.norm_sq)

    def _gather_near(self, i: int, centre: np.ndarray, radius: float) -> "NearPoints":
        points, norm_sq = self.points(i)
        distance_sq = norm_sq - 2.0 * (points @ centre) + centre @ centre                         # [P]
        keep = distance_sq <= radius * radius
        clearance = math.sqrt(max(0.0, float(distance_sq.min()))) if distance_sq.size else math.inf
        self._near = NearPoints(i, centre.copy(), radius, clearance, points[keep], norm_sq[keep])
        return self._near

    def __call__(self, centre: np.ndarray, direction: np.ndarray, within: float = math.inf) -> float:
        """centre [3] and unit direction [3] in world coordinates."""
        i = self.frame_index()
        found = self.near_points(i, centre, within + self.radius) if math.isfinite(within) else self.points(i)
        if found is None:                  # no point within reach: no hit within `within`
            return float("inf")
        points, norm_sq = found                                                             # [P, 3], [P]
        dots = points @ np.stack([direction, centre], 1)                                    # [P, 2]: p.d, p.c
        along = dots[:, 0] - centre @ direction                                             # [P] (p - c).d
        lateral_sq = norm_sq - 2.0 * dots[:, 1] + centre @ centre - along * along          # [P] |p - c|^2 - along^2
        ahead = np.where((along > 0) & (lateral_sq < self.radius * self.radius), along, np.inf)   # [P]
        return float(ahead.min()) if ahead.size else float("inf")


@dataclass(frozen=True)
class NearPoints:
    """A source frame's points near a centre: all of them within `radius` of it, and how far the
    nearest point of the whole frame is from it (`clearance`: a query that stays closer to the centre
    than clearance - reach finds nothing within its reach)."""
    frame: int
    centre: np.ndarray        # [3] world
    radius: float
    clearance: float
    points: np.ndarray        # [Q, 3] world
    norm_sq: np.ndarray       # [Q]
