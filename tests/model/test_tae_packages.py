"""The TAE's encoder and decoder from AOTInductor packages (model/tae_packages.py), on the CPU in
float32: a cold start runs the fallback and builds both packages in the background, and the next
start streams two blocks from them, memory carried between blocks, as the plain stream does."""
import pytest
import torch

from model.package_store import PackageStore
from model.tae import TAEHV, TAEConfig, TAEStream, run_layers
from model.tae_packages import TAEPackages
from tests.model.test_block_packages import quick_package_builds


@pytest.fixture(scope="module")
def tae():
    torch.manual_seed(0)
    return TAEHV(TAEConfig()).eval()


def stream_two_blocks(tae, run=run_layers) -> list[torch.Tensor]:
    """Latents and frames of two blocks of one stream."""
    g = torch.Generator().manual_seed(1)
    stream, out = TAEStream(tae, run), []
    for _ in range(2):
        latents = stream.encode(torch.rand(1, 12, 3, 32, 48, generator=g))    # [B, T, 3, H, W] in [0, 1]
        out += [latents, stream.decode(latents)]
    return out


@torch.no_grad()
def test_the_next_start_streams_from_the_packages(tae, tmp_path):
    cold = TAEPackages(tae, PackageStore(tmp_path, "cpu"))
    want = stream_two_blocks(tae)
    for got, expected in zip(stream_two_blocks(tae, cold), want):
        assert torch.equal(got, expected)                                       # the fallback ran
    assert cold.loaded == 0 and len(cold.store.missing) == 2                    # encoder, decoder
    with quick_package_builds():
        cold.store.build_missing()
        assert cold.store.builder.wait(timeout=1800) and cold.store.unavailable is None, cold.store.unavailable

    warm = TAEPackages(tae, PackageStore(tmp_path, "cpu"), fallback=None)       # a fallback call would fail
    got = stream_two_blocks(tae, warm)
    assert warm.loaded == 2 and not warm.store.missing
    for a, b in zip(got, want):
        assert (a - b).abs().max().item() < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@torch.no_grad()
def test_packages_match_the_compiled_tae_on_gpu(tmp_path):
    """fp16 at 480x832, as play runs it."""
    torch.manual_seed(0)
    tae = TAEHV(TAEConfig(), device="cuda", dtype=torch.float16).eval()
    g = torch.Generator("cuda").manual_seed(1)
    frames = [torch.rand(1, 12, 3, 480, 832, generator=g, device="cuda") for _ in range(2)]

    def run(packages):
        stream, out = TAEStream(tae, packages), []
        for block in frames:
            latents = stream.encode(block)
            out += [latents, stream.decode(latents)]
        return out
    cold = TAEPackages(tae, PackageStore(tmp_path, "cuda"), fallback=torch.compile(run_layers, dynamic=False))
    want = run(cold)
    cold.store.build_missing()
    assert cold.store.builder.wait(timeout=1800) and cold.store.unavailable is None, cold.store.unavailable
    warm = TAEPackages(tae, PackageStore(tmp_path, "cuda"), fallback=None)
    got = run(warm)
    assert warm.loaded == 2
    for a, b in zip(got, want):
        assert ((a.float() - b.float()).norm() / b.float().norm()).item() < 1e-2
