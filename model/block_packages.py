"""The DiT's transformer block compiled ahead of time: one AOTInductor package per pass shape, kept
on disk and loaded by later starts, so a warm start neither traces the block with Dynamo nor looks
its kernels up in torch.compile's caches (time to first frame; README, Start-up).

A package holds one block's code for one pass shape with the layer's weights as inputs, so it serves
all 30 layers:

    packages = BlockPackages(model, ".cache/compile/blocks")
    blocks = packages.layers(fallback=[torch.compile(b) for b in model.blocks])   # stand-ins for model.blocks
    model.forward(..., blocks=blocks)          # a shape without a package runs its fallback
    packages.build_missing()                   # after warm-up: builds those in the background

The first call of a shape loads its package. A shape without one runs the fallback (torch.compile)
for the rest of this process, and build_missing() builds its package in child processes
(model/package_builder.py) for the next start: a cold start costs what torch.compile costs, never a
package build. Plain-tensor attention only: roam's FP8 attention is a Python op, which a package
cannot call.
"""
import hashlib
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from model.dit import CausalWanModel
from model.fp8 import Fp8Linear
from model.package_builder import PackageBuilder, load_package

log = logging.getLogger(__name__)
# roam sources whose text is part of a package's name: a change to any of them builds new packages
SOURCES = ("block_packages.py", "package_builder.py", "dit.py", "rope.py", "attention.py", "inductor_choices.py")
PLAIN_ATTENTION = ("sdpa(cudnn first)", "cudnn", "sdpa")   # select_attention names a package can hold


class PackageUnavailable(RuntimeError):
    """No loadable package for this model here; the message says why and what to do."""


def cudnn_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """model/attention.py's signature ([B, L, Nh, Dh] in and out) on cuDNN's SDPA kernel, named
    explicitly: an exported program drops `sdpa_kernel`'s backend choice, and SDPA's own dispatch
    would pick its flash kernel (1.38 against 0.79 ms a call on an H100, kernel_bench)."""
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
    """Packages of `model`'s block under `folder`, one per pass shape, loaded on first use. Not
    thread-safe: the thread that runs the DiT calls it."""

    def __init__(self, model: CausalWanModel, folder: str | Path, row_limit: int = 0):
        """row_limit: model.compile_row_limit, the compile setting in effect when building
        (model/inductor_choices.py), part of the packages' names so that changing it builds new ones."""
        weight = model.patch_embedding.weight
        if model.attn_backend not in PLAIN_ATTENTION:
            raise PackageUnavailable(f"attention backend {model.attn_backend} cannot be packaged "
                                     f"(only {', '.join(PLAIN_ATTENTION)})")
        if any(isinstance(m, Fp8Linear) for m in model.blocks.modules()):
            raise PackageUnavailable("FP8 layers are not packaged yet")
        self.model, self.folder, self.device, self.row_limit = model, Path(folder), weight.device, row_limit
        self.attend = cudnn_attention if weight.is_cuda else model._attend
        self.params = [[p.detach() for p in block.parameters()] for block in model.blocks]
        self.runners: dict[tuple, object | None] = {}   # None: no package, the fallback runs this shape
        self.missing: dict[tuple, dict] = {}             # build specs of the shapes without a package
        self.report: Callable[[str], object] = lambda message: None   # play's warm-up status
        self.builder = PackageBuilder(self.folder)

    @property
    def loaded(self) -> int:
        return sum(runner is not None for runner in self.runners.values())

    @property
    def unavailable(self) -> str | None:
        """Why no package could be built here, once a build has failed."""
        return "; ".join(self.builder.failures) or None

    def status(self) -> str:
        """What ran the block in this process (benchmark tables)."""
        if self.unavailable:
            return f"unavailable ({self.unavailable})"
        return f"{self.loaded} loaded" + (f", {len(self.missing)} shapes without one ran the fallback" if self.missing else "")

    def layers(self, fallback: list[Callable]) -> list[Callable]:
        """Stand-ins for model.blocks (same call signature), each running its layer from a package,
        or `fallback[i]` (e.g. the torch.compile'd block) for shapes without one."""
        return [_Layer(self, i, fallback[i]) for i in range(len(self.model.blocks))]

    def run(self, layer: int, x: Tensor, e0: Tensor, text_kv: tuple[Tensor, Tensor], cache: tuple[Tensor, Tensor],
            kv_size: tuple[int, int], rope: tuple[Tensor, Tensor]) -> Tensor | None:
        """The layer's output from its package, or None when this shape has no package (then the
        caller runs the fallback)."""
        inputs = [*self.params[layer], x, e0, *text_kv, *cache, *rope]
        shape = (tuple(kv_size), *((tuple(t.shape), t.dtype) for t in inputs[len(self.params[layer]):]))
        if shape not in self.runners:
            self.runners[shape] = self._load(shape, inputs)
        runner = self.runners[shape]
        return None if runner is None else runner.run(inputs)[0]

    def build_missing(self) -> bool:
        """Build the packages of the shapes that ran without one, in the background (child processes);
        the next start loads them. -> whether a build started."""
        if not self.missing or self.builder.building():
            return False
        weight = self.model.patch_embedding.weight
        self.report(f"the DiT block ran on torch.compile for {len(self.missing)} pass shapes; building their "
                    f"packages in the background (in {self.folder}) so that the next start loads them")
        self.builder.start({"device": str(self.device), "row_limit": self.row_limit, "config": asdict(self.model.cfg),
                            "dtype": str(weight.dtype).removeprefix("torch."), "attention": self.model.attn_request,
                            "packages": list(self.missing.values())}, self.report)
        return True

    def path(self, shape: tuple) -> Path:
        """Where the package for `shape` lives: named by everything its code depends on."""
        here = Path(__file__).parent
        key = hashlib.sha256(repr((torch.__version__, torch.version.cuda, _device_name(self.device),
                                   self.model.cfg, self.model.attn_backend, self.row_limit, shape)).encode())
        for name in SOURCES:
            key.update((here / name).read_bytes())
        return self.folder / f"block-{key.hexdigest()[:24]}.pt2"

    def _load(self, shape: tuple, inputs: list[Tensor]):
        """The package's runner, or None (and a build spec for build_missing) when there is none."""
        path = self.path(shape)
        if path.exists():
            try:
                return load_package(path, self.device)
            except Exception as e:                  # e.g. damaged on disk: build it again
                log.warning("block package %s does not load (%s); building it again", path, e)
                path.unlink()
        log.info("no DiT block package for kv_size %s, %d tokens: torch.compile runs it", shape[0], shape[1][0][1])
        self.missing[shape] = {"path": str(path), "kv_size": list(shape[0]), "params": len(self.params[0]),
                               "inputs": [[list(t.shape), list(t.stride()), str(t.dtype).removeprefix("torch.")]
                                          for t in inputs]}
        return None


class _Layer:
    """One layer's stand-in for model.blocks[i]; the package holds the attention kernels."""

    def __init__(self, packages: BlockPackages, index: int, fallback: Callable):
        self.packages, self.index, self.fallback = packages, index, fallback

    def __call__(self, x, e0, text_kv, cache, kv_size, rope, attend, attend_text) -> Tensor:
        out = self.packages.run(self.index, x, e0, text_kv, cache, kv_size, rope)
        return self.fallback(x, e0, text_kv, cache, kv_size, rope, attend, attend_text) if out is None else out


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
