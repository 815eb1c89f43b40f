"""Build time, size and 12-frame render time of the fused world state for a long sample video.

    python3 -m benchmarks.fusion_timing --frames 1000 --device cuda [--set scenes.fusion.KEY=VALUE ...]

The sample is rendered at scenes.width x scenes.height; the fusion settings are config.yaml's.
"""
import argparse
import statistics
import time

import torch

from dataclasses import replace

from runtime.config import add_config_args, config_from_args
from scenes.fusion import build_world, render_fused
from scenes.sample import build_sample_scene


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_config_args(p)
    args = p.parse_args(argv)
    scenes = config_from_args(args).scenes
    scene = build_sample_scene(replace(scenes.sample, frames=args.frames), scenes.width, scenes.height)
    cfg = scenes.fusion
    frames = scene.frames.to(args.device)
    sync(args.device)
    t0 = time.perf_counter()
    world = build_world(frames, scene.depth, scene.K, scene.c2w, cfg)
    sync(args.device)
    build_s = time.perf_counter() - t0
    nbytes = sum(t.numel() * t.element_size() for t in (world.xyz, world.rgb, world.weight, world.dynamic_bits))
    depth, K, c2w = scene.depth.to(args.device), scene.K.to(args.device), scene.c2w.to(args.device)
    times = []
    for start in range(0, min(args.frames, 12 * 8), 12):
        idx = torch.arange(start, start + 12, device=args.device) % args.frames
        tgt = c2w[idx].clone()
        tgt[:, 0, 3] += 0.5                                            # half a metre to the side
        sync(args.device)
        t1 = time.perf_counter()
        render_fused(world, frames[idx], depth[idx], K[idx], c2w[idx], tgt, indices=idx)
        sync(args.device)
        times.append(1000 * (time.perf_counter() - t1))
    result = {"frames": args.frames, "device": args.device, "points": world.points, "max_points": cfg.max_points,
              "world_mb": nbytes / 2**20, "build_s": build_s, "block_ms_median": statistics.median(times[1:] or times)}
    print(result)
    return result


if __name__ == "__main__":
    main()
