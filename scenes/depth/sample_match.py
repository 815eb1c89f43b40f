"""`sample`: exact depth for the built-in sample scene's own video.

A video is recognised by its content, whatever wrote it: its first and last frames are compared with
fresh renders of the sample (scenes/sample.py) with as many frames as the video, at the video's fps
and the configured seed, at the working size. If both match within MATCH_MAE code values (H.264
at CRF 18 is within about 1-2), the whole sample is re-rendered to give exact depth, K and poses.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from scenes.config import SampleConfig
from scenes.depth.base import DepthError, DepthRequest, DepthResult
from scenes.sample import SampleRenderer, build_sample_scene, sample_intrinsics, sample_poses

MATCH_MAE = 6.0          # mean absolute difference in uint8 codes under which a frame is the sample's


def sample_candidate(req: DepthRequest, sample_cfg: SampleConfig) -> SampleConfig:
    """The sample settings this video would have been rendered with."""
    return dataclasses.replace(sample_cfg, frames=req.num_frames, fps=float(req.fps))


def sample_mismatch(req: DepthRequest, sample_cfg: SampleConfig) -> float:
    """Largest mean absolute difference (uint8 codes) of the video's first and last frames from the
    sample's renders; small means it is the sample's video."""
    cand = sample_candidate(req, sample_cfg)
    width, height = req.size
    if width < 2 or height < 2:
        return float("inf")
    c2w, K = sample_poses(cand), sample_intrinsics(width, height)
    worst = 0.0
    with SampleRenderer(width, height, cand.seed) as renderer:
        for i in sorted({0, req.num_frames - 1}):
            rgb, _ = renderer.render(c2w[i], i / cand.fps, K)
            diff = np.abs(rgb.astype(np.int16) - req.frames[i].numpy().astype(np.int16))
            worst = max(worst, float(diff.mean()))
    return worst


def is_sample_video(req: DepthRequest, sample_cfg: SampleConfig) -> bool:
    return sample_mismatch(req, sample_cfg) <= MATCH_MAE


def sample_depth(req: DepthRequest, sample_cfg: SampleConfig, progress: bool = False) -> DepthResult:
    """Exact depth, K and poses of the sample video, or DepthError when it is not the sample's."""
    mismatch = sample_mismatch(req, sample_cfg)
    if mismatch > MATCH_MAE:
        raise DepthError(f"{req.video_path}: not the built-in sample's video (its frames differ from the "
                         f"sample's renders by {mismatch:.1f} codes on average); use --depth auto or estimate")
    cand = sample_candidate(req, sample_cfg)
    width, height = req.size
    scene = build_sample_scene(cand, width, height, progress=progress)
    notes = {"sample": dataclasses.asdict(cand), "mismatch_codes": round(mismatch, 3),
             "up": scene.meta.get("up")}
    return DepthResult(depth=scene.depth.to(torch.float32).clamp_min(1e-4), K=scene.K, c2w=scene.c2w,
                       provider="sample", notes=notes)
