"""Per-frame (the reference's warper) vs fused world-state renders of the built-in sample scene,
scored against its exact renders from the target cameras.

    python -m benchmarks.fusion_quality                              # 832x480, 120 frames, CPU
    python -m benchmarks.fusion_quality --device cuda --png docs/fusion.png

For each trajectory (targets = scenes.trajectory.target_c2w over the sample's source poses, both
anchored at the first camera as the reference's default and riding along with the source camera
as --relative_to_source) and each output frame t: ground truth = render_sample_view(target t,
time t). Renders go in 12-frame blocks, as the generation worker does (timed per block).
Reported: hole fraction, PSNR on each render's valid pixels and on the per-frame render's valid
pixels, PSNR on all pixels after push-pull hole filling (the geometry refiner), the share of target
pixels that no source frame sees at all (holes no fusion can fill), how the moving ball's pixels
are made, and fused points inside the ball's swept volume (ghosts; must be 0).
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from model.refiners import push_pull_fill
from scenes.config import FusionConfig, SampleConfig
from scenes.dynamic_mask import dynamic_debug_image, project_points, unproject
from scenes.fusion import FusedWorld, build_world, render_fused
from scenes.render import render_views
from scenes.sample import SampleRenderer, ball_center, ball_radius, build_sample_scene
from scenes.trajectory import read_keys, target_c2w

TRAJECTORIES = ("traj/x_y_circle_cycle.txt", "traj/zoom_out_in.txt")
BLOCK = 12


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> float:
    """PSNR (dB, peak 255) over the pixels `where` [T, H, W] of uint8 images [T, H, W, 3]."""
    diff = (a.to(torch.float64) - b.to(torch.float64))[where]                       # [P, 3]
    mse = float((diff ** 2).mean()) if diff.numel() else float("nan")
    return 10 * math.log10(255.0 ** 2 / mse) if mse > 0 else float("inf")


def fill(render: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The geometry refiner's push-pull fill. uint8 [T, H, W, 3], bool [T, H, W] -> uint8 [T, H, W, 3]."""
    out = push_pull_fill(render.permute(0, 3, 1, 2).float(), mask[:, None].float())
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def ground_truth(scene, tgt: torch.Tensor, cfg: SampleConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact renders at the target cameras and times. -> rgb uint8 [T, H, W, 3], depth [T, H, W]."""
    N, H, W, _ = scene.frames.shape
    rgbs, depths = [], []
    with SampleRenderer(W, H, cfg.seed) as r:
        for t in range(N):
            rgb, depth = r.render(tgt[t].numpy().astype(np.float64), t / cfg.fps, scene.K[t].numpy())
            rgbs.append(torch.from_numpy(rgb))
            depths.append(torch.from_numpy(depth))
    return torch.stack(rgbs), torch.stack(depths)


def ball_pixels(depth: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor, fps: float) -> torch.Tensor:
    """Pixels whose true surface point is on the ball. depth [T, H, W], K [T, 3, 3], c2w [T, 4, 4]
    -> bool [T, H, W]."""
    centres = torch.tensor(np.stack([ball_center(t / fps) for t in range(len(depth))]), dtype=torch.float32)
    pts = unproject(depth, K, c2w)                                                  # [T, H, W, 3]
    return (pts - centres[:, None, None]).norm(dim=-1) < ball_radius() * 1.02


def unseen(scene, tgt: torch.Tensor, gt_depth: torch.Tensor, stride: int = 4) -> float:
    """Share of the target pixels (every stride-th row and column) whose true surface no source frame
    sees (camera z within 3 %): holes that no fusion of the video can fill."""
    N, H, W = scene.depth.shape
    K_all, w2c = scene.K.to(torch.float32), torch.linalg.inv(scene.c2w.to(torch.float32))   # [N, 3, 3], [N, 4, 4]
    seen = []
    for t in range(len(tgt)):
        pts = unproject(gt_depth[t:t + 1], scene.K[t:t + 1], tgt[t:t + 1])[0, ::stride, ::stride].reshape(1, -1, 3)
        u, v, z = project_points(pts.expand(N, -1, 3), K_all, w2c)                  # [N, P] each
        x, y = torch.round(u).long(), torch.round(v).long()
        inside = (z > 0) & (x >= 0) & (x < W) & (y >= 0) & (y < H)
        d = scene.depth[torch.arange(N)[:, None], y.clamp(0, H - 1), x.clamp(0, W - 1)]   # [N, P]
        seen.append((inside & ((d - z).abs() < 0.03 * z)).any(0))                   # [P]
    return 1 - float(torch.cat(seen).float().mean())


def ghost_points(world: FusedWorld, frames: int, fps: float) -> int:
    """Fused points inside the ball (0.9 of its radius) at any of the video's times."""
    centres = torch.tensor(np.stack([ball_center(t / fps) for t in range(frames)]), dtype=torch.float32)
    xyz = world.xyz.cpu()
    return int(sum(int(((xyz - c).norm(dim=-1) < 0.9 * ball_radius()).sum()) for c in centres))


def render_blocks(world, scene, tgt, device, timings: dict | None = None) -> dict[str, tuple]:
    """Per-frame and fused renders of the whole video in BLOCK-frame blocks, on the CPU; the seconds
    each block took are appended to timings[renderer name] when given."""
    out = {"per-frame": ([], []), "fused": ([], [])}
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    for a in range(0, len(tgt), BLOCK):
        args = [x[a:a + BLOCK].to(device) for x in (scene.frames, scene.depth, scene.K, scene.c2w, tgt)]
        idx = torch.arange(a, a + len(args[0]), device=device)
        for name, fn in (("per-frame", lambda: render_views(*args)),
                         ("fused", lambda: render_fused(world, *args, indices=idx))):
            sync()
            t0 = time.perf_counter()
            r, m = fn()
            sync()
            if timings is not None:
                timings.setdefault(name, []).append(time.perf_counter() - t0)
            out[name][0].append(r.cpu())
            out[name][1].append(m.cpu())
    return {k: (torch.cat(r), torch.cat(m)) for k, (r, m) in out.items()}


def score(renders, gt_rgb, ball) -> dict[str, dict[str, float]]:
    """Metrics of each render. "psnr_valid": on the render's own valid pixels; "psnr_common": on the
    per-frame render's valid pixels (the same pixels for both). "ball_from_current": the share of
    the ball's true pixels covered by the current frame's splat that keep that splat (the per-frame render's pixel); "ball_filled": the
    share of the ball's true pixels that the current frame leaves open and the render fills (from
    static points: the side of the ball the source frame never saw)."""
    rows = {}
    cur_render, cur_mask = renders["per-frame"]
    for name, (render, mask) in renders.items():
        on_ball = ball & cur_mask
        kept = on_ball & (render == cur_render).all(-1)
        rows[name] = {"holes": 1 - float(mask.float().mean()), "psnr_valid": psnr(render, gt_rgb, mask),
                      "psnr_common": psnr(render, gt_rgb, cur_mask),
                      "psnr_filled": psnr(fill(render, mask), gt_rgb, torch.ones_like(mask)),
                      "ball_from_current": float(kept.sum()) / max(int(on_ball.sum()), 1),
                      "ball_filled": float((ball & mask & ~cur_mask).sum()) / max(int(ball.sum()), 1)}
    return rows


def panel(scene, world, tgt, t: int, device) -> np.ndarray:
    """[per-frame | fused | static/dynamic view of source frame t] at half size, uint8 [h, 3w, 3]."""
    args = [x[t:t + 1].to(device) for x in (scene.frames, scene.depth, scene.K, scene.c2w, tgt)]
    idx = torch.tensor([t], device=device)
    dyn = world.dynamic(idx, *scene.frames.shape[1:3])                              # [1, H, W]
    imgs = [render_views(*args)[0], render_fused(world, *args, indices=idx)[0], dynamic_debug_image(args[0], dyn)]
    small = [torch.nn.functional.avg_pool2d(i.cpu().permute(0, 3, 1, 2).float(), 2)[0].permute(1, 2, 0) for i in imgs]
    return torch.cat(small, 1).round().to(torch.uint8).numpy()


def write_png(path: str, rows: list[np.ndarray]) -> None:
    from PIL import Image
    img = Image.fromarray(np.concatenate(rows, 0)).quantize(colors=256, dither=Image.Dither.NONE)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".tmp.png")
    img.save(tmp, optimize=True)
    tmp.replace(path)


