"""The causal DiT: the four single passes of shared/parity/dit_tiny.* (float32, 5e-5), the kv_size
contract, and the full-size layout against the public checkpoint's key manifest."""
import json
from pathlib import Path

import pytest
import torch

from model.dit import CausalWanModel, DiTConfig, timestep_sinusoid
from model.kv_cache import KVCache
from model.rope import base_table, token_table
from model.scheduler import FlowMatchSchedule

TOL = 5e-5
MANIFEST = Path(__file__).resolve().parents[2] / "model" / "manifests" / "dit_1.3b_keys.json"
TPF = 24  # tokens per latent frame of the fixture's 8 x 12 grid


def rope(frames: int, offset: int):
    return token_table(base_table(128), frames, 4, 6, offset=offset)


def err(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def context_pass(model, io, text_kv, cache, name):
    x = io[f"{name}.in"]
    return model(x, torch.zeros(1, dtype=torch.int64), text_kv, cache, (0, -1), rope(x.shape[1], 0))


def denoise_pass(model, io, text_kv, cache, name, rows):
    x = torch.cat([io["den.x16"], io["den.cond20"]], dim=2)                    # [1, 3, 36, 8, 12]
    t = io[f"{name}.timestep"]                                                  # [1, 3]; frame 0 is used
    return model(x, t[:, 0], text_kv, cache, (0, rows), rope(3, 6)), t


def assert_cache(cache, io, name, rows):
    for layer in range(2):
        for kv in "kv":
            assert err(getattr(cache, kv)[layer][:, :rows], io[f"{name}.cache.{layer}.{kv}"]) <= TOL


@torch.no_grad()
def test_single_passes_match_the_reference(dit_tiny):
    model, io = dit_tiny
    text_kv, cache = model.encode_text(io["prompt_embeds"].float()), model.new_cache(1, 6 * TPF)
    schedule = FlowMatchSchedule.create()
    for ctx, den, rows in (("ctx3", "den_kv3", 3 * TPF), ("ctx6", "den_kv6", 6 * TPF)):
        assert err(context_pass(model, io, text_kv, cache, ctx), io[f"{ctx}.out_flow"]) <= TOL
        assert_cache(cache, io, ctx, rows)
        flow, t = denoise_pass(model, io, text_kv, cache, den, rows)
        assert err(flow, io[f"{den}.out_flow"]) <= TOL
        x0 = schedule.flow_to_x0(flow.flatten(0, 1), io["den.x16"].flatten(0, 1), t.flatten()).view_as(flow)
        assert err(x0, io[f"{den}.out_x0"]) <= TOL


@torch.no_grad()
def test_denoising_pass_reads_the_loaded_cache_rows(dit_tiny):
    """A denoising pass on its own: the reference's cache rows loaded into a zeroed cache."""
    model, io = dit_tiny
    text_kv, cache = model.encode_text(io["prompt_embeds"].float()), model.new_cache(1, 6 * TPF)
    for layer in range(2):
        cache.k[layer][:, :6 * TPF], cache.v[layer][:, :6 * TPF] = io[f"ctx6.cache.{layer}.k"], io[f"ctx6.cache.{layer}.v"]
    flow, _ = denoise_pass(model, io, text_kv, cache, "den_kv6", 6 * TPF)
    assert err(flow, io["den_kv6.out_flow"]) <= TOL


@torch.no_grad()
def test_kv_size_contract(dit_tiny):
    model, io = dit_tiny
    text_kv, cache = model.encode_text(io["prompt_embeds"].float()), model.new_cache(1, 6 * TPF)
    x, t, r = io["ctx3.in"], torch.zeros(1, dtype=torch.int64), rope(3, 0)
    written = model(x, t, text_kv, cache, (0, -1), r)
    snapshot = (cache.k.clone(), cache.v.clone())
    plain = model(x, t, text_kv, cache, (0, 0), r)                             # current tokens only
    assert torch.equal(plain, written)
    y = io["ctx6.in"][:, 3:]                                                    # other tokens
    read = model(y, t, text_kv, cache, (0, 3 * TPF), r)                         # cache rows ++ current
    assert err(read, model(y, t, text_kv, cache, (0, 0), r)) > 1e-3
    rows = slice(0, 3 * TPF)                                                    # the rows read stay as they were
    assert torch.equal(cache.k[:, :, rows], snapshot[0][:, :, rows]) and torch.equal(cache.v[:, :, rows], snapshot[1][:, :, rows])
    exact = KVCache(cache.k[:, :, rows].clone(), cache.v[:, :, rows].clone())  # no room after the rows: concatenation
    assert torch.equal(model(y, t, text_kv, exact, (0, 3 * TPF), r), read)
    model(x, t, text_kv, cache, (3 * TPF, -1), r)                               # write at offset a
    assert torch.equal(cache.k[:, :, 3 * TPF:], cache.k[:, :, :3 * TPF])


@torch.no_grad()
def test_prefill_writes_the_same_rows_as_a_full_context_pass(dit_tiny):
    model, io = dit_tiny
    text_kv = model.encode_text(io["prompt_embeds"].float())
    full, fast = model.new_cache(1, 6 * TPF), model.new_cache(1, 6 * TPF)
    t = torch.zeros(1, dtype=torch.int64)
    model(io["ctx6.in"], t, text_kv, full, (0, -1), rope(6, 0))
    model.prefill(io["ctx6.in"], t, text_kv, fast, rope(6, 0))
    assert torch.equal(full.k, fast.k) and torch.equal(full.v, fast.v)


def test_timestep_sinusoid_is_cos_first_float64_on_cpu():
    s = timestep_sinusoid(torch.tensor([0, 1000]), 256)
    assert s.dtype == torch.float64 and s.device.type == "cpu"
    assert torch.equal(s[0], torch.cat([torch.ones(128), torch.zeros(128)]).double())
    assert s[1, 0].item() == pytest.approx(torch.cos(torch.tensor(1000.0, dtype=torch.float64)).item())


def test_tokens_per_frame_come_from_the_grid():
    cfg = DiTConfig()
    assert cfg.tokens_per_frame(60, 104) == 1560 and cfg.tokens_per_frame(8, 12) == TPF
    assert cfg.head_dim == 128 and DiTConfig.tiny().head_dim == 128
    with pytest.raises(ValueError, match="multiple of the patch"):
        cfg.tokens_per_frame(61, 104)


def test_full_size_layout_matches_the_checkpoint(parity_dir):
    model = CausalWanModel(DiTConfig(), device="meta")
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    manifest = json.loads(MANIFEST.read_text())
    assert list(shapes) == list(manifest) and shapes == manifest
    upstream = json.loads((parity_dir / "dit_1.3b_keys.json").read_text())
    assert shapes == {k["name"]: k["shape"] for k in upstream["keys"]}
    assert len(shapes) == 825 and not list(model.buffers())
    assert sum(p.numel() for p in model.parameters()) == 1_419_119_680


@torch.no_grad()
def test_fused_qkv_gives_the_same_pass():
    """prepare_for_inference fuses q/k/v into one matmul; in float32 on the CPU the pass is unchanged."""
    torch.manual_seed(0)
    model = CausalWanModel(DiTConfig.tiny(), dtype=torch.float32).eval()
    x, t, r = torch.randn(1, 3, 36, 8, 12), torch.zeros(1, dtype=torch.int64), rope(3, 0)
    text_kv = model.encode_text(torch.randn(1, 7, 4096))
    before = model(x, t, text_kv, model.new_cache(1, 3 * TPF), (0, -1), r)
    model.prepare_for_inference()
    model.prepare_for_inference()                                               # idempotent
    assert not hasattr(model.blocks[0].self_attn, "q") and model.blocks[0].self_attn.qkv.out_features == 3 * 256
    after = model(x, t, text_kv, model.new_cache(1, 3 * TPF), (0, -1), r)
    assert err(after, before) <= 1e-6


@pytest.mark.gpu
@torch.no_grad()
def test_feed_forward_fused_gelu_matches_the_module_on_cuda():
    """The cuBLASLt bias+GELU epilogue is the tanh GELU of Wan's FFN, within bf16 rounding."""
    from model.dit import feed_forward
    torch.manual_seed(0)
    ffn = CausalWanModel(DiTConfig.tiny(), device="cuda", dtype=torch.bfloat16).blocks[0].ffn
    x = torch.randn(1, 300, 256, device="cuda", dtype=torch.bfloat16)
    assert err(feed_forward(ffn, x), ffn(x)) < 1e-2
