"""Wan2.1 causal video VAE (wan/modules/vae.py of the reference, commit 84639bf), written from
model-stack-spec §5 with the upstream state-dict names (`encoder.*`, `conv1`, `conv2`, `decoder.*`).

Boundaries use frames before channels: pixels [B, T, 3, H, W] in [-1, 1], latents [B, F, 16, h, w]
in the DiT's normalised space. Inside, and only here, tensors are Wan's [B, C, T, H, W].
Compression: ×8 in space, ×4 causal in time: F = 1 + (T - 1)//4 latents, T = 1 + 4(F - 1) frames.

Time is processed in chunks (encoder: 1, 4, 4, ... frames; decoder: one latent at a time). Each
causal layer keeps its last input frames in a `Cache` (a dict keyed by the layer), so a stream of
chunks gives exactly what one long call gives. `WanVAEStream` keeps those caches across calls for
the real-time loop: the decoder state is session state, not something to recompute per block.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

CACHE_T = 2  # input frames a causal 3-tap temporal conv carries into the next chunk
LATENT_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
LATENT_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)

Cache = dict  # nn.Module -> Tensor: each causal layer's carried frames for one encode or decode stream


@dataclass(frozen=True)
class VAEConfig:
    dim: int = 96                                             # base width (the parity fixture uses 16)
    z_dim: int = 16                                           # latent channels
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)  # per encoder level; decoder reverses it
    decoder_cache_quirk: bool = True   # reference rule in decoder.upsamples.3 (spec §5.5); False: upstream Wan2.1

    @classmethod
    def tiny(cls, **kw) -> "VAEConfig":
        """The parity fixture's width-16 network (vae_tiny.safetensors)."""
        return cls(dim=16, **kw)


