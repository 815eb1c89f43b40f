"""LatentCodec: one interface over the Wan VAE and TAEHV with the pixel ranges hidden inside,
block-by-block streams, and loading the codec `use_tae` selects from a checkpoint folder."""
import pytest
import torch

from model import checkpoint as ck
from model.config import ModelConfig
from model.latent_codec import TAECodec, VAECodec, load_codec
from model.tae import TAEHV, TAEConfig
from model.vae import VAEConfig, WanVAE


@pytest.fixture(scope="module")
def frames():
    torch.manual_seed(0)
    return torch.rand(1, 9, 3, 16, 16) * 2 - 1                            # [B, T, 3, H, W] in [-1, 1]


@pytest.fixture(scope="module")
def vae_codec():
    torch.manual_seed(1)
    return VAECodec(WanVAE(VAEConfig.tiny()).eval(), latent_dtype=torch.float32)


@pytest.fixture(scope="module")
def tae_codec():
    torch.manual_seed(2)
    return TAECodec(TAEHV(TAEConfig()).eval(), latent_dtype=torch.float32)


def test_vae_codec_takes_pm1_and_returns_01(vae_codec, frames):
    latents = vae_codec.encode(frames)
    assert latents.shape == (1, 3, 16, 2, 2)
    assert torch.equal(latents, vae_codec.net.encode(frames))
    video = vae_codec.decode(latents)
    assert video.shape == (1, 9, 3, 16, 16) and video.dtype == torch.float32
    assert torch.equal(video, (vae_codec.net.decode(latents) * 0.5 + 0.5).clamp(0, 1))


def test_tae_codec_maps_pm1_to_01_before_encoding(tae_codec, frames):
    latents = tae_codec.encode(frames[:, :8])
    assert latents.shape == (1, 2, 16, 2, 2)
    assert torch.equal(latents, tae_codec.net.encode((frames[:, :8] * 0.5 + 0.5).clamp(0, 1)))
    video = tae_codec.decode(latents)
    assert video.shape == (1, 5, 3, 16, 16) and 0 <= video.min() and video.max() <= 1


@pytest.mark.parametrize("name", ["vae_codec", "tae_codec"])
def test_streams_take_input_frames_per_block_and_equal_one_call(request, frames, name):
    codec = request.getfixturevalue(name)
    first, later = codec.input_frames(2, first_block=True), codec.input_frames(1, first_block=False)
    clip = torch.cat([frames, frames.flip(1)], 1)[:, : first + later]
    stream = codec.stream()
    latents = torch.cat([stream.encode(clip[:, :first]), stream.encode(clip[:, first:])], 1)
    assert latents.shape[1] == 3
    torch.testing.assert_close(latents, codec.encode(clip), rtol=0, atol=1e-5)
    video = torch.cat([stream.decode(latents[:, :2]), stream.decode(latents[:, 2:])], 1)
    torch.testing.assert_close(video, codec.decode(latents), rtol=0, atol=1e-5)
    assert video.shape[1] == 4 * 3 - 3


def test_load_codec_follows_use_tae_and_the_vae_files_width(tmp_path):
    vae_sd = {k: torch.randn(v.shape).half() for k, v in WanVAE(VAEConfig.tiny(), device="meta").state_dict().items()}
    tae_sd = {k: torch.randn(v.shape).half() for k, v in TAEHV(device="meta").state_dict().items()}
    (tmp_path / ck.WAN_DIR).mkdir()
    (tmp_path / "taehv").mkdir()
    torch.save(vae_sd, tmp_path / ck.VAE_FILE)
    torch.save(tae_sd, tmp_path / ck.TAE_FILE)
    vae = load_codec(ModelConfig(checkpoint_dir=str(tmp_path), use_tae=False), device="cpu")
    tae = load_codec(ModelConfig(checkpoint_dir=str(tmp_path), use_tae=True), device="cpu")
    assert isinstance(vae, VAECodec) and torch.equal(vae.net.conv2.weight, vae_sd["conv2.weight"].float())
    assert vae.net.cfg.dim == VAEConfig.tiny().dim
    assert isinstance(tae, TAECodec) and torch.equal(tae.net.decoder[22].bias, tae_sd["decoder.22.bias"].float())
    with pytest.raises(ck.CheckpointError, match="madebyollin/taehv"):
        load_codec(ModelConfig(checkpoint_dir=str(tmp_path / "none"), use_tae=True), device="cpu")


def test_compiled_tae_streams_match_the_plain_ones():
    """compile_streams runs the same encoder and decoder through torch.compile: same numbers, first
    and steady block (the two shapes play compiles)."""
    codec = TAECodec(TAEHV(TAEConfig()).eval(), latent_dtype=torch.float32)
    plain = codec.stream()
    codec.compile_streams()
    compiled = codec.stream()
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        frames = torch.rand(1, 8, 3, 32, 48, generator=g) * 2 - 1
        a, b = plain.encode(frames), compiled.encode(frames)
        assert torch.allclose(a, b, atol=1e-4)
        assert torch.allclose(plain.decode(a), compiled.decode(a), atol=1e-4)
