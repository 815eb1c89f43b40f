"""One interface over the two autoencoders: the Wan2.1 VAE (reference parity) and TAEHV taew2_1
(real time). Chosen by `model.use_tae`.

    codec = load_codec(model_cfg, device="cuda")
    latents = codec.encode(frames)        # frames [B, T, 3, H, W] in [-1, 1] -> [B, F, 16, H/8, W/8]
    video = codec.decode(latents)         # -> [B, T', 3, H, W] float32 in [0, 1]

Latents are in the DiT's normalised latent space, in `latent_dtype` (bf16 for the DiT). The pixel
conventions of each network (VAE [-1, 1] in and out, TAE [0, 1] in and out) and its own dtype (VAE
bf16, TAE fp16, as in the reference) stay inside. The temporal grouping differs: the VAE encodes
1 + 4k frames into 1 + k latents (frame 0 alone), the TAE 4k frames into k latents.
`codec.stream()` carries the encoder and decoder state from block to block for the real-time loop.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from model import checkpoint
from model.config import ModelConfig
from model.tae import TAEHV, TAEConfig, TAEStream, run_layers
from model.vae import VAEConfig, WanVAE, WanVAEStream


class CodecStream:
    """Block-by-block encode and decode with carried state (see WanVAEStream, TAEStream)."""

    def __init__(self, codec: "LatentCodec"):
        self.codec, self.inner = codec, codec.new_stream()

    def reset(self) -> None:
        self.inner.reset()

    def encoder_state(self) -> dict:
        """Snapshot of the encoder's carried state (model/source_cache.py restores it on a hit)."""
        return self.inner.encoder_state()

    def set_encoder_state(self, state: dict) -> None:
        self.inner.set_encoder_state(state)

    def encode(self, frames: Tensor) -> Tensor:
        """frames [B, T, 3, H, W] in [-1, 1]; T = codec.input_frames(F, first_block)."""
        return self.inner.encode(self.codec.to_input(frames)).to(self.codec.latent_dtype)

    def decode(self, latents: Tensor) -> Tensor:
        """-> [B, T, 3, H, W] float32 in [0, 1]; T = 4F, or 4F - 3 for the stream's first block."""
        return self.codec.to_output(self.inner.decode(latents))


class LatentCodec:
    name: str
    new_stream: Callable[[], WanVAEStream | TAEStream]

    def __init__(self, net: WanVAE | TAEHV, latent_dtype: torch.dtype = torch.bfloat16):
        self.net, self.latent_dtype = net, latent_dtype

    def encode(self, frames: Tensor) -> Tensor:
        """frames [B, T, 3, H, W] in [-1, 1] -> latents [B, F, 16, h, w] in latent_dtype."""
        return self.net.encode(self.to_input(frames)).to(self.latent_dtype)

    def decode(self, latents: Tensor) -> Tensor:
        """latents [B, F, 16, h, w] -> frames [B, 4F - 3, 3, H, W] float32 in [0, 1]."""
        return self.to_output(self.net.decode(latents))

    def stream(self) -> CodecStream:
        return CodecStream(self)


class VAECodec(LatentCodec):
    name = "wan_vae"

    def __init__(self, net: WanVAE, latent_dtype: torch.dtype = torch.bfloat16):
        super().__init__(net, latent_dtype)
        self.new_stream = lambda: WanVAEStream(net)

    def to_input(self, frames: Tensor) -> Tensor:
        return frames

    def to_output(self, pixels: Tensor) -> Tensor:
        """[-1, 1] -> [0, 1] as the reference's test script does after decode_to_pixel."""
        return (pixels.float() * 0.5 + 0.5).clamp(0, 1)

    @staticmethod
    def input_frames(n_latents: int, first_block: bool) -> int:
        return 4 * n_latents - 3 if first_block else 4 * n_latents


class TAECodec(LatentCodec):
    name = "taehv"

    def __init__(self, net: TAEHV, latent_dtype: torch.dtype = torch.bfloat16):
        super().__init__(net, latent_dtype)
        self._run = run_layers
        self.new_stream = lambda: TAEStream(net, self._run)

    def compile_streams(self, packages=None) -> None:
        """Streams made from now on run the encoder and decoder through torch.compile (static shapes:
        one graph each), or from their ahead-of-time packages in `packages` (a
        model.package_store.PackageStore) where those exist."""
        self._run = torch.compile(run_layers, dynamic=False)
        if packages is not None:
            from model.tae_packages import TAEPackages
            self._run = TAEPackages(self.net, packages, fallback=self._run)

    def to_input(self, frames: Tensor) -> Tensor:
        """[-1, 1] -> [0, 1] as inference_causal_test.py does before the TAE encoder."""
        return (frames * 0.5 + 0.5).clamp(0, 1)

    def to_output(self, pixels: Tensor) -> Tensor:
        return pixels.float()

    @staticmethod
    def input_frames(n_latents: int, first_block: bool) -> int:
        return 4 * n_latents


def load_codec(cfg: ModelConfig, *, device, latent_dtype: torch.dtype = torch.bfloat16,
               tae_cfg: TAEConfig = TAEConfig()) -> LatentCodec:
    """The codec `cfg.use_tae` selects, loaded strictly from cfg.checkpoint_dir (TAE in fp16,
    VAE in bf16, the reference's dtypes; float32 on CPU, where half-precision convs are slow). The
    VAE's width is the file's own (96 for Wan2.1_VAE.pth)."""
    root = Path(cfg.checkpoint_dir)
    on_cpu = torch.device(device).type == "cpu"
    if cfg.use_tae:
        tae = TAEHV(tae_cfg, device="meta", dtype=torch.float32 if on_cpu else torch.float16)
        checkpoint.load_tae(tae, root / checkpoint.TAE_FILE, device=device)
        return TAECodec(tae.eval(), latent_dtype)
    vae_file = checkpoint.TensorFile(root / checkpoint.VAE_FILE, checkpoint.GET_WAN)
    vae = WanVAE(VAEConfig(**checkpoint.wan_vae_size(vae_file)), device="meta",
                 dtype=torch.float32 if on_cpu else torch.bfloat16)
    checkpoint.load_vae(vae, vae_file.path, device=device)
    return VAECodec(vae.eval(), latent_dtype)
