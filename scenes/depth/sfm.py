"""EXPERIMENTAL camera motion for the `estimate` provider from structure-from-motion with pycolmap
(`pip install pycolmap`, an optional extra; on with scenes.depth.sfm_poses=true).

Measured on the built-in sample (416x240, sideways dolly): the direction of motion is right (cosine
0.998 at 16 and 48 frames; rotation error 3.7 deg of 16 at 16 frames, 0.26 deg at 48), but the scale
is not: the triangulated points fall into groups whose depths disagree by ~80x on that synthetic
scene (repetitive textures), so the median-ratio scale below was 1.4x off at 48 frames and 60x off
at 16. Hence off by default.

Up to scenes.depth.sfm_max_frames evenly spaced frames are written as PNGs at the working size, SIFT
features are extracted (CPU) and matched sequentially, and COLMAP's incremental mapper runs with the
intrinsics fixed to the provider's K. The largest model must register at least half of those
frames; others are interpolated (slerp / linear) or held. Poses are re-anchored to the first frame
and scaled so the triangulated points seen from it have the median depth of the planar prior at
their pixels. Cost: about 0.3-0.5 s per 416x240 frame on CPU.
"""
from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation, Slerp

MIN_REGISTERED = 0.5            # share of the SfM frames the model must hold to be used


def sfm_missing() -> str | None:
    """Why SfM camera motion is unavailable, or None."""
    if importlib.util.find_spec("pycolmap") is None:
        return "pycolmap is not installed (pip install pycolmap for camera motion)"
    return None


def _reconstruct(frames: np.ndarray, names: list[str], K: np.ndarray, folder: Path):
    """COLMAP on `frames` uint8 [M, H, W, 3] with fixed PINHOLE K. -> the largest Reconstruction or None"""
    import pycolmap
    pycolmap.logging.minloglevel = 2                                               # warnings and errors only
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
    models = pycolmap.incremental_mapping(db, images, folder / "sparse", options=options)
    return max(models.values(), key=lambda r: r.num_reg_images(), default=None)


def _w2c(image) -> np.ndarray:
    pose = image.cam_from_world() if callable(image.cam_from_world) else image.cam_from_world
    return np.vstack([pose.matrix(), [0.0, 0.0, 0.0, 1.0]])                        # [4, 4]


def _point_depths(rec, image, w2c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels [P, 2] and camera z [P] of the triangulated points `image` observes."""
    seen = [p for p in image.points2D if p.has_point3D()]
    if not seen:
        return np.zeros((0, 2)), np.zeros(0)                                            # [0, 2], [0]
    xyz = np.stack([rec.points3D[p.point3D_id].xyz for p in seen])                 # [P, 3]
    return np.stack([p.xy for p in seen]), xyz @ w2c[:3, :3].T[:, 2] + w2c[2, 3]        # [P, 2], [P]


def _interpolate(keys: np.ndarray, c2w: np.ndarray, n: int) -> np.ndarray:
    """Poses at registered frame indices `keys` -> all n frames (slerp / linear inside, held outside)."""
    t = np.clip(np.arange(n), keys[0], keys[-1])                                        # [n]
    out = np.tile(np.eye(4), (n, 1, 1))                                             # [n, 4, 4]
    out[:, :3, :3] = Slerp(keys, Rotation.from_matrix(c2w[:, :3, :3]))(t).as_matrix() if len(keys) > 1 \
        else c2w[0, :3, :3]
    out[:, :3, 3] = np.stack([np.interp(t, keys, c2w[:, :3, 3][:, k]) for k in range(3)], -1)  # [n, 3]
    return out


def _downscale(frames: np.ndarray, K: np.ndarray, prior: np.ndarray, max_width: int):
    """Shrink frames [M, H, W, 3] to at most max_width wide for speed, with K and prior [H, W] to match."""
    h, w = frames.shape[1:3]
    if w <= max_width:
        return frames, K, prior
    size = (max_width, max(8, round(h * max_width / w)))
    small = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])  # [M, h, w, 3]
    K = np.array(K, dtype=np.float64)                                                   # [3, 3]
    K[0] *= size[0] / w
    K[1] *= size[1] / h
    rows = (np.arange(size[1]) * h / size[1]).astype(int)                               # [h]
    cols = (np.arange(size[0]) * w / size[0]).astype(int)                               # [w]
    return small, K, prior[rows][:, cols]


def sfm_poses(frames: np.ndarray, K: np.ndarray, prior_depth: np.ndarray, max_frames: int, max_width: int = 480
              ) -> tuple[np.ndarray | None, str]:
    """frames uint8 [N, H, W, 3], K [3, 3] (working pixels), prior_depth [H, W] (for the scale).
    -> (c2w float64 [N, 4, 4] re-anchored to frame 0, or None; what happened, for the notes)"""
    n = len(frames)
    if n < 2:
        return None, "static (a single frame)"
    picks = np.unique(np.linspace(0, n - 1, min(n, max(2, max_frames))).round().astype(int))  # [M]
    names = [f"{i:06d}.png" for i in picks]
    small, K, prior_depth = _downscale(frames[picks], K, prior_depth, max_width)
    with tempfile.TemporaryDirectory(prefix="roam-sfm-") as tmp:
        rec = _reconstruct(small, names, K, Path(tmp))
        registered = {} if rec is None else {im.name: im for im in rec.images.values() if im.has_pose}
        if len(registered) < MIN_REGISTERED * len(picks) or len(registered) < 2:
            return None, f"static (SfM registered {len(registered)} of {len(picks)} frames)"
        keys = np.array([i for i, name in zip(picks, names) if name in registered])     # [M']
        w2c = np.stack([_w2c(registered[f"{i:06d}.png"]) for i in keys])             # [M, 4, 4]
        xy, z = _point_depths(rec, registered[f"{keys[0]:06d}.png"], w2c[0])
    c2w = w2c[0] @ np.linalg.inv(w2c)                                               # re-anchored [M, 4, 4]
    h, w = prior_depth.shape
    ok = (z > 0) & (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    if ok.sum() < 8:
        return None, "static (SfM triangulated too few points to set its scale)"
    scale = np.median(prior_depth[xy[ok, 1].astype(int), xy[ok, 0].astype(int)] / z[ok])
    c2w[:, :3, 3] *= scale
    return _interpolate(keys, c2w, n), f"sfm (pycolmap, {len(keys)} of {len(picks)} frames registered)"