def run(width: int, height: int, frames: int, device: str, fusion: FusionConfig, png: str | None) -> dict:
    cfg = SampleConfig(frames=frames)
    scene = build_sample_scene(cfg, width, height)
    t0 = time.perf_counter()
    world = build_world(scene.frames.to(device), scene.depth.to(device), scene.K.to(device), scene.c2w.to(device),
                        fusion)
    results = {"build_s": time.perf_counter() - t0, "points": world.points, "voxel_shift": world.voxel_shift,
               "ghost_points": ghost_points(world, frames, cfg.fps), "trajectories": {}, "block_s": {}}
    rows = []
    for path, ride_along in ((p, r) for p in TRAJECTORIES for r in (False, True)):
        tgt = target_c2w(read_keys(path), scene.c2w, relative_to_source=ride_along)  # [N, 4, 4]
        gt_rgb, gt_depth = ground_truth(scene, tgt, cfg)
        ball = ball_pixels(gt_depth, scene.K, tgt, cfg.fps)
        renders = render_blocks(world, scene, tgt, device, results["block_s"])
        name = f"{Path(path).stem} ({'ride-along' if ride_along else 'anchored'})"
        results["trajectories"][name] = score(renders, gt_rgb, ball)
        results["trajectories"][name]["unseen"] = unseen(scene, tgt, gt_depth)
        holes = 1 - renders["per-frame"][1].float().mean((1, 2))
        if not ride_along:
            rows.append(panel(scene, world, tgt, int(holes.argmax()), device))
    if png:
        write_png(png, rows)
    return results


