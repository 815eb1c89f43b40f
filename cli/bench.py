"""Per-stage cost of one generation block in the runtime: point-cloud render, encode (render and
source), DiT (context pass + 4 steps), decode, copy to the host. Full-size DiT and codec with random
weights (cost does not depend on weight values) on a synthetic 480x832 scene.

    python3 main.py bench [--blocks 10] [--vae] [--no-compile] [--no-compile-codec] [--no-cuda-graphs] [--fp8] [--rope float32] [--attn auto] [--json OUT] [--plot OUT.png]

Stage times come from the generation worker's own marks (CUDA events, read once the block is done),
so they are the times the runtime sees. fps = frames per block / median block time.

Every other steady block is first prepared as real-time play does while the worker waits for the
next request (runtime/worker.py PrepareHint: source encode and context pass ahead); its time after
the request is what a camera change waits for (control-to-photon), not the throughput.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cli.flags import Parser, number_flag
from model.config import ModelConfig
from model.dit import DiTConfig
from model.dit_refiner import random_dit_refiner
from runtime.telemetry import run_record
from runtime.worker import BlockRequest, GenerationWorker, PrepareHint, SceneTensors
from scenes.scene import Scene

STAGES = ("render", "encode", "dit", "decode")


def synthetic_scene(n: int, height: int, width: int) -> Scene:
    """A textured slanted plane seen by a slowly panning camera (content does not change the cost)."""
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 255, (n, height, width, 3), generator=g, dtype=torch.uint8)
    v, u = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    depth = (3.0 + 0.004 * u + 0.002 * v).float().expand(n, height, width).contiguous()   # [N, H, W]
    f = 0.8 * width
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]]).expand(n, 3, 3).contiguous()
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, 0, 3] = torch.linspace(0, 0.3, n)
    return Scene(frames=frames, depth=depth, K=K, c2w=c2w, fps=24.0)


def orbit_poses(n: int, start: int) -> np.ndarray:
    """Small sideways orbit, one pose per frame: [n, 4, 4]."""
    out = np.tile(np.eye(4), (n, 1, 1))
    angle = np.deg2rad(0.3 * (start + np.arange(n)))
    out[:, 0, 0], out[:, 0, 2], out[:, 2, 0], out[:, 2, 2] = np.cos(angle), np.sin(angle), -np.sin(angle), np.cos(angle)
    out[:, 0, 3] = -np.sin(angle)
    return out


def run(args: argparse.Namespace) -> dict:
    if not args.tiny and not torch.cuda.is_available():      # not 12-14 GB and minutes on the CPU first
        print("roam: error: main.py bench measures the full-size model and needs a CUDA GPU, and PyTorch sees none "
              "here; run it on a GPU machine, or add --tiny for a small CPU smoke run", file=sys.stderr)
        raise SystemExit(2)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    H, W = (64, 96) if args.tiny else (480, 832)
    cfg = ModelConfig(use_tae=not args.vae, compile=not args.no_compile, compile_scope=args.compile_scope, fp8=args.fp8,
                      compile_row_limit=args.row_limit, aot_packages=not args.no_aot_packages,
                      cuda_graphs=not args.no_cuda_graphs, compile_codec=not args.no_compile_codec,
                      seed=0, rope=args.rope)
    refiner = random_dit_refiner(cfg, device, (H // 8, W // 8), dit_cfg=DiTConfig.tiny() if args.tiny else DiTConfig())
    if refiner.packages is not None:
        refiner.packages.report = lambda message: print(f"bench: {message}", file=sys.stderr, flush=True)
    if args.attn != "auto":
        refiner.sampler.model.set_attention(args.attn)
    scene = synthetic_scene(120, H, W)
    marks: dict[int, dict[str, float]] = {}
    worker = GenerationWorker(SceneTensors(scene, device), refiner, on_block=lambda b: None,
                              mark=lambda block, stage, t: marks.setdefault(block, {}).setdefault(stage, t))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    frames, prepare_ms, start = [], {}, 0
    for b in range(args.blocks):
        n = refiner.frames_for_block(b == 0)
        indices = tuple((start + i) % scene.num_frames for i in range(n))
        if b % 2 and b >= args.warmup:                  # as play's idle worker does before the request
            t0 = time.perf_counter()
            worker.run_hint(PrepareHint(b, indices))    # waits for the device
            prepare_ms[b] = 1000 * (time.perf_counter() - t0)
        req = BlockRequest(b, indices, orbit_poses(n, start), restart=b == 0, input_sampled_s=0.0, command_tick=0)
        block = worker.run_block(req)
        if (b in prepare_ms) != block.prepared:
            raise RuntimeError(f"block {b}: prepared {block.prepared}, expected {b in prepare_ms}")
        frames.append(block.frames.shape[0])
        start += n
    return summarise(args, marks, frames, prepare_ms, device, refiner)


def stage_medians(marks: dict, blocks: list[int]) -> tuple[dict[str, float], float]:
    """Median ms of each stage and of the whole block (start to decoded) over `blocks`."""
    order = ("start",) + STAGES
    per_stage = {b: statistics.median(1000 * (marks[k][b] - marks[k][a]) for k in blocks) for a, b in zip(order, order[1:])}
    return per_stage, statistics.median(1000 * (marks[k]["decode"] - marks[k]["start"]) for k in blocks)


def summarise(args, marks: dict, frames: list[int], prepare_ms: dict[int, float], device, refiner) -> dict:
    steady = [b for b in marks if b >= args.warmup and b not in prepare_ms] or [b for b in marks if b not in prepare_ms]
    per_stage, block_ms = stage_medians(marks, steady)
    frames_per_block = statistics.median(frames[k] for k in steady)
    prepared = None
    if prepare_ms:
        stages, request_ms = stage_medians(marks, list(prepare_ms))
        prepared = {"blocks": len(prepare_ms), "stage_ms": stages, "request_ms": request_ms,
                    "prepare_ms": statistics.median(prepare_ms.values())}
    return {
        **run_record(["main.py", "bench", *args.argv], device), "codec": refiner.codec.name, "attention": refiner.sampler.model.attn_backend,
        "compile": not args.no_compile and args.compile_scope, "fp8": args.fp8, "cuda_graphs": not args.no_cuda_graphs, "rope": args.rope, "row_limit": args.row_limit, "blocks": args.blocks, "steady_blocks": len(steady),
        "aot_packages": packages_status(refiner.packages),
        "stage_ms": per_stage, "block_ms": block_ms, "frames_per_block": frames_per_block,
        "fps": frames_per_block / (block_ms / 1000),
        "all_block_ms": [1000 * (marks[k]["decode"] - marks[k]["start"]) for k in sorted(marks)],
        "prepared": prepared,
        "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


def packages_status(packages) -> str:
    """What ran the DiT block and the TAE: their AOTInductor packages (model/package_store.py) or
    torch.compile. Parts that had none get theirs built now, for the next run."""
    return "off" if packages is None else packages.finish()


def print_table(r: dict) -> None:
    print(f"\nroam pipeline on {r['device']} | torch {r['torch']} | codec {r['codec']} | attention {r['attention']}"
          f" | compile {r['compile']} | AOT packages {r['aot_packages']} | CUDA graphs {r['cuda_graphs']} | fp8 {r['fp8']} | RoPE {r['rope']} | median of {r['steady_blocks']} steady blocks")
    prep = r["prepared"]
    print(f"{'stage':<10}{'ms':>10}" + (f"{'prepared ahead':>18}" if prep else ""))
    for stage, ms in r["stage_ms"].items():
        print(f"{stage:<10}{ms:>10.1f}" + (f"{prep['stage_ms'][stage]:>18.1f}" if prep else ""))
    mem = "n/a" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.2f} GiB"
    print(f"{'block':<10}{r['block_ms']:>10.1f}" + (f"{prep['request_ms']:>18.1f}" if prep else "")
          + f"   -> {r['fps']:.1f} fps ({r['frames_per_block']:g} frames/block), peak GPU memory {mem}")
    if prep:
        print(f"prepared ahead: source encode and context pass, {prep['prepare_ms']:.1f} ms while the worker waits "
              f"for the request; a camera change waits {prep['request_ms']:.1f} ms for its block ({prep['blocks']} blocks)")


def plot(r: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise SystemExit(f"--plot needs matplotlib: pip install matplotlib ({err})") from err
    rows = [("block", r["stage_ms"], 0.0)]
    if r["prepared"]:                    # the prepared block: its ahead part drawn before the request
        rows.append(("prepared", r["prepared"]["stage_ms"], r["prepared"]["prepare_ms"]))
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.8 * len(rows)))
    colours = {stage: f"C{i}" for i, stage in enumerate(STAGES)}
    for y, (name, stages, ahead) in enumerate(rows):
        if ahead:
            ax.barh([y], [ahead], left=-ahead, color="0.8", hatch="//", label=f"prepared ahead {ahead:.0f} ms")
        left = 0.0
        for stage, ms in stages.items():
            ax.barh([y], [ms], left=left, color=colours[stage], label=f"{stage} {ms:.0f} ms" if y == 0 else None)
            left += ms
        ax.text(left + 4, y, f"{left:.0f} ms", va="center", fontsize=8)
    ax.axvline(1000 * r["frames_per_block"] / 24, color="k", ls="--", label="24 fps budget")
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_yticks(range(len(rows)), ["block" if n == "block" else "after request\n(prepared)" for n, _, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ms per block (0 = request)")
    ax.set_title(f"{r['device']}: {r['block_ms']:.0f} ms/block, {r['fps']:.1f} fps ({r['codec']})")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    fig.savefig(path, dpi=120, bbox_inches="tight")


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog="main.py bench", description=__doc__.split("\n")[0])
    p.add_argument("--blocks", type=number_flag(int, 1, 10_000, "generation blocks"), default=10,
                   help="blocks to run (the first --warmup are not counted)")
    p.add_argument("--warmup", type=number_flag(int, 0, 10_000, "generation blocks"), default=2,
                   help="blocks excluded from the medians")
    p.add_argument("--vae", action="store_true", help="the Wan VAE instead of the tiny autoencoder")
    p.add_argument("--no-compile", action="store_true", help="run the DiT eager (the default compiles, as play does)")
    p.add_argument("--compile-scope", choices=("blocks", "passes"), default="blocks", help="see config.yaml model.compile_scope")
    p.add_argument("--row-limit", type=number_flag(int, 0, 65_536, "elements of a row"), default=ModelConfig.compile_row_limit,
                   help="see config.yaml model.compile_row_limit (0: PyTorch's heuristic)")
    p.add_argument("--no-aot-packages", action="store_true",
                   help="torch.compile the DiT block and the TAE on every start instead of loading their AOTInductor packages")
    p.add_argument("--no-compile-codec", action="store_true", help="run the TAE eager (play compiles it: model.compile_codec)")
    p.add_argument("--no-cuda-graphs", action="store_true", help="run the DiT passes without CUDA graphs")
    p.add_argument("--fp8", action="store_true", help="FP8 matmuls in the DiT (config.yaml model.fp8)")
    p.add_argument("--attn", default="auto", help="attention backend (model/attention.py)")
    p.add_argument("--rope", choices=("float64", "float32"), default="float32", help="RoPE arithmetic")
    p.add_argument("--tiny", action="store_true", help="tiny DiT at 64x96 (CPU smoke run)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--plot", type=Path, nargs="?", const=Path("bench.png"), help="write a PNG chart")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    args.argv = argv
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(result, args.plot)
    print_table(result)
    return result