class CausalConv3d(nn.Conv3d):
    """Conv3d padded causally in time (2·pt zero frames in front, none behind), symmetric in space."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        pt, ph, pw = self.padding
        self._pad = (pw, pw, ph, ph, 2 * pt, 0)
        self.padding = (0, 0, 0)

    def forward(self, x: Tensor, history: Tensor | None = None) -> Tensor:
        """x: [B, C, T, H, W]; history: [B, C, ≤2, H, W], input frames just before x. They take the
        place of as many front zero frames (only for layers with temporal padding)."""
        pad = self._pad
        if history is not None and pad[4] > 0:
            x = torch.cat([history, x], 2)                                   # [B, C, n + T, H, W]
            pad = pad[:4] + (pad[4] - history.shape[2], 0)
        return super().forward(F.pad(x, pad))                                           # [B, C', T', H', W']

    def step(self, x: Tensor, cache: Cache) -> Tensor:
        """One chunk of a stream: prepend the carried frames, then carry the last 2 input frames."""
        prev = cache.get(self)
        keep = x[:, :, -CACHE_T:]
        if keep.shape[2] < CACHE_T and prev is not None:
            keep = torch.cat([prev[:, :, -1:], keep], 2)                     # [B, C, 2, H, W]
        cache[self] = keep.clone()                                            # not a view of the whole chunk
        return self(x, prev)


class RMSNorm(nn.Module):
    """L2-normalise over channels, times √C and a learned gain (upstream `RMS_norm`, no bias)."""

    def __init__(self, dim: int, images: bool = True):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(dim, *((1, 1) if images else (1, 1, 1))))  # [dim, 1, 1] or [dim, 1, 1, 1]

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


class ResidualBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim, images=False), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim, images=False), nn.SiLU(), nn.Dropout(0.0), CausalConv3d(out_dim, out_dim, 3, padding=1))
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: Tensor, cache: Cache) -> Tensor:
        h = self.shortcut(x)
        for layer in self.residual:
            x = layer.step(x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H·W positions of each frame (no temporal mixing)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor, cache: Cache | None = None) -> Tensor:
        b, c, t, h, w = x.shape
        y = self.norm(x.transpose(1, 2).reshape(b * t, c, h, w))             # [B*T, C, H, W]
        qkv = self.to_qkv(y).reshape(b * t, 1, c * 3, h * w).permute(0, 1, 3, 2).contiguous()  # [B*T, 1, H*W, 3C]
        q, k, v = qkv.chunk(3, dim=-1)                                        # [B*T, 1, H*W, C] each
        y = F.scaled_dot_product_attention(q, k, v)                           # [B*T, 1, H*W, C]
        y = self.proj(y.squeeze(1).permute(0, 2, 1).reshape(b * t, c, h, w))  # [B*T, C, H, W]
        return x + y.reshape(b, t, c, h, w).transpose(1, 2)                             # [B, C, T, H, W]


class Upsample2x(nn.Upsample):
    """Nearest ×2 computed in float32 (bf16 nearest interpolation was unsupported upstream)."""

    def __init__(self):
        super().__init__(scale_factor=(2.0, 2.0), mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type_as(x)


class Resample(nn.Module):
    """Spatial ×2 up/down per frame; the 3d modes add a causal temporal ×2 (`time_conv`).
    `resample.1` is the Conv2d in every mode."""

    def __init__(self, dim: int, mode: str, cache_quirk: bool = True):
        super().__init__()
        up = mode.startswith("up")
        self.resample = (nn.Sequential(Upsample2x(), nn.Conv2d(dim, dim // 2, 3, padding=1)) if up else
                         nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2)))
        self._time_up = self._time_down = _identity
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
            self._time_up = self._upsample_time
            self._carry_head = _quirk_head if cache_quirk else _upstream_head
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))
            self._time_down = self._downsample_time

    def forward(self, x: Tensor, cache: Cache) -> Tensor:
        x = self._time_up(x, cache)
        b, c, t, h, w = x.shape
        y = self.resample(x.transpose(1, 2).reshape(b * t, c, h, w))         # [B*T, C', H', W']
        x = y.reshape(b, t, *y.shape[1:]).transpose(1, 2)                     # [B, C', T, H', W']
        return self._time_down(x, cache)

    def _upsample_time(self, x: Tensor, cache: Cache) -> Tensor:
        """Each frame becomes two (2C conv outputs, first half first). The first chunk passes
        through unchanged and leaves zeros as history."""
        b, c, t, h, w = x.shape
        history = cache.get(self)
        if history is None:
            cache[self] = x.new_zeros(b, c, CACHE_T, h, w)                              # [B, C, 2, h, w]
            return x
        keep = x[:, :, -CACHE_T:]
        if keep.shape[2] < CACHE_T:
            keep = torch.cat([self._carry_head(history[:, :, -1:], keep), keep], 2)  # [B, C, 2, h, w]
        cache[self] = keep.clone()
        y = self.time_conv(x, history)                                        # [B, 2C, T, h, w]
        return y.reshape(b, 2, c, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)  # [B, C, 2T, h, w]

    def _downsample_time(self, x: Tensor, cache: Cache) -> Tensor:
        """Stride-2 3-tap conv over [previous chunk's last frame, this chunk]; the first chunk
        (one frame) passes through."""
        prev = cache.get(self)
        cache[self] = x[:, :, -1:].clone()
        return x if prev is None else self.time_conv(torch.cat([prev, x], 2))           # [B, C, T/2, h, w]


def _identity(x: Tensor, cache: Cache) -> Tensor:
    return x


def _upstream_head(prev_last: Tensor, current: Tensor) -> Tensor:
    """Upstream Wan2.1: the slot before the current frame holds the previous frame."""
    return prev_last


def _quirk_head(prev_last: Tensor, current: Tensor) -> Tensor:
    """The reference (spec §5.5): the current frame again, except where the previous one is exactly 0."""
    return torch.where(prev_last == 0, 0, current)                                      # [B, C, 1, h, w]


class Encoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        dims = [cfg.dim * m for m in (1, *cfg.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        blocks = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(d_in, d_out))
                d_in = d_out
            if i != len(cfg.dim_mult) - 1:
                blocks.append(Resample(d_out, "downsample3d" if cfg.temporal_downsample[i] else "downsample2d"))
        self.downsamples = nn.Sequential(*blocks)
        self.middle = nn.Sequential(ResidualBlock(d_out, d_out), AttentionBlock(d_out), ResidualBlock(d_out, d_out))
        self.head = nn.Sequential(RMSNorm(d_out, images=False), nn.SiLU(), CausalConv3d(d_out, cfg.z_dim * 2, 3, padding=1))

    def forward(self, x: Tensor, cache: Cache) -> Tensor:
        """x: [B, 3, T, H, W] one chunk -> [B, 2·z_dim, T', H/8, W/8]."""
        x = self.conv1.step(x, cache)
        for layer in (*self.downsamples, *self.middle):
            x = layer(x, cache)
        return self.head[2].step(self.head[1](self.head[0](x)), cache)


class Decoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        dims = [cfg.dim * m for m in (cfg.dim_mult[-1], *reversed(cfg.dim_mult))]
        temporal_upsample = tuple(reversed(cfg.temporal_downsample))
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(ResidualBlock(dims[0], dims[0]), AttentionBlock(dims[0]), ResidualBlock(dims[0], dims[0]))
        blocks = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            d_in = d_in // 2 if i > 0 else d_in                  # the previous upsample halved the channels
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResidualBlock(d_in, d_out))
                d_in = d_out
            if i != len(cfg.dim_mult) - 1:
                mode = "upsample3d" if temporal_upsample[i] else "upsample2d"
                blocks.append(Resample(d_out, mode, cache_quirk=cfg.decoder_cache_quirk))
        self.upsamples = nn.Sequential(*blocks)
        self.head = nn.Sequential(RMSNorm(d_out, images=False), nn.SiLU(), CausalConv3d(d_out, 3, 3, padding=1))

    def forward(self, x: Tensor, cache: Cache) -> Tensor:
        """x: [B, z_dim, 1, h, w] one latent frame -> [B, 3, 1 or 4, 8h, 8w]."""
        x = self.conv1.step(x, cache)
        for layer in (*self.middle, *self.upsamples):
            x = layer(x, cache)
        return self.head[2].step(self.head[1](self.head[0](x)), cache)


class WanVAE(nn.Module):
    """The Wan2.1 VAE (upstream `WanVAE_`). Runs in its parameters' dtype (bf16 in the pipeline)."""

    def __init__(self, cfg: VAEConfig = VAEConfig(), *, device=None, dtype: torch.dtype | None = None):
        super().__init__()
        self.cfg = cfg
        with torch.device(device) if device is not None else nullcontext():
            self.encoder = Encoder3d(cfg)
            self.conv1 = CausalConv3d(cfg.z_dim * 2, cfg.z_dim * 2, 1)
            self.conv2 = CausalConv3d(cfg.z_dim, cfg.z_dim, 1)
            self.decoder = Decoder3d(cfg)
        if dtype is not None:
            self.to(dtype)
        self._scales: dict = {}

    def latent_scale(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, 1/std) as [1, z, 1, 1, 1] in like's device and dtype; the reciprocal is taken in
        that dtype, as the reference does (bf16 in the pipeline)."""
        key = (like.device, like.dtype)
        if key not in self._scales:
            mean = torch.tensor(LATENT_MEAN, dtype=torch.float32).to(like.device, like.dtype)  # [z]
            inv_std = 1.0 / torch.tensor(LATENT_STD, dtype=torch.float32).to(like.device, like.dtype)  # [z]
            self._scales[key] = (mean.view(1, -1, 1, 1, 1), inv_std.view(1, -1, 1, 1, 1))  # [1, z, 1, 1, 1] each
        return self._scales[key]

    def encode_mu(self, video: Tensor, cache: Cache) -> Tensor:
        """video: [B, 3, T, H, W] in [-1, 1] -> raw μ [B, z, F, h, w]. On a fresh cache the chunks are
        1, 4, 4, ... frames (trailing frames beyond 1 + 4k are dropped, as in the reference); on a
        carried cache they are 4, 4, ..."""
        edges = [0, 1] if not cache else [0]
        edges += range(edges[-1] + 4, video.shape[2] + 1, 4)
        out = torch.cat([self.encoder(video[:, :, a:b], cache) for a, b in zip(edges[:-1], edges[1:])], 2)  # [B, C, F, h, w]
        return self.conv1(out)[:, : self.cfg.z_dim]                          # log-variance half unused

    def normalize(self, mu: Tensor) -> Tensor:
        mean, inv_std = self.latent_scale(mu)
        return (mu - mean) * inv_std

    def decode_raw(self, z: Tensor, cache: Cache) -> Tensor:
        """z: normalised [B, z, F, h, w] -> pixels [B, 3, T, H, W], unclamped. One latent frame at a
        time; the first latent of a fresh cache gives 1 frame, every other gives 4."""
        mean, inv_std = self.latent_scale(z)
        x = self.conv2(z / inv_std + mean)                                    # divides by the reciprocal, as the reference
        return torch.cat([self.decoder(x[:, :, i:i + 1], cache) for i in range(x.shape[2])], 2)  # [B, 3, T, H, W]

    def encode(self, frames: Tensor) -> Tensor:
        """frames: [B, T, 3, H, W] in [-1, 1] -> normalised latents [B, 1 + (T-1)//4, z, h, w].
        Frames beyond 1 + 4·((T-1)//4) are dropped, as the reference's encoder does."""
        return WanVAEStream(self).encode(frames[:, : 1 + 4 * ((frames.shape[1] - 1) // 4)])

    def decode(self, latents: Tensor) -> Tensor:
        """latents: normalised [B, F, z, h, w] -> frames [B, 1 + 4(F-1), 3, H, W] clamped to [-1, 1]."""
        return WanVAEStream(self).decode(latents)


class WanVAEStream:
    """One video's encoder and decoder state, carried across calls, for block-by-block real time:

        stream = WanVAEStream(vae)
        for block in blocks:                        # first block 1 + 4k frames, later blocks 4k
            latents = stream.encode(frames)         # [B, F, 16, h, w]
            ...
            pixels = stream.decode(new_latents)     # first call 1 + 4(F-1) frames, later 4F
        stream.reset()                              # after a cut: start a new stream

    The concatenated outputs equal one call over the whole video."""

    def __init__(self, vae: WanVAE):
        self.vae = vae
        self.reset()

    def reset(self) -> None:
        self.encoder_cache: Cache = {}
        self.decoder_cache: Cache = {}

    def encoder_state(self) -> Cache:
        """A snapshot of the encoder cache (empty: the next encode is a stream's first). Every step
        replaces its entry with a fresh clone and never writes into it, so a shallow copy is a full
        snapshot."""
        return dict(self.encoder_cache)

    def set_encoder_state(self, state: Cache) -> None:
        self.encoder_cache = dict(state)

    @torch.no_grad()
    def encode(self, frames: Tensor) -> Tensor:
        """frames: [B, T, 3, H, W] in [-1, 1] -> normalised latents [B, F, z, h, w] (the VAE's dtype).
        T = 1 + 4k on the stream's first call (F = 1 + k), T = 4k after it (F = k)."""
        first = not self.encoder_cache
        T = frames.shape[1]
        if (T - 1 if first else T) % 4 or T == 0:
            raise ValueError(f"VAE stream: got {T} frames; the {'first' if first else 'next'} block needs "
                             f"{'1 + 4k' if first else '4k'} frames")
        p = next(self.vae.parameters())
        video = frames.to(p.device, p.dtype).transpose(1, 2)                 # [B, 3, T, H, W]
        mu = self.vae.encode_mu(video, self.encoder_cache)                   # [B, z, F, h, w]
        return self.vae.normalize(mu).transpose(1, 2)                        # [B, F, z, h, w]

    @torch.no_grad()
    def decode_raw(self, latents: Tensor) -> Tensor:
        """latents: [B, F, z, h, w] -> frames [B, T, 3, H, W] float32, unclamped."""
        p = next(self.vae.parameters())
        z = latents.to(p.device, p.dtype).transpose(1, 2)                    # [B, z, F, h, w]
        return self.vae.decode_raw(z, self.decoder_cache).float().transpose(1, 2)       # [B, T, 3, H, W]

    def decode(self, latents: Tensor) -> Tensor:
        """latents: [B, F, z, h, w] -> frames [B, T, 3, H, W] float32 in [-1, 1]."""
        return self.decode_raw(latents).clamp(-1, 1)
