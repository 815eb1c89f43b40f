"""The DiT block from AOTInductor packages (model/block_packages.py, model/package_store.py), on the
CPU in float32 with the parity-size model: a cold start runs the fallback and builds every pass shape's
package in the background, the next start runs them all and matches the eager sampler, and compilers
that fail are skipped, or leave the fallback running with a reason.

A package build takes seconds of g++ on the CPU, so the tests share one: the cold start's (`built`),
which also finds one package damaged and builds it again."""
import logging
import os
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch._inductor.config  # noqa: F401  read now: the tests set $CXX and build settings for the build children only

from model.block_packages import AnyLayer, BlockPackages, PackageUnavailable
from model.dit import CausalWanModel, DiTConfig
from model import package_store
from model.package_store import PackageStore, check
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


def store(folder, row_limit: int = 0) -> PackageStore:
    return PackageStore(folder, "cpu", row_limit=row_limit)


def broken_compiler(folder, marker) -> str:
    """A C++ compiler that leaves a mark and crashes the process that runs it, as a package built
    by a broken compiler crashed the process loading it (model/package_store.py)."""
    path = folder / "broken-g++"
    path.write_text(f"#!/bin/sh\ntouch {marker}\nkill -SEGV $PPID\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@contextmanager
def quick_package_builds():
    """Package builds started inside it (the child processes of model/package_store.py) make the C++
    that g++ compiles fastest: AOTInductor's generated wrapper at -O0 instead of -O1, and scalar CPU
    kernels, without probing the CPU for AVX2/AVX-512. Play builds its packages for CUDA (Triton
    kernels), so these CPU builds only stand in for it: what the tests check (built, checked, loaded,
    the same outputs) does not depend on either, and a build takes a third to a half less (2-core
    machine: a DiT block package 6-7 s instead of 9-10 s, a TAE part 10-12 s instead of 19-20 s).
    The GPU tests build with play's settings."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AOT_INDUCTOR_COMPILE_WRAPPER_OPT_LEVEL", "O0")
        patch.setenv("TORCHINDUCTOR_VEC_ISA_OK", "0")
        yield


def damaged_package(model, folder) -> Path:
    """A damaged package file in `folder` for one of the model's pass shapes (the start of a .pt2's
    zip archive, cut short, as a disk that filled up leaves it). Its name comes from a start in
    another folder, which notes the path of each package it does not find."""
    names = BlockPackages(model, store(folder.parent / "names"))
    two_blocks(model, block_packages=names)
    path = folder / Path(min(names.store.missing)).name
    folder.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04" + bytes(996))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A cold start (no loadable packages: the eager fallback runs every shape; one shape's package
    is there but damaged), then the background build of its four packages, with a broken $CXX that
    the build must skip."""
    root = tmp_path_factory.mktemp("packages")
    marker = root / "broken-compiler-ran"
    old = os.environ.get("CXX")
    os.environ["CXX"] = broken_compiler(root, marker)
    reports = []
    try:
        model = tiny_model()
        damaged = damaged_package(model, root / "blocks")
        packages = BlockPackages(model, store(root / "blocks"))
        packages.store.report = reports.append
        cold, _ = two_blocks(model, block_packages=packages)
        assert packages.loaded == 0 and len(packages.store.missing) == 4   # context and denoising, first and steady block
        with quick_package_builds():
            assert packages.store.build_missing()
            assert packages.store.builder.wait(timeout=1800), "the build did not end"
    finally:
        os.environ.pop("CXX") if old is None else os.environ.update(CXX=old)
    return model, root / "blocks", packages, cold, marker, reports, damaged


def test_a_cold_start_runs_the_fallback_and_builds_every_pass_shape(built):
    model, folder, packages, cold, _, reports, _ = built
    want, _ = two_blocks(model)
    for got, expected in zip(cold, want):
        assert torch.equal(got, expected)                   # the eager block ran
    assert packages.store.unavailable is None, packages.store.unavailable
    assert any("building those in the background" in r for r in reports), reports
    assert any("built 4 ahead-of-time packages" in r for r in reports), reports
    assert len(list(folder.glob("*.pt2"))) == 4
    assert not [p for p in folder.iterdir() if p.is_dir()], "a build left a temporary folder behind"
    assert (folder / "build.log").read_text().count(" built dit-block-") == 4   # each with its export, compile and check times


def test_the_next_start_runs_every_pass_shape_from_its_package(built):
    model, folder, *_ = built
    packages = BlockPackages(model, store(folder))
    got, cache = two_blocks(model, block_packages=packages)
    want, want_cache = two_blocks(model)
    assert packages.loaded == 4 and not packages.store.missing   # no shape ran the fallback
    for a, b in zip(got, want):
        assert (a - b).abs().max().item() < 1e-4
    assert (cache - want_cache).abs().max().item() < 1e-4
    assert not packages.store.build_missing()


def test_a_broken_compiler_is_skipped_for_the_next_one(built):
    _, folder, packages, _, marker, *_ = built
    assert marker.exists(), "the $CXX compiler was never tried"
    assert "broken" not in packages.store.builder.compiler
    sections = [line for line in (folder / "build.log").read_text().splitlines() if line.startswith("== ")]
    assert "broken-g++" in sections[0] and sections[1] == f"== {packages.store.builder.compiler}"   # in turn


