"""Speed of the causal DiT at full size with random weights (cost does not depend on weight values).

    python3 -m benchmarks.dit_bench [--blocks 8] [--compile [--compile-scope blocks]] [--fp8] [--attn auto]
                                    [--rope fp64] [--compare-eager] [--profile] [--json OUT.json]
    python3 -m benchmarks.dit_bench --tiny --blocks 2      # CPU smoke run (tests/benchmarks)

Runs N blocks through BlockSampler at the 480x832 latent grid (60x104) in bf16 with random latents,
conditioning and prompt, and reports per-block times (CUDA events, read after the run), the median
steady-state block time (blocks from the third on: blocks 0 and 1 are the first of their shapes and
pay warm-up and compilation), fps = 12 / block time, peak GPU memory, and ||a - b|| / ||b|| between
the first block's bf16 output a and a float32 run b with the same weights, inputs and noise
(TF32 off, SDPA attention, float64 RoPE). The model runs as the runtime runs it
(`prepare_for_inference`: fused q/k/v, FP8 linears with --fp8) unless --unfused.
--profile runs one more steady block under torch.profiler and prints GPU time per kernel class
(matmul, attention, other) and the top kernels.
"""
import argparse
import copy
import json
import logging
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from model.attention import BACKENDS
from model.config import ModelConfig
from model.dit import FP8_LAYERS, CausalWanModel, DiTConfig
from model.sampler import COND_CHANNELS, FRAMES_PER_BLOCK, LATENT_CHANNELS, BlockSampler

FULL_GRID = (60, 104)           # latent grid of 480 x 832 pixels
TINY_GRID = (8, 12)             # the parity fixture's grid
PIXEL_FRAMES_PER_BLOCK = 12     # what one steady-state block adds to the video
ROPE_DTYPES = {"fp64": torch.float64, "fp32": torch.float32}


def init_weights(model: CausalWanModel, seed: int, std: float = 0.02) -> None:
    """Deterministic random weights: N(0, std) everywhere, norm scales 1 + N(0, std)."""
    g = torch.Generator(model.patch_embedding.weight.device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if "norm" in name else 0.0, std, generator=g)


def make_inputs(cfg: DiTConfig, grid: tuple[int, int], blocks: int, seed: int, device) -> dict:
    """Random prompt, per-block source latents and mask | render conditioning, first-block noise (float32)."""
    g = torch.Generator(device).manual_seed(seed)
    latent = (blocks, 1, FRAMES_PER_BLOCK, LATENT_CHANNELS, *grid)
    mask = torch.randn(blocks, 1, FRAMES_PER_BLOCK, COND_CHANNELS - LATENT_CHANNELS, *grid, generator=g, device=device)
    return {
        "prompt": torch.randn(1, cfg.text_len, cfg.text_dim, generator=g, device=device),   # [1, 512, 4096]
        "ref": torch.randn(latent, generator=g, device=device),                              # [N, 1, 3, 16, h, w]
        "cond": torch.cat([mask.sign(), torch.randn(latent, generator=g, device=device)], dim=3),  # [N, 1, 3, 20, h, w]
        "noise0": torch.randn(4, *latent[1:], generator=g, device=device),                   # [4, 1, 3, 16, h, w]
    }


class BlockTimer:
    """Marks between blocks: CUDA events on a GPU (no synchronisation until `elapsed_ms`), else perf_counter."""
    def __init__(self, device: torch.device):
        self.cuda, self.marks = device.type == "cuda", []

    def mark(self) -> None:
        if self.cuda:
            self.marks.append(torch.cuda.Event(enable_timing=True))
            self.marks[-1].record()
        else:
            self.marks.append(time.perf_counter())

    def elapsed_ms(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:])]
        return [1000 * (b - a) for a, b in zip(self.marks, self.marks[1:])]


