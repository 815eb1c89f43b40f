"""`sample`: exact depth for the built-in sample scene's own video.

A video is recognised by its content, whatever wrote it: its first and last frames are compared with
fresh renders of the sample (scenes/sample.py) with as many frames as the video, at the video's fps
and the configured seed, at the working size. If both match within MATCH_MAE code values (H.264
at CRF 18 is within about 1-2), every frame's depth is rendered exactly as build_sample_scene does
(same poses, K, times and renderer), with the sample's K and poses.
"""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
import torch

from scenes.config import SampleConfig
from scenes.depth.base import DepthError, DepthRequest, DepthResult
from scenes.sample import SampleRenderer, sample_intrinsics, sample_poses, sample_up

MATCH_MAE = 10.0         # mean abs difference (uint8 codes) under which a frame is the sample's: H.264 adds
                         # ~1-2, a 4x downscale of an 832x480 sample video ~6; other videos differ by tens


def sample_candidate(req: DepthRequest, sample_cfg: SampleConfig) -> SampleConfig:
    """The sample settings this video would have been rendered with."""
    return dataclasses.replace(sample_cfg, frames=req.num_frames, fps=float(req.fps))


def match_sample(req: DepthRequest, sample_cfg: SampleConfig, progress: bool = False
                 ) -> tuple[DepthResult | None, float]:
    """Compare the video's first and last frames with the sample's renders (one GL context for
    everything); when both are within MATCH_MAE, render the exact depth of every frame too.
    -> (DepthResult or None when it is not the sample's video, worst mean absolute difference in codes)"""
    cand = sample_candidate(req, sample_cfg)
    width, height = req.size
    if width < 2 or height < 2:
        return None, float("inf")
    c2w, K = sample_poses(cand), sample_intrinsics(width, height)                  # [N, 4, 4], [3, 3]
    with SampleRenderer(width, height, cand.seed) as renderer:
        worst = 0.0
        for i in sorted({0, req.num_frames - 1}):
            rgb, _ = renderer.render(c2w[i], i / cand.fps, K)
            diff = np.abs(rgb.astype(np.int16) - req.frames[i].numpy().astype(np.int16))
            worst = max(worst, float(diff.mean()))
        if worst > MATCH_MAE:
            return None, worst
        steps = range(req.num_frames)
        if progress:
            from tqdm import tqdm
            steps = tqdm(steps, desc="sample depth", unit="frame", file=sys.stderr)
        depth = np.stack([renderer.render(c2w[i], i / cand.fps, K)[1] for i in steps])   # [N, H, W]
    n = req.num_frames
    notes = {"sample": dataclasses.asdict(cand), "mismatch_codes": round(worst, 3), "up": [float(x) for x in sample_up()]}
    return DepthResult(depth=torch.from_numpy(depth).clamp_min(1e-4), K=torch.from_numpy(K).expand(n, 3, 3).clone(),
                       c2w=torch.from_numpy(c2w), provider="sample", notes=notes), worst  # [N, H, W], [N, 3, 3], [N, 4, 4]


def sample_depth(req: DepthRequest, sample_cfg: SampleConfig, progress: bool = False) -> DepthResult:
    """Exact depth, K and poses of the sample video, or DepthError when it is not the sample's."""
    result, mismatch = match_sample(req, sample_cfg, progress)
    if result is None:
        raise DepthError(f"{req.video_path}: not the built-in sample's video (its frames differ from the "
                         f"sample's renders by {mismatch:.1f} codes on average); use --depth auto or estimate")
    return result
