"""Structure-from-motion for the `estimate` provider with pycolmap (an optional extra: `pip install
pycolmap`; on with scenes.depth.sfm): camera motion, and sparse depth densified over the planar prior,
where the video has parallax.

Up to scenes.depth.sfm_max_frames evenly spaced frames, downscaled to at most sfm_max_width, go to
COLMAP: SIFT features (CPU), sequential matching, the incremental mapper with the provider's K fixed.
The result is used only when it is sound (`accept`: at least MIN_REGISTERED of those frames
registered, a mean reprojection error of at most MAX_REPROJECTION_PX, at least MIN_POINTS per
registered frame); otherwise the caller keeps the planar prior and static poses, and says why.

Scale comes from the ground plane of the prior: the points seen below the horizon (where the prior
is the ground eye_height below a level camera) get the prior's depth there in the median (all
points when too few are below it). Only points that MIN_TRACK frames see from rays MIN_ANGLE_DEG
apart count. Each frame's depth is the prior times exp of its points' log depth ratio to the prior
(points beyond MAX_LOG_RATIO of the frame's median ratio dropped as mismatches), spread by
normalised Gaussian convolution (sigma SPREAD of the width) and faded back to the prior away from
the points. Frames SfM did not see take the poses interpolated between their neighbours (slerp /
linear) and the depth of the nearest registered frame. trust = registered share x the share of
pixels near points.
Cost: about 0.3-0.5 s per 416x240 frame on the CPU (benchmarks/depth_error.py measures it).
"""
from __future__ import annotations

import importlib.util
import math
import tempfile
from pathlib import Path

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation, Slerp

MIN_REGISTERED = 0.5            # share of the SfM frames the model must hold to be used
MAX_REPROJECTION_PX = 1.5       # largest mean reprojection error of the model's points (SfM image pixels)
MIN_POINTS = 20                 # fewest triangulated points seen per registered frame (mean)
MIN_TRACK = 3                   # a point's depth counts when at least this many frames see it ...
MIN_ANGLE_DEG = 3.0             # ... from rays at least this far apart
MAX_LOG_RATIO = math.log(4.0)   # points further than this factor from the frame's median ratio to the prior are
                                # outliers (repetitive texture matched a period off), and no pixel is bent further
INIT_MIN_TRI_ANGLE_DEG = 4.0    # COLMAP starts from a pair this far apart (its default, 16, rejects short clips)
SPREAD = 1 / 32                 # sigma of the densifying Gaussian, as a share of the frame width
FADE = 0.01                     # weight (relative to the densest) below which the prior takes over


def sfm_missing() -> str | None:
    """Why SfM camera motion is unavailable, or None."""
    if importlib.util.find_spec("pycolmap") is None:
        return "pycolmap is not installed (pip install pycolmap for camera motion and sparse depth)"
    return None