def print_table(results: dict) -> None:
    print(f"fused points {results['points']} (voxel doublings {results['voxel_shift']}), "
          f"build {results['build_s']:.1f} s, ghost points in the ball's path: {results['ghost_points']}")
    print("render ms per 12-frame block (median, after the first): " + ", ".join(
        f"{k} {1000 * statistics.median(v[1:] or v):.1f}" for k, v in results["block_s"].items()))
    print("| trajectory | render | holes | PSNR valid (dB) | PSNR on per-frame valid (dB) | PSNR filled (dB) "
          "| ball px kept from current frame | ball px filled from static points |")
    print("|---|---|---|---|---|---|---|---|")
    for traj, rows in results["trajectories"].items():
        print(f"| {traj} | never seen by any source frame | {100 * rows['unseen']:.2f} % | | | | | |")
        for name, r in ((k, v) for k, v in rows.items() if k != "unseen"):
            print(f"| {traj} | {name} | {100 * r['holes']:.2f} % | {r['psnr_valid']:.2f} | {r['psnr_common']:.2f} "
                  f"| {r['psnr_filled']:.2f} | {100 * r['ball_from_current']:.1f} % | {100 * r['ball_filled']:.1f} % |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--width", type=int, default=832)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--max-points", type=int, default=FusionConfig.max_points)
    p.add_argument("--analysis-stride", type=int, default=FusionConfig.analysis_stride)
    p.add_argument("--point-stride", type=int, default=FusionConfig.point_stride)
    p.add_argument("--png", default=None, help="write the side-by-side image here (e.g. docs/fusion.png)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with torch.inference_mode():
        fusion = replace(FusionConfig(), max_points=args.max_points, analysis_stride=args.analysis_stride,
                         point_stride=args.point_stride)
        results = run(args.width, args.height, args.frames, args.device, fusion, args.png)
    print_table(results)


if __name__ == "__main__":
    main()
