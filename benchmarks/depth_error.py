"""Depth of the weight-free `estimate` provider, the planar prior alone against structure from motion
(scenes/depth/sfm.py), on the built-in sample (exact depth), a rectified stereo pair with
ground-truth disparity (real photographs), and any videos (no ground truth).

    python -m benchmarks.depth_error --sample [--width 416 --height 240 --frames 48]
    python -m benchmarks.depth_error --stereo LEFT.png RIGHT.png DISP.npz --calib F,CX,CY,DOFFS,BASELINE
    python -m benchmarks.depth_error --video CLIP.mp4 [...]

Each input is built with `build --depth estimate` twice (scenes.depth.sfm off and on), and the sample
also with `--depth auto` (its exact depth). Reported, one JSON line per input and mode: the provider's
decision (notes), trust, build time, and where the depth is known AbsRel, RMSE, delta1 and AbsRel after
median scaling (the shape error, free of the unit). For every input, multi-view consistency: frame i+4
warped into frame i through frame i's depth and both cameras, mean absolute RGB error (0..255) on the
pixels that land inside frame i+4 (static poses warp nothing: the plain frame difference). The stereo
pair becomes a two-frame video (left, right); its depth is scored on the left frame, where the
disparity is known (depth = F * BASELINE / (disparity + DOFFS)). CPU only.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from runtime.config import load_config
from scenes.build import build_scene
from scenes.depth.base import depth_errors
from scenes.dynamic_mask import pixel_to_pixel
from scenes.sample import build_sample_scene
from scenes.video import VideoWriter

GAP = 4                             # frames between the two views of the consistency measure


def consistency(scene) -> float:
    """Mean |frame i - frame i+GAP warped into i| (0..255) over the pixels that land inside frame i+GAP."""
    n, h, w = scene.num_frames, scene.height, scene.width
    gap = min(GAP, n - 1)
    i, j = torch.arange(0, n - gap), torch.arange(gap, n)
    A = pixel_to_pixel(scene.K[i], scene.c2w[i], scene.K[j], scene.c2w[j])          # [T, 3, 4]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    d = scene.depth[i]                                                              # [T, H, W]
    q = [d * (A[:, c, 0, None, None] * xs + A[:, c, 1, None, None] * ys + A[:, c, 2, None, None])
         + A[:, c, 3, None, None] for c in range(3)]
    u, v = q[0] / q[2], q[1] / q[2]
    inside = (q[2] > 0) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)          # [T, H, W]
    grid = torch.stack([u / (w - 1) * 2 - 1, v / (h - 1) * 2 - 1], -1)               # [T, H, W, 2]
    src = scene.frames[j].permute(0, 3, 1, 2).float()                                # [T, 3, H, W]
    warped = F.grid_sample(src, grid, mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
    err = (warped - scene.frames[i].float()).abs().mean(-1)                          # [T, H, W]
    return float(err[inside].mean())


def write_video(path: Path, frames: np.ndarray, fps: float) -> Path:
    with VideoWriter(path, fps=fps, width=frames.shape[2], height=frames.shape[1], crf=10) as writer:
        writer.write_frames(frames)
    return path


def measure(video: Path, width: int, height: int, modes: dict[str, tuple[str, bool]], score=None) -> dict:
    """Build `video` once per mode (name -> (depth provider, sfm on)); `score(scene)` -> errors, where known."""
    base = load_config()
    out = {"input": video.name, "size": [width, height]}
    for name, (provider, sfm) in modes.items():
        with tempfile.TemporaryDirectory() as tmp:
            scenes = dataclasses.replace(base.scenes, width=width, height=height, cache_dir=str(Path(tmp) / "cache"),
                                         fit="stretch", depth=dataclasses.replace(base.scenes.depth, sfm=sfm))
            t0 = time.perf_counter()
            scene = build_scene(dataclasses.replace(base, scenes=scenes), video, device="cpu", depth=provider,
                                prompt="", progress=False)
            notes = scene.meta["depth_notes"]
            out[name] = {"build_s": round(time.perf_counter() - t0, 1), "depth": notes.get("depth", provider),
                         "trust": notes.get("trust"), "consistency": round(consistency(scene), 2),
                         **({k: round(v, 4) for k, v in score(scene).items()} if score else {})}
    return out


ESTIMATE = {"planar": ("estimate", False), "sfm": ("estimate", True)}


def sample(width: int, height: int, frames: int) -> dict:
    cfg = dataclasses.replace(load_config().scenes.sample, frames=frames)
    truth = build_sample_scene(cfg, width, height)
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "sample.mp4", truth.frames.numpy(), cfg.fps)
        return measure(video, width, height, {**ESTIMATE, "exact": ("auto", False)},
                       lambda scene: depth_errors(scene.depth, truth.depth))


def stereo(left: Path, right: Path, disp: Path, calib: list[float]) -> dict:
    """The pair as a two-frame video (even size); the left frame's depth scored where disparity is known."""
    focal, _, _, doffs, baseline = calib
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in (left, right)])
    h, w = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2
    disparity = np.load(disp)
    disparity = disparity[disparity.files[0]] if hasattr(disparity, "files") else disparity
    depth = torch.from_numpy(focal * baseline / (disparity[:h, :w] + doffs)).float()   # [H, W], the baseline's unit
    valid = torch.isfinite(depth) & (depth > 0)
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / f"{left.stem}-{right.stem}.mp4", frames[:, :h, :w], 24.0)
        out = measure(video, w, h, ESTIMATE, lambda scene: depth_errors(scene.depth[0][valid], depth[valid]))
    out["valid_share"] = round(float(valid.float().mean()), 3)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", action="store_true", help="the built-in sample scene (exact depth)")
    parser.add_argument("--width", type=int, default=416)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--stereo", nargs=3, type=Path, metavar=("LEFT", "RIGHT", "DISP"), default=None)
    parser.add_argument("--calib", default=None, help="F,CX,CY,DOFFS,BASELINE of the stereo pair (pixels, unit)")
    parser.add_argument("--video", nargs="*", type=Path, default=[])
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.sample:
        print(json.dumps(sample(args.width, args.height, args.frames)), flush=True)
    if args.stereo:
        print(json.dumps(stereo(*args.stereo, [float(x) for x in args.calib.split(",")])), flush=True)
    for video in args.video:
        print(json.dumps(measure(video, args.width, args.height, ESTIMATE)), flush=True)


if __name__ == "__main__":
    main()
