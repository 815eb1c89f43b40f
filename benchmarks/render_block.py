"""Time scenes.render.render_views on one block of frames (default: 12 frames at 832x480).

    python -m benchmarks.render_block                       # CPU, 2 torch threads (the CI machine)
    python -m benchmarks.render_block --device cuda --repeat 20

The scene is synthetic (a slanted plane with a box in front, a sideways camera move) so the
splat has realistic parallax and holes; the cost does not depend on the pixel values.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from scenes.render import render_views


def synthetic_block(T: int, H: int, W: int, device: str):
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (T, H, W, 3), dtype=torch.uint8, generator=g)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    depth = (3 + 0.002 * xs + 0.001 * ys).expand(T, H, W).clone()             # [T, H, W]
    depth[:, H // 4: H // 2, W // 3: W // 2] = 1.5                             # a box in front
    K = torch.tensor([[0.8 * W, 0, W / 2], [0, 0.8 * W, H / 2], [0, 0, 1]])
    src = torch.eye(4).expand(T, 4, 4).clone()
    tgt = src.clone()
    tgt[:, 0, 3] = torch.linspace(0.02, 0.3, T)                                # sideways dolly,
    tgt[:, 1, 3] = torch.linspace(-0.01, 0.03, T)                              # a little vertical
    return [x.to(device) for x in (frames, depth, K, src, tgt)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--width", type=int, default=832)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    block = synthetic_block(args.frames, args.height, args.width, args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        render_views(*block)                                                   # warm-up
        times = []
        for _ in range(args.repeat):
            sync()
            t0 = time.perf_counter()
            render_views(*block)
            sync()
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"render_views {args.frames}x{args.width}x{args.height} on {args.device} "
          f"({args.threads} threads): median {med * 1e3:.1f} ms per block, {med * 1e3 / args.frames:.1f} ms per frame "
          f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}, {args.repeat} runs)")


if __name__ == "__main__":
    main()