def _reconstruct(frames: np.ndarray, names: list[str], K: np.ndarray, folder: Path):
    """COLMAP on `frames` uint8 [M, H, W, 3] with fixed PINHOLE K. -> the largest Reconstruction or None"""
    import pycolmap
    pycolmap.logging.minloglevel = 3                                               # fatal only: the caller says why it failed
    pycolmap.set_random_seed(0)                                                    # RANSAC: same input, same poses
    images, db = folder / "images", folder / "database.db"
    images.mkdir()
    for name, frame in zip(names, frames):
        Image.fromarray(frame).save(images / name)
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "PINHOLE"
    reader.camera_params = ",".join(str(float(v)) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
    pycolmap.extract_features(db, images, camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                              device=pycolmap.Device.cpu)
    pycolmap.match_sequential(db, device=pycolmap.Device.cpu)
    options = pycolmap.IncrementalPipelineOptions()
    options.random_seed, options.num_threads = 0, 1                                # deterministic mapping
    options.ba_refine_focal_length = options.ba_refine_principal_point = options.ba_refine_extra_params = False
    options.min_model_size = 2                                                     # `accept` judges the model
    options.mapper.init_min_tri_angle = INIT_MIN_TRI_ANGLE_DEG
    models = pycolmap.incremental_mapping(db, images, folder / "sparse", options=options)
    return max(models.values(), key=lambda r: r.num_reg_images(), default=None)


def _w2c(image) -> np.ndarray:
    pose = image.cam_from_world() if callable(image.cam_from_world) else image.cam_from_world
    return np.vstack([pose.matrix(), [0.0, 0.0, 0.0, 1.0]])                        # [4, 4]


def well_placed(rec) -> set[int]:
    """Ids of the points whose depth the reconstruction pins down: seen by at least MIN_TRACK frames
    whose rays to it open at least MIN_ANGLE_DEG (far points seen from nearby cameras are not)."""
    centres = {im.image_id: -_w2c(im)[:3, :3].T @ _w2c(im)[:3, 3] for im in rec.images.values() if im.has_pose}
    good = set()
    for point_id, point in rec.points3D.items():
        cams = [centres[e.image_id] for e in point.track.elements if e.image_id in centres]
        if len(cams) < MIN_TRACK:
            continue
        rays = np.stack(cams) - point.xyz                                          # [T, 3]
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        if np.degrees(np.arccos(np.clip((rays @ rays.T).min(), -1.0, 1.0))) >= MIN_ANGLE_DEG:
            good.add(point_id)
    return good


def _observations(rec, image, w2c: np.ndarray, good: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels [P, 2] and camera z [P] of the well-placed points `image` observes."""
    seen = [p for p in image.points2D if p.has_point3D() and p.point3D_id in good]
    if not seen:
        return np.zeros((0, 2)), np.zeros(0)
    xyz = np.stack([rec.points3D[p.point3D_id].xyz for p in seen])                 # [P, 3]
    return np.stack([p.xy for p in seen]), xyz @ w2c[:3, :3].T[:, 2] + w2c[2, 3]


def densify(xy: np.ndarray, z: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, float]:
    """The prior [H, W] bent to sparse depths z [P] at pixels xy [P, 2] (working pixels).
    -> (depth float32 [H, W], share of pixels near points)"""
    h, w = prior.shape
    u, v = np.clip(np.round(xy[:, 0]).astype(int), 0, w - 1), np.clip(np.round(xy[:, 1]).astype(int), 0, h - 1)
    ok = z > 0
    ratio = np.log(z[ok] / prior[v[ok], u[ok]])                                     # [P'] log depth / prior
    agree = np.abs(ratio - np.median(ratio)) <= MAX_LOG_RATIO if len(ratio) else np.zeros(0, bool)
    rows, cols, ratio = v[ok][agree], u[ok][agree], ratio[agree]
    sums, counts = np.zeros((h, w)), np.zeros((h, w))
    np.add.at(sums, (rows, cols), ratio)
    np.add.at(counts, (rows, cols), 1.0)
    sigma = max(1.0, SPREAD * w)
    sums, counts = gaussian_filter(sums, sigma, mode="nearest"), gaussian_filter(counts, sigma, mode="nearest")
    if counts.max() <= 0:
        return prior.astype(np.float32), 0.0
    weight = counts / (counts + FADE * counts.max())                               # -> 0 far from points
    log_ratio = np.clip(np.where(counts > 0, sums / np.maximum(counts, 1e-30), 0.0), -MAX_LOG_RATIO, MAX_LOG_RATIO)
    log_ratio = log_ratio * weight
    return (prior * np.exp(log_ratio)).astype(np.float32), float((weight > 0.5).mean())


def _interpolate(keys: np.ndarray, c2w: np.ndarray, n: int) -> np.ndarray:
    """Poses at registered frame indices `keys` -> all n frames (slerp / linear inside, held outside)."""
    t = np.clip(np.arange(n), keys[0], keys[-1])
    out = np.tile(np.eye(4), (n, 1, 1))                                             # [n, 4, 4]
    out[:, :3, :3] = Slerp(keys, Rotation.from_matrix(c2w[:, :3, :3]))(t).as_matrix() if len(keys) > 1 \
        else c2w[0, :3, :3]
    out[:, :3, 3] = np.stack([np.interp(t, keys, c2w[:, :3, 3][:, k]) for k in range(3)], -1)
    return out


def _downscale(frames: np.ndarray, K: np.ndarray, max_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrink frames [M, H, W, 3] to at most max_width wide for speed, with K [3, 3] to match."""
    h, w = frames.shape[1:3]
    if w <= max_width:
        return frames, K
    size = (max_width, max(8, round(h * max_width / w)))
    small = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])
    K = np.array(K, dtype=np.float64)
    K[0] *= size[0] / w
    K[1] *= size[1] / h
    return small, K


