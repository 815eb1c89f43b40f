"""The DiT block from AOTInductor packages (model/block_packages.py), on the CPU in float32 with the
parity-size model: every pass shape of two blocks matches the eager sampler, a second start loads
the packages without building, and compilers that fail are skipped or fall back to torch.compile."""
import logging
import os
import shutil
import stat

import pytest
import torch

from torch._inductor import config as inductor_config

from model.block_packages import BlockPackages, PackageUnavailable
from model.dit import CausalWanModel, DiTConfig
from model.rope import base_table, token_table
from model.sampler import BlockSampler

GRID = (8, 12)


def tiny_model() -> CausalWanModel:
    torch.manual_seed(0)
    model = CausalWanModel(DiTConfig.tiny(), dtype=torch.float32).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    model.prepare_for_inference()
    return model


def two_blocks(model, **sampler_kw) -> tuple[list[torch.Tensor], torch.Tensor]:
    """x0 of a first and a steady block (all four pass shapes) and the KV cache afterwards."""
    g = torch.Generator().manual_seed(1)
    prompt = torch.randn(1, 16, model.cfg.text_dim, generator=g)
    sampler = BlockSampler(model, prompt, latent_hw=GRID, generator=torch.Generator().manual_seed(2), **sampler_kw)
    out = [sampler.generate_block(torch.randn(1, 3, 16, *GRID, generator=g), torch.randn(1, 3, 20, *GRID, generator=g))
           for _ in range(2)]
    return out, sampler.cache.k.clone()


