"""Block-autoregressive sampling against the 3-block run of shared/parity/dit_tiny.* (float32, 5e-5),
with the recorded noise injected; plus the streaming contract (reset, generator noise, shapes)."""
import pytest
import torch

from model.sampler import BlockSampler, sample_video

TOL = 5e-5
GRID = (8, 12)


def err(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def block_inputs(io, b):
    """The block's ref latent, cond20 and noise [4 steps, 1, 3, 16, h, w] as the fixture recorded them."""
    s = slice(3 * b, 3 * b + 3)
    cond20 = torch.cat([io["ar.mask_latent"][:, s], io["ar.render_latent"][:, s]], dim=2)
    noise = torch.stack([io["ar.noise"][:, s]] + [io["ar.renoise"][b, k][None] for k in range(3)])
    return io["ar.ref_latent"][:, s], cond20, noise


@pytest.mark.parametrize("rope_dtype", [torch.float64, torch.float32])
def test_three_blocks_match_the_reference_step_by_step(dit_tiny, rope_dtype):
    model, io = dit_tiny
    sampler = BlockSampler(model, io["prompt_embeds"].float(), latent_hw=GRID, rope_dtype=rope_dtype)
    for b in range(3):
        ref, cond20, noise = block_inputs(io, b)
        assert err(cond20, io[f"ar.b{b}.cond20"]) == 0
        trace = {}
        x0 = sampler.generate_block(ref, cond20, noise, trace=trace)
        assert err(trace["context"], io[f"ar.b{b}.ctx_in"]) <= TOL
        rows = trace["context"].shape[1] * 24
        for layer in range(2):
            assert err(sampler.cache.k[layer][:, :rows], io[f"ar.b{b}.cache.{layer}.k"]) <= TOL
            assert err(sampler.cache.v[layer][:, :rows], io[f"ar.b{b}.cache.{layer}.v"]) <= TOL
        for k in range(4):
            for name in ("xt", "flow", "x0"):
                assert err(trace[f"s{k}.{name}"], io[f"ar.b{b}.s{k}.{name}"]) <= TOL, f"block {b} step {k} {name}"
        assert err(x0, io["ar.output"][:, 3 * b:3 * b + 3]) <= TOL


def test_sample_video_matches_the_reference_output(dit_tiny):
    model, io = dit_tiny
    noise = [block_inputs(io, b)[2] for b in range(3)]
    out = sample_video(model, io["prompt_embeds"].float(), io["ar.ref_latent"], io["ar.mask_latent"],
                       io["ar.render_latent"], noise=noise)
    assert err(out, io["ar.output"]) <= TOL


def test_reset_starts_a_fresh_context(dit_tiny):
    model, io = dit_tiny
    streaming = BlockSampler(model, io["prompt_embeds"].float(), latent_hw=GRID)
    streaming.generate_block(*block_inputs(io, 0))
    streaming.reset()
    after_reset = streaming.generate_block(*block_inputs(io, 1))
    fresh = BlockSampler(model, io["prompt_embeds"].float(), latent_hw=GRID).generate_block(*block_inputs(io, 1))
    assert torch.equal(after_reset, fresh)
    continued = streaming.generate_block(*block_inputs(io, 1))                 # now with a previous block
    assert err(continued, fresh) > 1e-3


def test_generator_noise_is_reproducible(dit_tiny):
    model, io = dit_tiny
    ref, cond20, _ = block_inputs(io, 0)

    def run(seed):
        sampler = BlockSampler(model, io["prompt_embeds"].float(), latent_hw=GRID,
                               generator=torch.Generator().manual_seed(seed))
        return [sampler.generate_block(ref, cond20) for _ in range(2)]

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[1], c[1]) and not torch.equal(a[0], a[1])


def test_block_shapes_are_checked(dit_tiny):
    model, io = dit_tiny
    sampler = BlockSampler(model, io["prompt_embeds"].float(), latent_hw=GRID)
    ref, cond20, _ = block_inputs(io, 0)
    with pytest.raises(ValueError, match="cond20"):
        sampler.generate_block(ref, cond20[:, :, :16])
    with pytest.raises(ValueError, match="ref_latent"):
        sampler.generate_block(ref[:, :2], cond20)


