"""TAEHV taew2_1: parity with the reference (taehv fixture, full-size network), streaming equals
one call, frame counts, and the full-size manifest."""
import pytest
import torch
from safetensors.torch import load_file

from model.checkpoint import load_manifest
from model.tae import TAEHV, TAEConfig, TAEStream, memory_shapes, run_layers

TOL = 3e-5  # parity/README.md tolerance table: taehv


@pytest.fixture(scope="module")
def tae_io(parity_dir):
    tensors = load_file(parity_dir / "taehv.safetensors")
    tae = TAEHV(TAEConfig())
    tae.load_state_dict({k: v.float() for k, v in tensors.items() if not k.startswith("io.")}, strict=True)
    return tae.eval(), {k[3:]: v for k, v in tensors.items() if k.startswith("io.")}


def close(a, b, tol=TOL):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a - b).abs().max().item()
    assert err <= tol, f"max abs error {err:.3g} > {tol}"


@torch.no_grad()
def test_encode_matches_reference_including_the_padded_10_frame_case(tae_io):
    tae, io = tae_io
    close(tae.encode(io["video"]), io["encode_latent"])
    close(tae.encode(io["video"][:, :10]), io["encode_latent_10frames"])   # last frame repeated to 12


@torch.no_grad()
def test_decode_matches_reference(tae_io):
    tae, io = tae_io
    close(tae.decode_raw(io["decode_latent_in"]), io["decode_video_raw"])
    video = tae.decode(io["decode_latent_in"])
    assert video.shape[1] == 4 * 3 - 3
    close(video, io["decode_video"])


def test_streaming_block_by_block_equals_one_call(tae_io):
    tae, io = tae_io
    stream = TAEStream(tae)
    frames = [stream.decode(io["decode_latent_in"][:, i:i + 1]) for i in range(3)]
    assert [f.shape[1] for f in frames] == [1, 4, 4]                          # start-up frames trimmed once
    close(torch.cat(frames, 1), io["decode_video"])
    stream.reset()
    latents = torch.cat([stream.encode(io["video"][:, i:i + 4]) for i in (0, 4, 8)], 1)
    close(latents, io["encode_latent"])
    with pytest.raises(ValueError, match="multiple of 4"):
        stream.encode(io["video"][:, :6])


@torch.no_grad()
def test_memory_shapes_are_what_a_run_carries():
    tae = TAEHV(TAEConfig()).eval()
    frames = torch.rand(1, 12, 3, 32, 48)                                    # [B, T, 3, H, W]
    enc_memory, dec_memory = {}, {}
    latents = run_layers(tae.encoder, frames, enc_memory)
    run_layers(tae.decoder, latents, dec_memory)
    assert {i: tuple(t.shape) for i, t in enc_memory.items()} == memory_shapes(tae.encoder, tuple(frames.shape))
    assert {i: tuple(t.shape) for i, t in dec_memory.items()} == memory_shapes(tae.decoder, tuple(latents.shape))
    with pytest.raises(TypeError, match="no shape rule"):
        memory_shapes(torch.nn.Sequential(torch.nn.GELU()), (1, 4, 3, 8, 8))


@torch.no_grad()
def test_a_compiled_stream_uses_one_graph_per_network_from_its_first_block():
    """The first block starts from zero frames put in the memory, so it runs the same compiled
    graph as every later block (the warm-up compiles and loads half as many TAE graphs)."""
    from torch._dynamo.utils import counters
    tae = TAEHV(TAEConfig()).eval()
    frames = torch.rand(1, 12, 3, 32, 48)
    plain, compiled = TAEStream(tae), TAEStream(tae, torch.compile(run_layers, backend="eager", dynamic=False))
    torch._dynamo.reset()
    counters.clear()
    for _ in range(2):
        latents = plain.encode(frames)
        assert torch.equal(compiled.encode(frames), latents)
        assert torch.equal(compiled.decode(latents), plain.decode(latents))
    assert counters["stats"]["unique_graphs"] == 2                           # encoder, decoder
    torch._dynamo.reset()


def test_full_size_tae_matches_the_checkpoint_manifest():
    tae = TAEHV(TAEConfig(), device="meta")
    sd = tae.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == load_manifest("taew2_1_keys")
    assert len(sd) == 128 and sum(v.numel() for v in sd.values()) == 11_315_539
    assert tuple(tae.tgrow_weight_names()) == ("decoder.7.conv.weight", "decoder.13.conv.weight", "decoder.19.conv.weight")


def test_frame_count_rules():
    cfg = TAEConfig()
    assert (cfg.t_downscale, cfg.t_upscale, cfg.frames_to_trim) == (4, 4, 3)
    tae = TAEHV(cfg).eval()
    assert tae.encode(torch.rand(1, 5, 3, 16, 16)).shape == (1, 2, 16, 2, 2)  # ceil(5/4)
    assert tae.decode(torch.randn(1, 2, 16, 2, 2)).shape == (1, 5, 3, 16, 16)  # 4F - 3