def broken_compiler(folder, marker) -> str:
    """A C++ compiler that leaves a mark and fails."""
    path = folder / "broken-g++"
    path.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Packages built once for the module, with a broken $CXX that the build must skip."""
    root = tmp_path_factory.mktemp("packages")
    marker = root / "broken-compiler-ran"
    old = os.environ.get("CXX")
    os.environ["CXX"] = broken_compiler(root, marker)
    metadata = dict(inductor_config.aot_inductor.metadata)
    reports = []
    try:
        model = tiny_model()
        packages = BlockPackages(model, root / "blocks")
        packages.report = reports.append
        out, cache = two_blocks(model, compile=True, block_packages=packages)
    finally:
        os.environ.pop("CXX") if old is None else os.environ.update(CXX=old)
    assert inductor_config.aot_inductor.metadata == metadata, "the build changed torch.compile's cache key"
    assert sum("building the DiT block's package" in r for r in reports) == 4, reports
    assert any("broken-g++" in r for r in reports), reports
    return model, root / "blocks", packages, out, cache, marker


def test_every_pass_shape_matches_the_eager_sampler(built):
    model, folder, packages, out, cache, _ = built
    want, want_cache = two_blocks(model)
    assert packages.unavailable is None
    assert len(packages.runners) == 4                       # context and denoising, first and steady block
    for got, expected in zip(out, want):
        assert (got - expected).abs().max().item() < 1e-4
    assert (cache - want_cache).abs().max().item() < 1e-4
    assert len(list(folder.glob("*.pt2"))) == 4
    assert not [p for p in folder.iterdir() if p.is_dir()], "a build left a temporary folder behind"


def test_a_broken_compiler_is_skipped_and_the_working_one_remembered(built):
    _, folder, *_, marker = built
    assert marker.exists(), "the $CXX compiler was never tried"
    assert "broken" not in (folder / "compiler").read_text()


def test_a_second_start_loads_the_packages_without_building(built, monkeypatch):
    model, folder, _, out, _, _ = built

    def build(*args):
        raise AssertionError("a package was built again")
    monkeypatch.setattr(BlockPackages, "_build", build)
    again, _ = two_blocks(model, compile=True, block_packages=BlockPackages(model, folder))
    for got, expected in zip(again, out):
        assert torch.equal(got, expected)


def test_without_a_working_compiler_the_fallback_runs(tmp_path, monkeypatch, caplog):
    model = tiny_model()
    monkeypatch.setenv("CXX", broken_compiler(tmp_path, tmp_path / "ran"))
    monkeypatch.setenv("PATH", str(tmp_path))                # no g++ or c++ to fall back on
    packages = BlockPackages(model, tmp_path / "blocks")
    ran = []

    class Eager:                                             # stands in for the torch.compile'd block
        def __init__(self, block):
            self.block = block

        def __call__(self, *args):
            ran.append(1)
            return self.block(*args)
    layers = packages.layers(fallback=[Eager(b) for b in model.blocks])
    x = torch.randn(1, 3, model.cfg.in_dim, *GRID)
    text_kv = model.encode_text(torch.randn(1, 16, model.cfg.text_dim))
    cache = model.new_cache(1, 3 * 3 * 24)
    rope = token_table(base_table(model.cfg.head_dim), 3, *model.cfg.grid(*GRID), offset=0, dtype=torch.float32)
    with caplog.at_level(logging.WARNING):
        got = model(x, torch.zeros(1), text_kv, cache, (0, -1), rope, blocks=layers)
    want = model(x, torch.zeros(1), text_kv, model.new_cache(1, 3 * 3 * 24), (0, -1), rope)
    assert torch.equal(got, want)
    assert len(ran) == len(model.blocks)
    assert "no C++ compiler built a loadable package" in packages.unavailable
    assert "torch.compile runs the block instead" in caplog.text
    assert not list((tmp_path / "blocks").glob("*.pt2"))


def test_fp8_models_are_not_packaged():
    model = tiny_model()
    from model.fp8 import to_fp8
    to_fp8(model.blocks[0], names=("ffn.0",))
    with pytest.raises(PackageUnavailable, match="FP8"):
        BlockPackages(model, "unused")


def test_a_damaged_package_is_built_again(built, tmp_path, caplog):
    model, folder, _, out, _, _ = built
    copy = tmp_path / "blocks"
    shutil.copytree(folder, copy)
    damaged = sorted(copy.glob("*.pt2"))[0]
    damaged.write_bytes(damaged.read_bytes()[:1000])          # e.g. a disk that filled up
    with caplog.at_level(logging.WARNING):
        again, _ = two_blocks(model, compile=True, block_packages=BlockPackages(model, copy))
    assert "does not load" in caplog.text
    assert damaged.stat().st_size > 1000                    # rebuilt whole
    for got, expected in zip(again, out):
        assert torch.equal(got, expected)


def test_other_compile_settings_get_other_packages():
    model = tiny_model()
    shape = ((0, -1), ((1, 72, 256), torch.float32))
    assert BlockPackages(model, "f", row_limit=2048).path(shape) != BlockPackages(model, "f", row_limit=0).path(shape)
    assert BlockPackages(model, "f").path(shape) == BlockPackages(model, "f").path(shape)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_packages_in_cuda_graphs_match_the_compiled_block_on_gpu(tmp_path):
    """bf16 with cuDNN attention, each pass replayed as a CUDA graph, as play runs it."""
    torch.manual_seed(0)
    model = CausalWanModel(DiTConfig.tiny(), device="cuda", dtype=torch.bfloat16).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    model.prepare_for_inference()

    def run(**kw):
        g = torch.Generator("cuda").manual_seed(1)
        prompt = torch.randn(1, 16, model.cfg.text_dim, generator=g, device="cuda", dtype=torch.bfloat16)
        sampler = BlockSampler(model, prompt, latent_hw=GRID, generator=torch.Generator("cuda").manual_seed(2),
                               compile=True, cuda_graphs=True, **kw)
        return [sampler.generate_block(torch.randn(1, 3, 16, *GRID, generator=g, device="cuda", dtype=torch.bfloat16),
                                       torch.randn(1, 3, 20, *GRID, generator=g, device="cuda", dtype=torch.bfloat16))
                for _ in range(3)]
    packages = BlockPackages(model, tmp_path)
    got, want = run(block_packages=packages), run()
    assert packages.unavailable is None and len(packages.runners) == 4
    for a, b in zip(got, want):
        assert ((a.float() - b.float()).norm() / b.float().norm()).item() < 1e-2