def test_attention_is_rechosen_for_weights_that_moved(dit_tiny):
    model, io = dit_tiny
    meta = type(model)(model.cfg, device="meta", dtype=torch.float32)
    assert meta.attention_is_stale() is False
    meta.load_state_dict(model.state_dict(), assign=True)                       # now real CPU tensors
    assert meta.attention_is_stale()
    BlockSampler(meta, io["prompt_embeds"].float(), latent_hw=GRID)
    assert not meta.attention_is_stale() and meta.attn_backend == "sdpa"


@pytest.mark.gpu
def test_compiled_sampler_matches_eager_on_gpu(dit_tiny):
    model, io = dit_tiny
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gpu = type(model)(model.cfg, attn_backend="sdpa", device="cuda", dtype=torch.float32)
    gpu.load_state_dict(model.state_dict())
    outs = []
    for compile in (False, True):
        sampler = BlockSampler(gpu, io["prompt_embeds"].float().cuda(), latent_hw=GRID, compile=compile)
        outs.append(torch.cat([sampler.generate_block(*block_inputs(io, b)) for b in range(3)], dim=1).cpu())
    assert err(outs[0], io["ar.output"]) <= TOL and err(outs[1], io["ar.output"]) <= TOL


@pytest.mark.gpu
@torch.no_grad()
def test_cuda_graph_replays_match_plain_passes_on_gpu():
    """Graphs captured in block 1 (first-block shapes) and 2 (steady) are replayed in blocks 3 and 4,
    after a reset, and after a prompt change (text K/V are updated in place)."""
    from model.dit import CausalWanModel, DiTConfig
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = CausalWanModel(DiTConfig.tiny(), attn_backend="sdpa", device="cuda", dtype=torch.float32).eval()
    prompts = torch.randn(2, 1, 9, 4096, device="cuda")
    ref, cond = torch.randn(6, 1, 3, 16, *GRID, device="cuda"), torch.randn(6, 1, 3, 20, *GRID, device="cuda")
    outs = []
    for graphs in (False, True):
        sampler = BlockSampler(model, prompts[0], latent_hw=GRID, cuda_graphs=graphs,
                               generator=torch.Generator("cuda").manual_seed(1))
        blocks = []
        for b in range(6):
            if b == 3:
                sampler.reset()
            if b == 4:
                sampler.set_prompt(prompts[1])
            blocks.append(sampler.generate_block(ref[b], cond[b]).clone())
        outs.append(torch.cat(blocks, dim=1))
        assert len(sampler._graphs) == (4 if graphs else 0)
    assert ((outs[1] - outs[0]).norm() / outs[0].norm()).item() < 1e-5


@torch.no_grad()
def test_a_prefill_redone_with_other_source_latents_gives_the_plain_block():
    """The runtime may run a block's context pass ahead with predicted source latents and then again
    with the real ones: the block must be the one generate_block makes from the real ones."""
    from model.dit import CausalWanModel, DiTConfig
    torch.manual_seed(0)
    model = CausalWanModel(DiTConfig.tiny(), dtype=torch.float32).eval()
    prompt = torch.randn(1, 9, 4096)
    ref, cond, noise = torch.randn(3, 1, 3, 16, *GRID), torch.randn(3, 1, 3, 20, *GRID), torch.randn(3, 4, 1, 3, 16, *GRID)
    plain, ahead = (BlockSampler(model, prompt, latent_hw=GRID) for _ in range(2))
    want = [plain.generate_block(ref[b], cond[b], noise[b]) for b in range(3)]
    got = [ahead.generate_block(ref[0], cond[0], noise[0])]
    for b in (1, 2):
        ahead.prefill(ref[0] if b == 1 else ref[b])            # block 1: a wrong guess first, then the truth
        if b == 1:
            ahead.prefill(ref[1])
        got.append(ahead.denoise(cond[b], noise[b]))
    assert all(torch.equal(w, g) for w, g in zip(want, got))
    assert not torch.equal(want[1], BlockSampler(model, prompt, latent_hw=GRID).generate_block(ref[1], cond[1], noise[1]))
    with pytest.raises(RuntimeError, match="prefill"):
        ahead.denoise(cond[0], noise[0])                       # each block needs its own prefill
