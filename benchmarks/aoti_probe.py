"""Groundwork for a start without Dynamo: one DiT transformer block, compiled ahead of time with
AOTInductor, run from its package for any of the 30 layers (the layer's weights are inputs),
against the eager block. Time to first frame with a warm cache is spent mostly re-tracing the
block with Dynamo (README, Start-up); a package loads without importing Dynamo or Inductor.

    python3 -m benchmarks.aoti_probe [--tiny] [--layers 2] [--out block.pt2]
    python3 -m benchmarks.aoti_probe [--tiny] --load-only block.pt2     # then, in a fresh process

Default: the full-size block in bf16 on CUDA, a steady denoising pass at 480x832 (4680 queries,
9360 cached rows + their own); --tiny: the parity-size block in float32 on the CPU (what CI-class
machines can compile). Prints the export and compile times, the package size, the loading time
and, per checked layer, the largest difference from eager in the output and in the K cache rows
written. --load-only runs a package written before (same seed, same weights) in a process that
never exported, and says whether Dynamo or Inductor got imported. Not used by play yet.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from torch import nn
from torch.func import functional_call

from benchmarks.kernel_bench import host_ms
from model.dit import CausalWanModel, DiTConfig
from model.rope import base_table, token_table

FRAMES = 3                                        # latent frames per block


def cudnn_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """model/attention.py's signature ([B, L, Nh, Dh] in and out) on cuDNN's SDPA kernel, named
    explicitly: an exported program drops `sdpa_kernel`'s backend choice, and SDPA's own dispatch
    would pick its flash kernel (1.38 against 0.79 ms a call, kernel_bench). AOTInductor has a C
    shim for this op."""
    out = torch.ops.aten._scaled_dot_product_cudnn_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                              None, False, 0.0, False, False)[0]
    return out.transpose(1, 2)


class AnyLayer(nn.Module):
    """Block `blocks[0]`'s code with a layer's parameters as inputs, for a steady denoising pass:
    attend to `cached` context rows and write this pass's keys and values after them."""

    def __init__(self, model: CausalWanModel, cached: int):
        super().__init__()
        self.code = [model.blocks[0]]                             # a list: its weights are not constants
        self.names = [name for name, _ in model.blocks[0].named_parameters()]
        self.attend = cudnn_attention if model.patch_embedding.weight.is_cuda else model._attend
        self.cached = cached

    def forward(self, params: list[torch.Tensor], x, e0, text_k, text_v, cache_k, cache_v, cos, sin):
        """x: [B, L, D]; e0: [B, 6, D]; cache_k, cache_v: [B, rows, Nh, Dh], rows >= cached + L."""
        return functional_call(self.code[0], dict(zip(self.names, params)),
                               (x, e0, (text_k, text_v), (cache_k, cache_v), (0, self.cached), (cos, sin),
                                self.attend, self.attend))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="parity-size block, float32, CPU")
    p.add_argument("--layers", type=int, default=2, help="layers to check against eager")
    p.add_argument("--out", default="/tmp/roam_block.pt2", help="where to write the package")
    p.add_argument("--load-only", metavar="PACKAGE", help="only load and check a package written before")
    p.add_argument("--graph", action="store_true",
                   help="also time a whole 30-layer pass as one CUDA graph: package against torch.compile")
    args = p.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("aoti_probe: the full-size block needs a CUDA GPU; --tiny runs on the CPU")
    device, dtype = ("cpu", torch.float32) if args.tiny else ("cuda", torch.bfloat16)
    cfg, (h, w) = (DiTConfig.tiny(), (8, 12)) if args.tiny else (DiTConfig(), (60, 104))
    torch.manual_seed(0)
    model = CausalWanModel(cfg, device=device, dtype=dtype).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.02)
    model.prepare_for_inference(fp8=False)
    gh, gw = cfg.grid(h, w)
    L = FRAMES * gh * gw
    cache = model.new_cache(1, 3 * L)                             # 2L context rows | L rows of this pass
    text = model.encode_text(torch.randn(1, cfg.text_len, cfg.text_dim, device=device, dtype=dtype))
    cos, sin = token_table(base_table(cfg.head_dim), FRAMES, gh, gw, offset=2 * FRAMES, device=device,
                           dtype=torch.float32)
    x = torch.randn(1, L, cfg.dim, device=device, dtype=dtype)
    e0 = torch.randn(1, 6, cfg.dim, device=device, dtype=dtype)
    layer_params = lambda i: [q.detach() for q in model.blocks[i].parameters()]
    inputs = lambda i: [*layer_params(i), x, e0, *text.layer(i), *cache.layer(i), cos, sin]
    program = AnyLayer(model, cached=2 * L)

    t0 = time.perf_counter()
    if args.load_only:
        path, t1 = args.load_only, t0
    else:
        exported = torch.export.export(program, (layer_params(0), x, e0, *text.layer(0), *cache.layer(0), cos, sin))
        t1 = time.perf_counter()
        if not args.tiny:
            from model.inductor_choices import persistent_row_reductions
            persistent_row_reductions(2048)
        path = torch._inductor.aoti_compile_and_package(exported, package_path=args.out)
    t2 = time.perf_counter()
    runner = torch._C._aoti.AOTIModelPackageLoader(path, "model", True, 1, -1)   # single-threaded: no events
    t3 = time.perf_counter()
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
              "export_s": t1 - t0, "aoti_compile_s": t2 - t1, "load_s": t3 - t2,
              "package_mib": os.path.getsize(path) / 2**20, "layers": []}
    with torch.no_grad():
        for i in range(min(args.layers, cfg.num_layers)):
            cache.k.zero_()
            cache.v.zero_()
            out = runner.run(inputs(i))[0]
            written = cache.k[i, :, 2 * L:].clone()
            cache.k.zero_()
            cache.v.zero_()
            want = model.blocks[i](x, e0, text.layer(i), cache.layer(i), (0, 2 * L), (cos, sin),
                                   model._attend, model._attend)
            result["layers"].append({"layer": i, "out_max_diff": (out - want).abs().max().item(),
                                     "cache_max_diff": (written - cache.k[i, :, 2 * L:]).abs().max().item()})
        result["package_ms"] = host_ms(lambda: runner.run(inputs(0)), 10)
        result["eager_ms"] = host_ms(lambda: model.blocks[0](x, e0, text.layer(0), cache.layer(0), (0, 2 * L),
                                                              (cos, sin), model._attend, model._attend), 10)
        if args.graph:
            result.update(pass_graphs(model, runner, inputs, lambda i: (x, e0, text.layer(i), cache.layer(i),
                                                                        (0, 2 * L), (cos, sin))))
    print(f"AOTInductor block on {result['device']} | torch {result['torch']} | {cfg.num_layers} layers, "
          f"dim {cfg.dim}, {L} tokens, {dtype}")
    print(f"export {result['export_s']:.1f} s | AOTInductor compile {result['aoti_compile_s']:.1f} s | "
          f"package {result['package_mib']:.1f} MiB | load {result['load_s']:.2f} s | "
          f"Dynamo imported: {'torch._dynamo' in sys.modules}, Inductor imported: {'torch._inductor' in sys.modules}"
          f"{'' if args.load_only else ' (this process also exported)'}")
    print(f"one layer's call: package {result['package_ms']:.2f} ms, eager {result['eager_ms']:.2f} ms (median of 10)")
    for row in result["layers"]:
        print(f"layer {row['layer']}: max |out - eager| {row['out_max_diff']:.2e} | "
              f"max |K written - eager| {row['cache_max_diff']:.2e}")
    if args.graph:
        print(f"30-layer pass as a CUDA graph: package {result['graph_package_ms']:.2f} ms, torch.compile "
              f"{result['graph_compiled_ms']:.2f} ms (torch.compile warm-up {result['compile_s']:.1f} s) | "
              f"max |package - compiled| / max |compiled| {result['graph_max_diff']:.2e}")
    return result


