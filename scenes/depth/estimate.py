"""`estimate`: the weight-free depth provider, so any plain video still becomes a walkable scene.

The prior is a level camera at `eye_height` above a flat ground, looking at a fronto-parallel
backdrop `backdrop` away, with `hfov_deg` across the source width (scenes/depth/base.default_K):

    row v below the horizon (v > cy):  z = min(eye_height * fy / (v - cy), backdrop)   (the ground)
    every other row:                   z = backdrop

It ignores the image content, so it is crude (measured against the exact depth of the built-in
sample by benchmarks/depth_error.py), but it is positive and finite everywhere and has the right
order of magnitude for eye-level footage. Where the video has parallax and pycolmap is installed,
structure-from-motion gives the camera motion and sparse depth, densified over this prior
(scenes/depth/sfm.py), when its reconstruction is sound; otherwise the poses are static (identity)
and the prior stays.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from scenes.depth.base import DepthError, DepthRequest, DepthResult, default_K, static_poses
from scenes.depth.sfm import sfm_depth, sfm_missing


def planar_depth(K: np.ndarray, width: int, height: int, eye_height: float, backdrop: float) -> np.ndarray:
    """Depth of the ground-plus-backdrop prior for a level camera with intrinsics K [3, 3].
    -> float32 [height, width], values in [eye_height * fy / (H - 1 - cy), backdrop]"""
    fy, cy = float(K[1, 1]), float(K[1, 2])
    v = np.arange(height, dtype=np.float64) - cy                                     # [H] rows below the horizon > 0
    with np.errstate(divide="ignore"):
        ground = np.where(v > 0, eye_height * fy / np.where(v > 0, v, 1.0), np.inf)
    rows = np.minimum(ground, backdrop).astype(np.float32)                           # [H]
    return np.repeat(rows[:, None], width, axis=1)                                   # [H, W]


def estimate_depth(req: DepthRequest, progress: bool = False) -> DepthResult:
    """The planar prior and default K; with scenes.depth.sfm and pycolmap installed, SfM's camera motion
    and sparse depth densified over the prior where the reconstruction is sound (scenes/depth/sfm.py),
    else static poses. notes['trust'] says how far the depth can be trusted (0: a guess)."""
    cfg = req.cfg
    if not (cfg.eye_height > 0 and cfg.backdrop > cfg.eye_height and 0 < cfg.hfov_deg < 180):
        raise DepthError(f"scenes.depth: need eye_height > 0, backdrop > eye_height and 0 < hfov_deg < 180, "
                         f"got {cfg.eye_height}, {cfg.backdrop}, {cfg.hfov_deg}")
    width, height = req.size
    K = default_K(width, height, req.source_size, cfg.hfov_deg, req.fit)
    prior = planar_depth(K, width, height, cfg.eye_height, cfg.backdrop)             # [H, W]
    n = req.num_frames
    depth, c2w, trust = torch.from_numpy(prior).expand(n, height, width).clone(), static_poses(n), 0.0
    found, how = None, "scenes.depth.sfm is off"
    if cfg.sfm and (why := sfm_missing()):
        how = why
    elif cfg.sfm:
        if progress:
            print(f"roam: structure from motion (pycolmap) on {min(n, cfg.sfm_max_frames)} frames", file=sys.stderr)
        found, how = sfm_depth(req.frames.numpy(), K, prior, cfg.sfm_max_frames, cfg.sfm_max_width)
    notes = {"prior": "level camera over a ground plane plus a backdrop", "eye_height": cfg.eye_height,
             "backdrop": cfg.backdrop, "hfov_deg": cfg.hfov_deg, "up": [0.0, -1.0, 0.0]}   # level camera: up is -y
    if found is None:
        notes.update(depth="the planar prior", poses=f"static ({how})")
    else:
        depth, c2w, trust = torch.from_numpy(found.depth), torch.as_tensor(found.c2w, dtype=torch.float32), found.trust
        notes.update(depth=how, poses=how, sfm=found.notes)
    notes["trust"] = round(trust, 3)
    return DepthResult(depth=depth, K=torch.from_numpy(K).expand(n, 3, 3).clone(), c2w=c2w, provider="estimate",
                       notes=notes)