def test_without_a_working_compiler_the_build_fails_and_says_why(tmp_path, monkeypatch, caplog):
    model = tiny_model()
    broken = broken_compiler(tmp_path, tmp_path / "ran")
    monkeypatch.setenv("CXX", broken)
    monkeypatch.setenv("PATH", str(tmp_path))                # no g++ or c++ to fall back on
    packages = BlockPackages(model, store(tmp_path / "blocks"))
    got, _ = two_blocks(model, block_packages=packages)
    with caplog.at_level(logging.WARNING):
        assert packages.store.finish() == "0 loaded, 4 missing ran torch.compile"   # then waits for the build
    want, _ = two_blocks(model)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert broken in packages.store.unavailable
    assert "no C++ compiler built a loadable ahead-of-time package" in caplog.text
    assert not list((tmp_path / "blocks").glob("*.pt2"))
    assert not [p for p in (tmp_path / "blocks").iterdir() if p.is_dir()]


def test_a_package_that_fails_here_for_another_reason_is_kept(built, tmp_path, caplog, monkeypatch):
    """An intact package whose loading fails (a driver error, no memory) is not the package's fault:
    the file stays, torch.compile (here the eager block) runs that shape, nothing is rebuilt over it."""
    model, folder, *_ = built
    copy = tmp_path / "blocks"
    shutil.copytree(folder, copy)
    before = {p: p.read_bytes() for p in copy.glob("*.pt2")}

    def refuse(path, device):
        raise RuntimeError("CUDA error: out of memory")
    monkeypatch.setattr(package_store, "load_package", refuse)
    packages = BlockPackages(model, store(copy))
    with caplog.at_level(logging.WARNING):
        got, _ = two_blocks(model, block_packages=packages)
    assert "does not load here" in caplog.text and "damaged" not in caplog.text
    assert packages.loaded == 0 and not packages.store.missing and not packages.store.build_missing()
    assert {p: p.read_bytes() for p in copy.glob("*.pt2")} == before
    want, _ = two_blocks(model)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_a_damaged_package_runs_the_fallback_and_is_built_again(built, tmp_path, caplog):
    """Among intact packages: its shape runs the fallback, the others load, and its file makes way for
    the build. The build is the cold start's, which found one package damaged (the next start loads
    all four: test_the_next_start_runs_every_pass_shape_from_its_package)."""
    model, folder, *_, rebuilt = built
    assert package_store.intact(rebuilt) and rebuilt.stat().st_size > 1000    # built again, whole
    copy = tmp_path / "blocks"
    shutil.copytree(folder, copy)
    damaged = sorted(copy.glob("*.pt2"))[0]
    damaged.write_bytes(damaged.read_bytes()[:1000])          # e.g. a disk that filled up
    packages = BlockPackages(model, store(copy))
    with caplog.at_level(logging.WARNING):
        two_blocks(model, block_packages=packages)
    assert "is damaged" in caplog.text
    assert packages.loaded == 3 and list(packages.store.missing) == [str(damaged)] and not damaged.exists()
    assert packages.store.status() == "3 loaded, 1 missing ran torch.compile"   # as a benchmark reports it


def test_a_stopped_build_leaves_nothing_behind(tmp_path):
    model = tiny_model()
    packages = BlockPackages(model, store(tmp_path / "blocks"))
    reports = []
    packages.store.report = reports.append
    two_blocks(model, block_packages=packages)
    packages.store.build_missing()
    time.sleep(2)
    packages.store.builder.stop()
    assert all(child.poll() is not None for child in packages.store.builder._children)
    assert not [p for p in (tmp_path / "blocks").glob("*") if p.is_dir() or p.suffix == ".pt2"]
    assert "stopped building the ahead-of-time packages (0 of 4 built)" in reports[-1]


def test_the_check_refuses_a_package_that_computes_something_else():
    model = tiny_model()
    layer = AnyLayer(model.blocks[0], (0, -1), model._attend)
    cache = model.new_cache(1, 72)
    text = (1, model.cfg.text_len, 2, 128)
    inputs = [*[p.detach() for p in model.blocks[0].parameters()], torch.randn(1, 72, 256), torch.randn(1, 6, 256),
              torch.randn(text), torch.randn(text), cache.k[0], cache.v[0],
              *token_table(base_table(128), 3, 4, 6, offset=0, dtype=torch.float32)]

    def wrong(params, *rest):                                 # what a miscompiled package would return
        return torch.zeros(1, 72, 256)
    with pytest.raises(SystemExit, match="differs from the eager module"):
        check(layer, wrong, inputs, len(inputs) - 8)


def test_fp8_models_are_not_packaged():
    model = tiny_model()
    from model.fp8 import to_fp8
    to_fp8(model.blocks[0], names=("ffn.0",))
    with pytest.raises(PackageUnavailable, match="FP8"):
        BlockPackages(model, store("unused"))


def test_other_compile_settings_get_other_packages():
    model = tiny_model()
    shape = ((0, -1), ((1, 72, 256), torch.float32))
    assert BlockPackages(model, store("f", row_limit=2048)).path(shape) != BlockPackages(model, store("f")).path(shape)
    assert BlockPackages(model, store("f")).path(shape) == BlockPackages(model, store("f")).path(shape)


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
    cold = BlockPackages(model, PackageStore(tmp_path, "cuda"))
    want = run(block_packages=cold)                          # no packages yet: the compiled block runs
    cold.store.build_missing()
    assert cold.store.builder.wait(timeout=1800) and cold.store.unavailable is None, cold.store.unavailable
    packages = BlockPackages(model, PackageStore(tmp_path, "cuda"))
    got = run(block_packages=packages)
    assert packages.loaded == 4
    for a, b in zip(got, want):
        assert ((a.float() - b.float()).norm() / b.float().norm()).item() < 1e-2