def pass_graphs(model: CausalWanModel, runner, inputs, block_args) -> dict:
    """One pass over every layer (each layer's output feeding the next, as in the DiT) captured as a
    CUDA graph, once with the package and once with the torch.compile'd blocks play uses."""
    from benchmarks.kernel_bench import median_ms
    from model.cuda_graphs import GraphCache
    compiled = [torch.compile(block, dynamic=False) for block in model.blocks]
    start = block_args(0)[0]
    at_x = len(inputs(0)) - 8                      # inputs(i): params..., x, e0, text k, v, cache k, v, cos, sin

    def package_pass():
        x = start
        for i in range(len(model.blocks)):
            args = inputs(i)
            args[at_x] = x
            x = runner.run(args)[0]
        return x

    def compiled_pass():
        x = start
        for i, block in enumerate(compiled):
            x = block(x, *block_args(i)[1:], model._attend, model._attend)
        return x

    graphs = GraphCache(True)
    t0 = time.perf_counter()
    graphs("compiled", compiled_pass)
    compile_s = time.perf_counter() - t0
    graphs("package", package_pass)
    a, b = graphs("compiled", compiled_pass).clone(), graphs("package", package_pass).clone()
    return {"graph_package_ms": median_ms(lambda: graphs("package", package_pass), 20),
            "graph_compiled_ms": median_ms(lambda: graphs("compiled", compiled_pass), 20),
            "compile_s": compile_s, "graph_max_diff": ((a - b).abs().max() / b.abs().max()).item()}


if __name__ == "__main__":
    main()
