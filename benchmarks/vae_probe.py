"""The Wan VAE path's codec stages alone, for its speed plan (full-size VAE, random weights, bf16,
480x832, one steady 12-frame block of the streaming encoder and decoder):

    python3 -m benchmarks.vae_probe [--repeats 5]

Rows: eager with cuDNN's heuristic convolution choice; eager with `cudnn.benchmark` (timed choice
per shape); and the encoder and decoder modules under torch.compile (static shapes) with
`cudnn.benchmark`. One block encodes 12 frames twice (render and source; the source encode can be
prepared ahead) and decodes 3 latents. "block" is the codec's share of a block in the serial worker.
"""
from __future__ import annotations

import argparse
import time

import torch

from benchmarks.kernel_bench import host_ms
from model.vae import VAEConfig, WanVAE, WanVAEStream

H, W = 480, 832


def measure(vae: WanVAE, repeats: int, hw: tuple[int, int] = (H, W)) -> dict[str, float]:
    """Encode and decode of a steady block, after a first block and one steady block."""
    device = next(vae.parameters()).device
    frames = torch.rand(1, 12, 3, *hw, device=device) * 2 - 1                   # [1, 12, 3, H, W]
    stream = WanVAEStream(vae)
    latents = stream.encode(frames[:, 3:])                                       # first block: 9 frames
    stream.decode(latents)
    for _ in range(2):                                                           # steady shapes
        latents = stream.encode(frames)
        stream.decode(latents)
    snapshot = stream.encoder_state()

    def encode():
        stream.set_encoder_state(snapshot)
        stream.encode(frames)
    encode_ms = host_ms(encode, repeats)
    decode_ms = host_ms(lambda: stream.decode(latents), repeats)
    return {"encode 12 frames": encode_ms, "decode 3 latents": decode_ms,
            "block (2 encodes + decode)": 2 * encode_ms + decode_ms}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("vae_probe needs a CUDA GPU")
    vae = WanVAE(VAEConfig(), device="cuda", dtype=torch.bfloat16).eval()
    with torch.no_grad():
        for param in vae.parameters():
            param.normal_(0, 0.02)
    rows = {}
    torch.backends.cudnn.benchmark = False
    rows["eager"] = measure(vae, args.repeats)
    torch.backends.cudnn.benchmark = True
    rows["eager, cudnn.benchmark"] = measure(vae, args.repeats)
    t0 = time.perf_counter()
    vae.encoder = torch.compile(vae.encoder, dynamic=False)
    vae.decoder = torch.compile(vae.decoder, dynamic=False)
    rows["compiled, cudnn.benchmark"] = measure(vae, args.repeats)
    compile_s = time.perf_counter() - t0
    print(f"Wan VAE codec stages on {torch.cuda.get_device_name()} | torch {torch.__version__} | 480x832 bf16")
    for name, r in rows.items():
        print(f"{name:28s} " + " | ".join(f"{k} {v:7.1f} ms" for k, v in r.items()))
    print(f"compile + first blocks: {compile_s:.0f} s | peak memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    return rows


if __name__ == "__main__":
    main()
