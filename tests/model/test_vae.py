"""Wan2.1 VAE: parity with the reference (vae_tiny fixture, both decoder cache rules), streaming
equals one call, and the full-size network matches the checkpoint manifest."""
import pytest
import torch
from safetensors.torch import load_file

from model.checkpoint import load_manifest
from model.vae import LATENT_STD, VAEConfig, WanVAE, WanVAEStream

TOL = 2e-5  # parity/README.md tolerance table: vae_tiny


@pytest.fixture(scope="module")
def vae_io(parity_dir):
    tensors = load_file(parity_dir / "vae_tiny.safetensors")
    weights = {k: v.float() for k, v in tensors.items() if not k.startswith("io.")}
    return weights, {k[3:]: v for k, v in tensors.items() if k.startswith("io.")}


def tiny_vae(weights, quirk: bool = True) -> WanVAE:
    vae = WanVAE(VAEConfig.tiny(decoder_cache_quirk=quirk))
    vae.load_state_dict(weights, strict=True)
    return vae.eval()


@pytest.fixture(scope="module")
def decoded(vae_io):
    """One-call decodes of the fixture latents, computed once: {quirk: (vae, raw frames)}."""
    weights, io = vae_io
    out = {}
    for quirk in (True, False):
        vae = tiny_vae(weights, quirk)
        out[quirk] = vae, WanVAEStream(vae).decode_raw(io["decode_latent_in"])
    return out


def close(a, b, tol=TOL):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a - b).abs().max().item()
    assert err <= tol, f"max abs error {err:.3g} > {tol}"


def test_encode_matches_reference(vae_io):
    weights, io = vae_io
    vae = tiny_vae(weights)
    with torch.no_grad():
        mu = vae.encode_mu(io["video"], {})                               # [B, z, F, h, w], Wan layout
    close(mu.transpose(1, 2), io["encode_mu_raw"])
    close(vae.normalize(mu).transpose(1, 2), io["encode_latent"])
    close(vae.encode(io["video"].transpose(1, 2)), io["encode_latent"])  # the [B, T, 3, H, W] entry point


@pytest.mark.parametrize("quirk,suffix", [(True, ""), (False, "_quirk_fixed")])
def test_decode_matches_reference_in_both_cache_modes(vae_io, decoded, quirk, suffix):
    raw = decoded[quirk][1]
    close(raw, vae_io[1]["decode_video_raw" + suffix])
    close(raw.clamp(-1, 1), vae_io[1]["decode_video" + suffix])


def test_quirk_only_changes_frames_from_latent_3_on(decoded):
    quirk, fixed = decoded[True][1], decoded[False][1]
    assert torch.equal(quirk[:, :9], fixed[:, :9])                      # latents 0-2 -> frames 0-8
    assert (quirk[:, 9:] - fixed[:, 9:]).abs().amax(dim=(0, 2, 3, 4)).min() > 0.1


def test_streaming_decode_and_encode_equal_one_call(vae_io, decoded):
    io = vae_io[1]
    vae, one_call = decoded[True]
    latents, frames = io["decode_latent_in"], io["video"].transpose(1, 2)
    stream = WanVAEStream(vae)
    blocks = [stream.decode(latents[:, a:b]) for a, b in ((0, 1), (1, 3), (3, 5))]
    assert [b.shape[1] for b in blocks] == [1, 8, 8]
    assert torch.equal(torch.cat(blocks, 1), one_call.clamp(-1, 1))
    encoded = torch.cat([stream.encode(frames[:, :5]), stream.encode(frames[:, 5:9])], 1)
    assert torch.equal(encoded, vae.encode(frames))


def test_stream_rejects_blocks_of_the_wrong_length(vae_io):
    stream = WanVAEStream(tiny_vae(vae_io[0]))
    frames = vae_io[1]["video"].transpose(1, 2)
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        stream.encode(frames[:, :4])
    stream.encode(frames[:, :5])
    with pytest.raises(ValueError, match="4k"):
        stream.encode(frames[:, :3])


def test_encoder_drops_frames_beyond_1_plus_4k(vae_io):
    weights, io = vae_io
    frames = io["video"].transpose(1, 2)[:, :5, :, :16, :16]              # 5 frames
    padded = torch.cat([frames, frames[:, -3:]], 1)                       # 8 frames: 3 are dropped
    vae = tiny_vae(weights)
    assert torch.equal(vae.encode(padded), vae.encode(frames))


def test_latent_scale_takes_the_reciprocal_in_the_working_dtype():
    vae = WanVAE(VAEConfig.tiny(), device="meta")
    mean, inv_std = vae.latent_scale(torch.zeros(1, dtype=torch.bfloat16))
    want = 1.0 / torch.tensor(LATENT_STD).to(torch.bfloat16)              # the reference: 1 / std.to(bf16)
    assert inv_std.dtype == torch.bfloat16 and torch.equal(inv_std.flatten(), want)


def test_full_size_vae_matches_the_checkpoint_manifest():
    vae = WanVAE(VAEConfig(), device="meta")
    sd = vae.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == load_manifest("wan_vae_keys")
    assert len(sd) == 194 and sum(v.numel() for v in sd.values()) == 126_892_531
