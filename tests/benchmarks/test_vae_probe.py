"""vae_probe's measurement on a tiny VAE on the CPU: a steady block is timed after the stream's first."""
import torch

from benchmarks.vae_probe import measure
from model.vae import VAEConfig, WanVAE


def test_measure_times_a_steady_block_of_the_stream():
    vae = WanVAE(VAEConfig.tiny(), dtype=torch.float32).eval()
    rows = measure(vae, repeats=2, hw=(32, 48))
    assert set(rows) == {"encode 12 frames", "decode 3 latents", "block (2 encodes + decode)"}
    assert all(v > 0 for v in rows.values())
    assert rows["block (2 encodes + decode)"] == 2 * rows["encode 12 frames"] + rows["decode 3 latents"]
