"""The DiT's transformer block compiled ahead of time: one AOTInductor package per pass shape, kept
on disk and loaded by later starts, so a warm start neither traces the block with Dynamo nor looks
its kernels up in torch.compile's caches (time to first frame; README, Start-up).

A package holds one block's code for one pass shape with the layer's weights as inputs, so it serves
all 30 layers:

    packages = BlockPackages(model, ".cache/compile/blocks")
    blocks = packages.layers(fallback=[torch.compile(b) for b in model.blocks])   # stand-ins for model.blocks
    model.forward(..., blocks=blocks)

The first call of a shape loads its package, or builds it (torch.export, then AOTInductor: the cold
start) with the C++ compiler that model/package_compiler.py found to build packages that load.
When no package can be built, `PackageUnavailable` says why, and the layers fall back to torch.compile.
Plain-tensor attention only: roam's FP8 attention is a Python op, which a package cannot call.
"""
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from model.dit import CausalWanModel
from model.fp8 import Fp8Linear
from model.package_compiler import CompilerCheck, compile_package, load_package

log = logging.getLogger(__name__)
# roam sources whose text is part of a package's name: a change to any of them builds new packages
SOURCES = ("block_packages.py", "package_compiler.py", "dit.py", "rope.py", "attention.py", "inductor_choices.py")
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
    """Packages of `model`'s block under `folder`, one per pass shape, loaded or built on first use.
    Not thread-safe: the thread that runs the DiT calls it. Building needs Inductor's per-thread
    settings (compile_setup) in effect on that thread."""

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
        self.runners: dict[tuple, object] = {}
        self.unavailable: str | None = None       # why packages could not be built here; then `fallback` runs
        self.report: Callable[[str], object] = lambda message: None   # progress of builds (play's warm-up status)
        self.compilers = CompilerCheck(self.folder, self.device)   # start() it early: a first check takes a while

    def layers(self, fallback: list[Callable]) -> list[Callable]:
        """Stand-ins for model.blocks (same call signature), each running its layer from a package,
        or `fallback[i]` (e.g. the torch.compile'd block) once a package cannot be built."""
        return [_Layer(self, i, fallback[i]) for i in range(len(self.model.blocks))]

    def run(self, layer: int, x: Tensor, e0: Tensor, text_kv: tuple[Tensor, Tensor], cache: tuple[Tensor, Tensor],
            kv_size: tuple[int, int], rope: tuple[Tensor, Tensor]) -> Tensor:
        inputs = [*self.params[layer], x, e0, *text_kv, *cache, *rope]
        shape = (tuple(kv_size), *((tuple(t.shape), t.dtype) for t in inputs[len(self.params[layer]):]))
        runner = self.runners.get(shape)
        if runner is None:
            runner = self._load(shape, inputs)
        return runner.run(inputs)[0]

    def path(self, shape: tuple) -> Path:
        """Where the package for `shape` lives: named by everything its code depends on."""
        here = Path(__file__).parent
        key = hashlib.sha256(repr((torch.__version__, torch.version.cuda, _device_name(self.device),
                                   self.model.cfg, self.model.attn_backend, self.row_limit, shape)).encode())
        for name in SOURCES:
            key.update((here / name).read_bytes())
        return self.folder / f"block-{key.hexdigest()[:24]}.pt2"

    def _load(self, shape: tuple, inputs: list[Tensor]):
        path = self.path(shape)
        if path.exists():
            try:
                self.runners[shape] = load_package(path, self.device)
                return self.runners[shape]
            except Exception as e:                  # e.g. damaged on disk: build it again
                log.warning("block package %s does not load (%s); building it again", path, e)
                path.unlink()
        self._build(shape, inputs, path)
        self.runners[shape] = load_package(path, self.device)
        return self.runners[shape]

    def _build(self, shape: tuple, inputs: list[Tensor], path: Path) -> None:
        """Export the block for this shape and compile it; written atomically, so a crash or an
        error leaves no half package behind."""
        cxx = self._compiler()
        kv_size, n = shape[0], len(self.params[0])
        self.report(f"building the DiT block's package for kv_size {kv_size}, {inputs[n].shape[1]} tokens "
                    f"(once per pass shape, cached in {self.folder})")
        t0 = time.perf_counter()
        exported = torch.export.export(AnyLayer(self.model.blocks[0], kv_size, self.attend), (inputs[:n], *inputs[n:]))
        t1 = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.folder) as tmp:
            built = Path(tmp) / path.name
            try:
                compile_package(exported, built, cxx)
            except Exception as e:
                raise PackageUnavailable(f"AOTInductor could not compile the block with {cxx}: "
                                         f"{type(e).__name__}: {str(e).strip()[-300:]}") from e
            os.replace(built, path)
        self.report(f"built the package in {time.perf_counter() - t0:.0f} s (export {t1 - t0:.1f} s)")

    def _compiler(self) -> str:
        cxx, failures = self.compilers.result(self.report)
        if cxx is None:
            raise PackageUnavailable("no C++ compiler built a loadable package (" + ("; ".join(failures) or "none found")
                                     + "); set CXX to a working g++, or model.block_packages: false")
        return cxx


class _Layer:
    """One layer's stand-in for model.blocks[i]; the package holds the attention kernels."""

    def __init__(self, packages: BlockPackages, index: int, fallback: Callable):
        self.packages, self.index, self.fallback = packages, index, fallback

    def __call__(self, x, e0, text_kv, cache, kv_size, rope, attend, attend_text) -> Tensor:
        packages = self.packages
        if packages.unavailable is None:
            try:
                return packages.run(self.index, x, e0, text_kv, cache, kv_size, rope)
            except PackageUnavailable as e:
                packages.unavailable = str(e)
                log.warning("DiT block packages: %s; torch.compile runs the block instead", e)
        return self.fallback(x, e0, text_kv, cache, kv_size, rope, attend, attend_text)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