@dataclass(frozen=True)
class SfmResult:
    """c2w float64 [N, 4, 4] re-anchored to frame 0; depth float32 [N, H, W]; trust in [0, 1]; notes."""
    c2w: np.ndarray
    depth: np.ndarray
    trust: float
    notes: dict


def accept(picked: int, registered: int, points_seen: int, reprojection_px: float) -> str | None:
    """Why a reconstruction is not sound enough to replace the prior, or None when it is."""
    if registered < max(2, MIN_REGISTERED * picked):
        return f"SfM registered {registered} of {picked} frames (too little parallax or texture)"
    if reprojection_px > MAX_REPROJECTION_PX:
        return f"SfM's mean reprojection error is {reprojection_px:.2f} px (more than {MAX_REPROJECTION_PX})"
    if points_seen < MIN_POINTS * registered:
        return f"SfM triangulated {points_seen / registered:.0f} points per frame (fewer than {MIN_POINTS})"
    return None


def sfm_depth(frames: np.ndarray, K: np.ndarray, prior: np.ndarray, max_frames: int, max_width: int = 480) -> tuple[SfmResult | None, str]:
    """frames uint8 [N, H, W, 3], K [3, 3] (working pixels), prior [H, W] (the planar prior).
    -> (SfmResult, what happened) or (None, why the prior stays)"""
    n, (h, w) = len(frames), prior.shape
    if n < 2:
        return None, "a single frame"
    picks = np.unique(np.linspace(0, n - 1, min(n, max(2, max_frames))).round().astype(int))
    names = [f"{i:06d}.png" for i in picks]
    small, K_small = _downscale(frames[picks], K, max_width)
    to_working = np.array([w / small.shape[2], h / small.shape[1]])                 # small pixels -> working
    with tempfile.TemporaryDirectory(prefix="roam-sfm-") as tmp:
        rec = _reconstruct(small, names, K_small, Path(tmp))
        images = {} if rec is None else {im.name: im for im in rec.images.values() if im.has_pose}
        keys = np.array([i for i, name in zip(picks, names) if name in images])
        w2c = np.stack([_w2c(images[f"{i:06d}.png"]) for i in keys]) if len(keys) else np.zeros((0, 4, 4))
        good = well_placed(rec) if rec is not None else set()
        seen = [_observations(rec, images[f"{i:06d}.png"], m, good) for i, m in zip(keys, w2c)]
        errors = [p.error for p in rec.points3D.values()] if rec is not None else []
    reprojection = float(np.mean(errors)) if errors else float("inf")
    why = accept(len(picks), len(keys), sum(len(z) for _, z in seen), reprojection)
    if why is not None:
        return None, why
    at = [(np.clip(xy[:, 1] * to_working[1], 0, h - 1).astype(int), np.clip(xy[:, 0] * to_working[0], 0, w - 1).astype(int))
          for xy, _ in seen]
    ratios = np.concatenate([prior[v, u] / z for (v, u), (_, z) in zip(at, seen)])            # [P] prior / SfM depth
    ground = np.concatenate([prior[v, u] < prior.max() for v, u in at])                      # below the horizon
    scale_from = "the ground plane" if ground.sum() >= MIN_POINTS else "the prior"
    scale = float(np.median(ratios[ground] if scale_from == "the ground plane" else ratios))
    dense, covered = zip(*(densify(xy * to_working, z * scale, prior) for xy, z in seen))
    nearest = np.abs(np.arange(n)[:, None] - keys[None, :]).argmin(1)                # [N] registered frame per frame
    c2w = w2c[0] @ np.linalg.inv(w2c)                                              # re-anchored [M, 4, 4]
    c2w[:, :3, 3] *= scale
    trust = len(keys) / len(picks) * float(np.mean(covered))
    notes = {"registered": [int(len(keys)), int(len(picks))], "reprojection_px": round(reprojection, 3),
             "points": len(errors), "scale_from": scale_from, "trust": round(trust, 3)}
    return (SfmResult(_interpolate(keys, c2w, n), np.stack(dense)[nearest], trust, notes),
            f"sfm (pycolmap: {len(keys)} of {len(picks)} frames registered, {reprojection:.2f} px, scale from "
            f"{scale_from})")
