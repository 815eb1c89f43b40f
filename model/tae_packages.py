"""The TAE's encoder and decoder compiled ahead of time (model/package_store.py): one AOTInductor
package per part and input shape, loaded by later starts instead of tracing `run_layers` with Dynamo
(time to first frame: docs/performance.md, Start-up).

    run = TAEPackages(tae, store, fallback=torch.compile(run_layers))   # run_layers' signature
    stream = TAEStream(tae, run)

A shape without a package runs `fallback` for the rest of this process, and its package is built for
the next start (store.build_missing()).
"""
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from model.package_store import PackageStore, config_from
from model.tae import TAEHV, TAEConfig, run_layers

# roam sources whose text is part of a package's name: a change to any of them builds new packages
SOURCES = ("tae.py", "tae_packages.py", "package_store.py", "inductor_choices.py")
# The build runs while play does (model/package_store.py). Benchmarking the kernels' launch configs
# there (the TAE's were not found in torch.compile's autotuning cache) ran full-size TAE kernels on
# the GPU and held play's frames back. With each kernel's heuristic config the TAE is as fast as
# with torch.compile (`main.py bench`; docs/performance.md, Start-up).
BUILD_SETTINGS = {"triton.autotune_pointwise": False}


class RunLayers(nn.Module):
    def __init__(self, layers: nn.Sequential):
        super().__init__()
        self.layers = layers

    def forward(self, x: Tensor, memory: dict[int, Tensor]) -> Tensor:
        return run_layers(self.layers, x, memory)


class AnyPart(nn.Module):
    """run_layers over an encoder or decoder with its parameters as inputs and its memory as plain
    tensors: forward(params, x, *memory) -> (y, *memory for the next block), memory in `keys` order
    (the MemBlocks' layer indices)."""

    def __init__(self, layers: nn.Sequential, keys: list[int]):
        super().__init__()
        self.code = [RunLayers(layers)]             # in a list: its weights must stay inputs, not constants
        self.names = [name for name, _ in self.code[0].named_parameters()]
        self.keys = list(keys)

    def forward(self, params: list[Tensor], x: Tensor, *memory: Tensor) -> tuple[Tensor, ...]:
        carried = dict(zip(self.keys, memory))
        y = torch.func.functional_call(self.code[0], dict(zip(self.names, params)), (x, carried))
        return (y, *(carried[k] for k in self.keys))


class TAEPackages:
    """`run_layers` for `tae`'s encoder and decoder from the packages in `store`, or `fallback` for
    shapes without one. Not thread-safe: the thread that runs the codec calls it."""

    def __init__(self, tae: TAEHV, store: PackageStore, fallback: Callable = run_layers):
        self.tae, self.store, self.fallback = tae, store, fallback
        self.parts = {id(tae.encoder): "encoder", id(tae.decoder): "decoder"}
        self.params = {id(part): [p.detach() for p in part.parameters()] for part in (tae.encoder, tae.decoder)}
        self.runners: dict[tuple, object | None] = {}
        dtype = next(tae.parameters()).dtype
        self.build_args = {"config": asdict(tae.cfg), "dtype": str(dtype).removeprefix("torch.")}

    @property
    def loaded(self) -> int:
        return sum(runner is not None for runner in self.runners.values())

    def __call__(self, layers: nn.Sequential, x: Tensor, memory: dict[int, Tensor]) -> Tensor:
        params, part = self.params[id(layers)], self.parts[id(layers)]
        keys = sorted(memory)
        inputs = [*params, x, *(memory[k] for k in keys)]
        shape = (part, tuple(keys), *((tuple(t.shape), t.dtype) for t in inputs[len(params):]))
        if shape not in self.runners:
            here = Path(__file__).parent
            path = self.store.path(f"tae-{part}", (self.tae.cfg, BUILD_SETTINGS, shape), [here / name for name in SOURCES])
            self.runners[shape] = self.store.load(path, "model.tae_packages:exportable_part",
                                                  {**self.build_args, "part": part, "keys": keys}, inputs, len(params),
                                                  inductor=BUILD_SETTINGS)
        runner = self.runners[shape]
        if runner is None:
            return self.fallback(layers, x, memory)
        y, *carried = runner.run(inputs)
        memory.update(zip(keys, carried))
        return y


def exportable_part(args: dict, device: torch.device) -> AnyPart:
    """An encoder or decoder's code for a package build in a child process (model/package_store.py)."""
    tae = TAEHV(config_from(TAEConfig, args["config"]), device="meta", dtype=getattr(torch, args["dtype"]))
    return AnyPart(getattr(tae, args["part"]).to_empty(device=device), args["keys"])