def float32_first_block(model: CausalWanModel, inputs: dict, grid: tuple[int, int]) -> torch.Tensor:
    """The reference output of block 0 in float32 (the model must still be float32)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sampler = BlockSampler(model, inputs["prompt"], latent_hw=grid)
    return sampler.generate_block(inputs["ref"][0], inputs["cond"][0], inputs["noise0"]).float()


def compare_with_eager(model: CausalWanModel, inputs: dict, grid: tuple[int, int], args, outputs: list) -> list[float]:
    """||out - eager|| / ||eager|| per block, against the uncompiled, unfused bf16 path with float64 RoPE
    and the same weights, inputs and noise (the generator is re-seeded identically)."""
    eager = BlockSampler(model, inputs["prompt"], latent_hw=grid, rope_dtype=torch.float64,
                         generator=torch.Generator(inputs["prompt"].device).manual_seed(args.seed))
    diffs = []
    for b, out in enumerate(outputs):
        ref = eager.generate_block(inputs["ref"][b], inputs["cond"][b], inputs["noise0"] if b == 0 else None).float()
        diffs.append(((out.float() - ref).norm() / ref.norm()).item())
    return diffs


def run(args: argparse.Namespace) -> dict:
    if not args.tiny and not torch.cuda.is_available():      # not 12-14 GB and minutes on the CPU first
        print("roam: error: dit_bench measures the full-size DiT and needs a CUDA GPU, and PyTorch sees none here; "
              "run it on a GPU machine, or add --tiny for a small CPU smoke run", file=sys.stderr)
        raise SystemExit(2)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg, grid = (DiTConfig.tiny(), TINY_GRID) if args.tiny else (DiTConfig(), FULL_GRID)
    model = CausalWanModel(cfg, attn_backend="sdpa", device=device, dtype=torch.float32)
    init_weights(model, args.seed)
    inputs = make_inputs(cfg, grid, args.blocks, args.seed + 1, device)
    reference = float32_first_block(model, inputs, grid)

    model.to(torch.bfloat16).set_attention(args.attn)
    baseline = copy.deepcopy(model) if args.compare_eager else None     # the reference's structure, bf16, eager
    if not args.unfused:
        model.prepare_for_inference(fp8=args.fp8, fp8_layers=[n for n in args.fp8_layers.split(",") if n])
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if args.compile and device.type == "cuda":
        from model.inductor_choices import persistent_row_reductions
        persistent_row_reductions(args.row_limit)
    sampler = BlockSampler(model, inputs["prompt"], latent_hw=grid, generator=torch.Generator(device).manual_seed(args.seed),
                           rope_dtype=ROPE_DTYPES[args.rope], compile=args.compile, compile_mode=args.compile_mode,
                           compile_scope=args.compile_scope, cuda_graphs=args.cuda_graphs,
                           block_packages=packages(model, args.packages, args.row_limit) if args.compile and args.packages else None)
    timer = BlockTimer(device)
    timer.mark()
    outputs, started = [], time.perf_counter()
    for b in range(args.blocks):
        outputs.append(sampler.generate_block(inputs["ref"][b], inputs["cond"][b], inputs["noise0"] if b == 0 else None))
        timer.mark()
        if b == 1:                       # both shapes seen: compilation (if any) is done
            if device.type == "cuda":
                torch.cuda.synchronize()
            warm_s = time.perf_counter() - started
    first = outputs[0]
    block_ms = timer.elapsed_ms()
    profile = profile_block(sampler, inputs) if args.profile and device.type == "cuda" else None
    per_block = compare_with_eager(baseline, inputs, grid, args, outputs) if args.compare_eager else None
    packages_status = sampler.block_packages.store.finish() if sampler.block_packages else None   # builds the missing ones
    steady = block_ms[2:] or block_ms[-1:]
    median_ms = statistics.median(steady)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "config": asdict(cfg), "latent_grid": list(grid),
        "attn_backend": model.attn_backend, "compile": args.compile, "compile_mode": args.compile_mode,
        "rope": args.rope, "blocks": args.blocks, "block_ms": block_ms, "median_block_ms": median_ms,
        "fps": PIXEL_FRAMES_PER_BLOCK / (median_ms / 1000),
        "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "rel_diff_bf16_vs_fp32": ((first.float() - reference).norm() / reference.norm()).item(),
        "rel_diff_vs_eager_bf16_per_block": per_block, "fp8": args.fp8 and args.fp8_layers, "fused_qkv": not args.unfused,
        "compile_scope": args.compile_scope if args.compile else None, "row_limit": args.row_limit, "cuda_graphs": args.cuda_graphs,
        "first_two_blocks_s": warm_s if args.blocks > 1 else None, "profile": profile, "block_packages": packages_status,
    }


KERNEL_CLASSES = (("attention", ("fmha", "flash", "attention", "cudnn", "sdpa")),
                  ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "sm90_", "scaled_mm", "matmul")))


def kernel_class(name: str) -> str:
    """Inductor's own kernels (triton_*) are fused element-wise work even when named after the op they
    feed, e.g. triton_poi_fused__scaled_dot_product_cudnn_attention_... or ..._scaled_mm_..."""
    low = name.lower()
    if low.startswith("triton"):
        return "other"
    return next((cls for cls, keys in KERNEL_CLASSES if any(k in low for k in keys)), "other")


def profile_block(sampler: BlockSampler, inputs: dict, top: int = 15) -> dict:
    """GPU time of one steady block by kernel class, its top kernels and every kernel (ms)."""
    from torch.profiler import ProfilerActivity, profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        sampler.generate_block(inputs["ref"][-1], inputs["cond"][-1])
        torch.cuda.synchronize()
    kernels = [(e.key, e.self_device_time_total / 1000, e.count) for e in prof.key_averages()
               if e.self_device_time_total > 0]
    classes: dict[str, float] = {}
    for name, ms, _ in kernels:
        classes[kernel_class(name)] = classes.get(kernel_class(name), 0.0) + ms
    kernels.sort(key=lambda k: -k[1])
    rows = [{"kernel": n[:110], "ms": ms, "calls": c} for n, ms, c in kernels]
    return {"class_ms": classes, "top": rows[:top], "kernels": rows}


def print_table(r: dict) -> None:
    print(f"\nDiT {'tiny' if r['config']['num_layers'] < 30 else '1.3B'} on {r['device']} | attention "
          f"{r['attn_backend']} | compile {r['compile_scope'] or False} | CUDA graphs {r['cuda_graphs']} | fp8 {r['fp8']} | fused qkv {r['fused_qkv']} | "
          f"RoPE {r['rope']} | grid {r['latent_grid']}")
    print("block   ms")
    for i, ms in enumerate(r["block_ms"]):
        print(f"{i:>5} {ms:9.1f}")
    peak = "n/a" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.2f} GiB"
    if r.get("rel_diff_vs_eager_bf16_per_block"):
        print("rel. diff vs eager bf16 per block:", " ".join(f"{d:.1e}" for d in r["rel_diff_vs_eager_bf16_per_block"]))
    if r.get("first_two_blocks_s") is not None:
        print(f"first two blocks (compilation included): {r['first_two_blocks_s']:.1f} s")
    if r.get("block_packages"):
        print(f"block packages: {r['block_packages']}")
    if r.get("profile"):
        print("GPU ms per kernel class:", ", ".join(f"{k} {v:.1f}" for k, v in r["profile"]["class_ms"].items()))
        for k in r["profile"]["top"]:
            print(f"  {k['ms']:8.2f} ms {k['calls']:5d}x  {k['kernel']}")
    print(f"median steady-state block {r['median_block_ms']:.1f} ms -> {r['fps']:.1f} fps | peak memory {peak} | "
          f"bf16 vs fp32 first block rel diff {r['rel_diff_bf16_vs_fp32']:.2e}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="parity-fixture size on an 8x12 grid (CPU smoke run)")
    p.add_argument("--blocks", type=int, default=8, help="blocks to generate (12 pixel frames each)")
    p.add_argument("--compile", action="store_true", help="torch.compile the context and denoising passes")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    p.add_argument("--row-limit", type=int, default=ModelConfig.compile_row_limit,
                   help="one-pass row reductions up to this wide (play's model.compile_row_limit); 0: PyTorch's heuristic")
    p.add_argument("--compile-scope", choices=("blocks", "passes"), default="blocks",
                   help="compile one shared transformer block, or whole passes")
    p.add_argument("--packages", type=Path, metavar="DIR",
                   help="with --compile: run the block from AOTInductor packages kept in DIR (model/block_packages.py); "
                        "shapes without one run torch.compile and get theirs built after the run, for the next")
    p.add_argument("--cuda-graphs", action="store_true", help="replay each pass as a CUDA graph (model/cuda_graphs.py)")
    p.add_argument("--fp8", action="store_true", help="FP8 matmuls in the blocks' linear layers (model/fp8.py)")
    p.add_argument("--fp8-layers", default=",".join(FP8_LAYERS), help="with --fp8: which linear layers of a block")
    p.add_argument("--unfused", action="store_true", help="keep separate q/k/v projections (A/B of the fusion)")
    p.add_argument("--profile", action="store_true", help="profile one extra steady block (CUDA only)")
    p.add_argument("--attn", choices=BACKENDS, default="auto", help="attention kernel (model/attention.py)")
    p.add_argument("--rope", choices=sorted(ROPE_DTYPES), default="fp64", help="RoPE arithmetic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare-eager", action="store_true",
                   help="also report each block's relative difference from the uncompiled bf16 float64-RoPE path")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.blocks < 1:
        p.error("--blocks must be at least 1")
    return args


def packages(model: CausalWanModel, folder: Path, row_limit: int):
    from model.block_packages import BlockPackages
    from model.package_store import PackageStore
    store = PackageStore(folder, model.patch_embedding.weight.device, row_limit=row_limit)
    store.report = lambda message: print(f"dit_bench: {message}", flush=True)
    return BlockPackages(model, store)


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print_table(result)
    return result


if __name__ == "__main__":
    main()
