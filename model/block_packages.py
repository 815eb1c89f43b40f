"""The DiT's transformer block compiled ahead of time (model/package_store.py): one AOTInductor
package per pass shape, loaded by later starts, so a warm start neither traces the block with Dynamo
nor looks its kernels up in torch.compile's caches (time to first frame; docs/performance.md, Start-up).

A package holds one block's code for one pass shape with the layer's weights as inputs, so it serves
all 30 layers:

    packages = BlockPackages(model, PackageStore(".cache/compile/packages", device))
    blocks = packages.layers(fallback=[torch.compile(b) for b in model.blocks])   # stand-ins for model.blocks
    model.forward(..., blocks=blocks)          # a shape without a package runs its fallback
    packages.store.build_missing()             # after warm-up: builds those in the background

A shape without a package runs the fallback (torch.compile) for the rest of this process, and its
package is built for the next start. Plain-tensor attention only: roam's FP8 attention is a Python
op, which a package cannot call.
"""
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from model.dit import CausalWanModel
from model.fp8 import Fp8Linear
from model.package_store import PackageStore, config_from

# roam sources whose text is part of a package's name: a change to any of them builds new packages
SOURCES = ("block_packages.py", "package_store.py", "dit.py", "rope.py", "attention.py", "inductor_choices.py")
PLAIN_ATTENTION = ("sdpa(cudnn first)", "cudnn", "sdpa")   # select_attention names a package can hold


class PackageUnavailable(RuntimeError):
    """No loadable package for this model here; the message says why and what to do."""


def cudnn_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """model/attention.py's signature ([B, L, Nh, Dh] in and out) on cuDNN's SDPA kernel, named
    explicitly: an exported program drops `sdpa_kernel`'s backend choice, and SDPA's own dispatch
    would pick its flash kernel, the slower one here (benchmarks/kernel_bench.py)."""
    out = torch.ops.aten._scaled_dot_product_cudnn_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                              None, False, 0.0, False, False)[0]
    return out.transpose(1, 2)


class AnyLayer(nn.Module):
    """`block`'s code with a layer's parameters as inputs, for one pass's kv_size (see SelfAttention):
    forward(params, x, e0, text_k, text_v, cache_k, cache_v, cos, sin) -> [B, L, D], writing this
    pass's keys and values into cache_k, cache_v in place as the block does."""

    def __init__(self, block: nn.Module, kv_size: tuple[int, int], attend: Callable):
        super().__init__()
        self.code = [block]                          # in a list: its weights must stay inputs, not constants
        self.names = [name for name, _ in block.named_parameters()]
        self.kv_size, self.attend = kv_size, attend

    def forward(self, params: list[Tensor], x, e0, text_k, text_v, cache_k, cache_v, cos, sin) -> Tensor:
        return torch.func.functional_call(self.code[0], dict(zip(self.names, params)),
                                          (x, e0, (text_k, text_v), (cache_k, cache_v), self.kv_size, (cos, sin),
                                           self.attend, self.attend))


class BlockPackages:
    """`model`'s block from the packages in `store`, one per pass shape, loaded on first use. Not
    thread-safe: the thread that runs the DiT calls it."""

    def __init__(self, model: CausalWanModel, store: PackageStore):
        weight = model.patch_embedding.weight
        if model.attn_backend not in PLAIN_ATTENTION:
            raise PackageUnavailable(f"attention backend {model.attn_backend} cannot be packaged "
                                     f"(only {', '.join(PLAIN_ATTENTION)})")
        if any(isinstance(m, Fp8Linear) for m in model.blocks.modules()):
            raise PackageUnavailable("FP8 layers are not packaged yet")
        self.model, self.store = model, store
        self.params = [[p.detach() for p in block.parameters()] for block in model.blocks]
        self.runners: dict[tuple, object | None] = {}   # None: no package, the fallback runs this shape
        self.build_args = {"config": asdict(model.cfg), "dtype": str(weight.dtype).removeprefix("torch."),
                           "attention": model.attn_request}

    @property
    def loaded(self) -> int:
        return sum(runner is not None for runner in self.runners.values())

    def layers(self, fallback: list[Callable]) -> list[Callable]:
        """Stand-ins for model.blocks (same call signature), each running its layer from a package,
        or `fallback[i]` (e.g. the torch.compile'd block) for shapes without one."""
        return [_Layer(self, i, fallback[i]) for i in range(len(self.model.blocks))]

    def run(self, layer: int, x: Tensor, e0: Tensor, text_kv: tuple[Tensor, Tensor], cache: tuple[Tensor, Tensor],
            kv_size: tuple[int, int], rope: tuple[Tensor, Tensor]) -> Tensor | None:
        """The layer's output from its package, or None when this shape has no package (then the
        caller runs the fallback)."""
        n = len(self.params[layer])
        inputs = [*self.params[layer], x, e0, *text_kv, *cache, *rope]
        shape = (tuple(kv_size), *((tuple(t.shape), t.dtype) for t in inputs[n:]))
        if shape not in self.runners:
            self.runners[shape] = self.store.load(self.path(shape), "model.block_packages:exportable_block",
                                                  {**self.build_args, "kv_size": list(kv_size)}, inputs, n)
        runner = self.runners[shape]
        return None if runner is None else runner.run(inputs)[0]

    def path(self, shape: tuple) -> Path:
        here = Path(__file__).parent
        return self.store.path("dit-block", (self.model.cfg, self.model.attn_backend, shape),
                               [here / name for name in SOURCES])


class _Layer:
    """One layer's stand-in for model.blocks[i]; the package holds the attention kernels."""

    def __init__(self, packages: BlockPackages, index: int, fallback: Callable):
        self.packages, self.index, self.fallback = packages, index, fallback

    def __call__(self, x, e0, text_kv, cache, kv_size, rope, attend, attend_text) -> Tensor:
        out = self.packages.run(self.index, x, e0, text_kv, cache, kv_size, rope)
        return self.fallback(x, e0, text_kv, cache, kv_size, rope, attend, attend_text) if out is None else out


def exportable_block(args: dict, device: torch.device) -> AnyLayer:
    """The block's code for a package build in a child process (model/package_store.py), from the
    parent's config, as the parent's model runs it (fused q/k/v)."""
    from model.attention import select_attention
    from model.dit import DiTConfig
    cfg, dtype = config_from(DiTConfig, args["config"]), getattr(torch, args["dtype"])
    model = CausalWanModel(cfg, device="meta", dtype=dtype)
    model.prepare_for_inference()
    attend = cudnn_attention if device.type == "cuda" else select_attention(args["attention"], device=device,
                                                                            dtype=dtype)[1]
    return AnyLayer(model.blocks[0].to_empty(device=device), tuple(args["kv_size"]), attend)
