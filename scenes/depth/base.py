"""What every depth provider shares: the request it gets, the result it returns, its error type, and
the geometry helpers they all use (default intrinsics, nearest depth stretch, anisotropic K scaling).

Conventions: depth is camera z (any positive unit, "metres-ish"), K is in pixels of the working size
with pixel centres at integer coordinates, c2w is camera-to-world with OpenCV axes (+x right, +y down,
+z forward). Frames arrive already fitted to the working size (scenes/frame_fit.py: stretch, crop or pad).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from scenes.config import DepthConfig
from scenes.errors import SceneInputError
from scenes.frame_fit import FrameFit


class DepthError(SceneInputError):
    """A depth provider that cannot run or was given bad depth: one line naming the file and the fix."""


@dataclass(frozen=True)
class DepthRequest:
    """One video to give depth to.

    frames: uint8 [N, H, W, 3] RGB at the working size (W x H); fps: source frame rate;
    source_size: (width, height) of the video as displayed, before the fit to W x H;
    fit: how the frames were fitted (scenes.fit: stretch | crop | pad), so depth lands under them."""
    video_path: Path
    frames: torch.Tensor
    fps: float
    source_size: tuple[int, int]
    cfg: DepthConfig = field(default_factory=DepthConfig)
    fit: str = "stretch"

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the working size."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    @property
    def frame_fit(self) -> FrameFit:
        """The map from the source picture to the working frames."""
        return FrameFit(self.fit, self.source_size, self.size)


@dataclass
class DepthResult:
    """depth float32 [N, H, W] (> 0, finite), K float32 [N, 3, 3], c2w float32 [N, 4, 4];
    provider: its name; notes: what it assumed (stored in the Scene's meta)."""
    depth: torch.Tensor
    K: torch.Tensor
    c2w: torch.Tensor
    provider: str
    notes: dict = field(default_factory=dict)

    def check(self, n: int, width: int, height: int) -> "DepthResult":
        """Assert the provider kept its promise (shapes, dtypes, finite positive depth)."""
        assert tuple(self.depth.shape) == (n, height, width) and self.depth.dtype == torch.float32, self.depth.shape
        assert tuple(self.K.shape) == (n, 3, 3) and tuple(self.c2w.shape) == (n, 4, 4)
        assert bool(torch.isfinite(self.depth).all()) and bool((self.depth > 0).all())
        return self


def default_K(width: int, height: int, source_size: tuple[int, int], hfov_deg: float, fit: str = "stretch") -> np.ndarray:
    """Pinhole K with `hfov_deg` across the source width, square pixels in the SOURCE, principal point
    at the centre, brought to the W x H working frame by `fit` (stretch: anisotropic scaling).
    -> float32 [3, 3]"""
    src_w, src_h = source_size
    f_src = 0.5 * src_w / math.tan(math.radians(hfov_deg) / 2)
    K_src = np.array([[f_src, 0, src_w / 2], [0, f_src, src_h / 2], [0, 0, 1]])
    return FrameFit(fit, source_size, (width, height)).K(K_src, source_size).astype(np.float32)


def scale_K(K: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """The reference's anisotropic scaling (pipeline-spec 4.2): row 0 (fx, 0, cx) times W'/w, row 1
    (0, fy, cy) times H'/h. K: [..., 3, 3]; sizes are (width, height). -> float64 [..., 3, 3]"""
    K = np.array(K, dtype=np.float64)
    K[..., 0, :] *= to_size[0] / from_size[0]
    K[..., 1, :] *= to_size[1] / from_size[1]
    return K


def static_poses(n: int) -> torch.Tensor:
    """N identity camera-to-world poses (a camera that does not move). -> float32 [N, 4, 4]"""
    return torch.eye(4, dtype=torch.float32).expand(n, 4, 4).clone()


def check_depth_values(depth: np.ndarray, where: str) -> None:
    """One-line DepthError for NaN/inf or non-positive depth; `where` names the file."""
    finite = np.isfinite(depth)
    if not finite.all():
        raise DepthError(f"{where}: depth holds {int((~finite).sum())} NaN/inf values; "
                         "fix or mask them in the depth file")
    if (depth <= 0).any():
        raise DepthError(f"{where}: depth holds {int((depth <= 0).sum())} values <= 0; depth is camera z and "
                         "must be positive everywhere (fill holes before building)")


def depth_errors(pred: torch.Tensor, truth: torch.Tensor) -> dict:
    """Standard monocular-depth errors over all pixels: AbsRel = mean |p - t| / t, RMSE = sqrt(mean (p - t)^2)
    (in truth's unit), delta1 = share of pixels with max(p / t, t / p) < 1.25, and abs_rel_median_scaled:
    AbsRel after scaling pred by median(truth) / median(pred) (the shape error, free of the unit).
    pred, truth: [..., H, W] > 0"""
    p, t = pred.to(torch.float64), truth.to(torch.float64)
    ratio = torch.maximum(p / t, t / p)
    scaled = p * (t.median() / p.median())
    return {"abs_rel": float(((p - t).abs() / t).mean()), "rmse": float(((p - t) ** 2).mean().sqrt()),
            "delta1": float((ratio < 1.25).to(torch.float64).mean()),
            "abs_rel_median_scaled": float(((scaled - t).abs() / t).mean())}
