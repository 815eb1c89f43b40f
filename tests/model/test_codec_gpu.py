"""Full-size codecs on CUDA at the working resolution (random weights: cost does not depend on the
values): one real-time block through each stream in the reference's dtypes, and the tiny parity
fixtures on the GPU in float32. Run with `python -m pytest -m gpu -s tests/model/test_codec_gpu.py`."""
import time

import pytest
import torch
from safetensors.torch import load_file

from model.latent_codec import TAECodec, VAECodec
from model.tae import TAEHV
from model.vae import VAEConfig, WanVAE, WanVAEStream

pytestmark = pytest.mark.gpu


def timed_ms(fn, repeat=5):
    fn()                                                                  # warm-up (cuDNN autotune)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    torch.cuda.synchronize()
    return out, (time.perf_counter() - start) / repeat * 1e3


@pytest.mark.parametrize("name", ["vae", "tae"])
def test_one_block_at_480x832(name):
    torch.manual_seed(0)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    codec = (VAECodec(WanVAE(device="cuda", dtype=torch.bfloat16).eval()) if name == "vae" else
             TAECodec(TAEHV(device="cuda", dtype=torch.float16).eval()))
    frames = torch.rand(1, 12, 3, 480, 832, device="cuda") * 2 - 1
    n_first, n_next = codec.input_frames(3, True), codec.input_frames(3, False)
    stream = codec.stream()
    first = stream.encode(frames[:, :n_first])
    latents, enc_ms = timed_ms(lambda: stream.encode(frames[:, :n_next]))   # steady-state blocks
    assert first.shape == latents.shape == (1, 3, 16, 60, 104) and latents.dtype == torch.bfloat16
    stream.decode(first)
    video, dec_ms = timed_ms(lambda: stream.decode(latents))
    assert video.shape == (1, 12, 3, 480, 832) and video.dtype == torch.float32
    assert torch.isfinite(video).all() and 0 <= video.min() and video.max() <= 1
    print(f"\n{name}: encode {n_next} frames {enc_ms:.1f} ms, decode 3 latents {dec_ms:.1f} ms, "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


def test_parity_fixtures_hold_on_cuda_in_float32(parity_dir):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    vae_t = load_file(parity_dir / "vae_tiny.safetensors", device="cuda")
    vae = WanVAE(VAEConfig.tiny(), device="cuda")
    vae.load_state_dict({k: v.float() for k, v in vae_t.items() if not k.startswith("io.")})
    raw = WanVAEStream(vae.eval()).decode_raw(vae_t["io.decode_latent_in"])
    assert (raw - vae_t["io.decode_video_raw"]).abs().max() < 2e-5
    assert (vae.encode(vae_t["io.video"].transpose(1, 2)) - vae_t["io.encode_latent"]).abs().max() < 2e-5
    tae_t = load_file(parity_dir / "taehv.safetensors", device="cuda")
    tae = TAEHV(device="cuda")
    tae.load_state_dict({k: v.float() for k, v in tae_t.items() if not k.startswith("io.")})
    with torch.no_grad():
        assert (tae.eval().decode(tae_t["io.decode_latent_in"]) - tae_t["io.decode_video"]).abs().max() < 3e-5
        assert (tae.encode(tae_t["io.video"]) - tae_t["io.encode_latent"]).abs().max() < 3e-5
