"""TAEHV tiny video autoencoder, taew2_1 architecture (madebyollin/taehv `taehv.py`, as used by the
reference's `utils/taehv.py`; model-stack-spec §7), with the upstream state-dict names
(`encoder.k`, `decoder.k`, MemBlock `.conv.0/.2/.4`, TPool/TGrow `.conv`).

Frames [B, T, 3, H, W] in [0, 1]; latents [B, F, 16, H/8, W/8], which for taew2_1 already live in
the DiT's normalised Wan latent space (no mean/std anywhere on this path). Latent i summarises
frames 4i..4i+3 plus causal memory; decoding F latents gives 4F frames of which the first 3 are
start-up frames and are trimmed.

Everything is per-frame 2-D work except MemBlocks (each also sees its own input one frame earlier),
TPool (merges s consecutive frames) and TGrow (splits into s frames). So a block of frames runs in
parallel, and carrying each MemBlock's last input frame from block to block (`TAEStream`) gives the
same result as one call over the whole video. Configuration is explicit: nothing is derived from a
checkpoint's file name.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class TAEConfig:
    latent_channels: int = 16
    patch_size: int = 1                                           # pixel (un)shuffle at the ends
    encoder_time_downscale: tuple[bool, bool, bool] = (True, True, False)
    decoder_time_upscale: tuple[bool, bool, bool] = (False, True, True)
    decoder_space_upscale: tuple[bool, bool, bool] = (True, True, True)

    @property
    def t_downscale(self) -> int:
        return 2 ** sum(self.encoder_time_downscale)

    @property
    def t_upscale(self) -> int:
        return 2 ** sum(self.decoder_time_upscale)

    @property
    def frames_to_trim(self) -> int:
        """Start-up frames dropped after decoding (3 for taew2_1)."""
        return self.t_upscale - 1


def conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / 3) * 3


class MemBlock(nn.Module):
    """ReLU(convs(concat[x, past]) + skip(x)); `past` is this block's input one frame earlier."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.conv = nn.Sequential(conv(n_in * 2, n_out), nn.ReLU(inplace=True), conv(n_out, n_out),
                                  nn.ReLU(inplace=True), conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, past: Tensor) -> Tensor:
        return self.act(self.conv(torch.cat([x, past], 1)) + self.skip(x))              # [N, C', H, W]


class TPool(nn.Module):
    """Merge `stride` consecutive frames (concatenated on channels) with a 1×1 conv."""

    def __init__(self, n_f: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n_f * stride, n_f, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        _, C, H, W = x.shape                                                  # [B*T, C, H, W]
        return self.conv(x.reshape(-1, self.stride * C, H, W))               # [B*T/s, C, H, W]


class TGrow(nn.Module):
    """Split each frame into `stride` consecutive frames with a 1×1 conv to C·stride channels."""

    def __init__(self, n_f: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n_f, n_f * stride, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        _, C, H, W = x.shape                                                  # [B*T, C, H, W]
        return self.conv(x).reshape(-1, C, H, W)                              # [B*T*s, C, H, W]


def _stage(n_in: int, n_out: int, up_space: bool, up_time: bool) -> list[nn.Module]:
    return [MemBlock(n_in, n_in), MemBlock(n_in, n_in), MemBlock(n_in, n_in),
            nn.Upsample(scale_factor=2 if up_space else 1), TGrow(n_in, 2 if up_time else 1),
            conv(n_in, n_out, bias=False)]


class TAEHV(nn.Module):
    def __init__(self, cfg: TAEConfig = TAEConfig(), *, device=None, dtype: torch.dtype | None = None):
        super().__init__()
        self.cfg = cfg
        n_px, ds = 3 * cfg.patch_size ** 2, cfg.encoder_time_downscale
        n_f = [256, 128, 64, 64]
        with torch.device(device) if device is not None else nullcontext():
            self.encoder = nn.Sequential(
                conv(n_px, 64), nn.ReLU(inplace=True),
                *[m for i in range(3) for m in (TPool(64, 2 if ds[i] else 1), conv(64, 64, stride=2, bias=False),
                                                MemBlock(64, 64), MemBlock(64, 64), MemBlock(64, 64))],
                conv(64, cfg.latent_channels))
            self.decoder = nn.Sequential(
                Clamp(), conv(cfg.latent_channels, n_f[0]), nn.ReLU(inplace=True),
                *[m for i in range(3) for m in _stage(n_f[i], n_f[i + 1], cfg.decoder_space_upscale[i],
                                                      cfg.decoder_time_upscale[i])],
                nn.ReLU(inplace=True), conv(n_f[3], n_px))
        if dtype is not None:
            self.to(dtype)

    def tgrow_weight_names(self) -> list[str]:
        """State-dict names of the TGrow convs. Published checkpoints may hold more output channels
        than a stride-1 TGrow has; the loader keeps the LAST n (the last time step's channels)."""
        return [f"decoder.{i}.conv.weight" for i, m in enumerate(self.decoder) if isinstance(m, TGrow)]

    def encode(self, frames: Tensor) -> Tensor:
        """frames: [B, T, 3, H, W] in [0, 1] -> latents [B, ceil(T/4), C, H/8, W/8]. The end is
        padded to a multiple of 4 frames by repeating the last frame."""
        pad = -frames.shape[1] % self.cfg.t_downscale
        if pad:
            frames = torch.cat([frames, frames[:, -1:].expand(-1, pad, -1, -1, -1)], 1)  # [B, 4k, 3, H, W]
        return TAEStream(self).encode(frames)

    def decode_raw(self, latents: Tensor) -> Tensor:
        """latents: [B, F, C, h, w] -> all 4F decoder frames [B, 4F, 3, H, W], before clamp and trim."""
        return run_layers(self.decoder, latents, {})

    def decode(self, latents: Tensor) -> Tensor:
        """latents: [B, F, C, h, w] -> frames [B, 4F - 3, 3, H, W] in [0, 1]."""
        return TAEStream(self).decode(latents)

    def postprocess(self, x: Tensor) -> Tensor:
        if self.cfg.patch_size > 1:
            x = F.pixel_shuffle(x, self.cfg.patch_size)                                 # [N, C / p^2, pH, pW]
        return x.clamp(0, 1)


def run_layers(layers: nn.Sequential, x: Tensor, memory: dict[int, Tensor]) -> Tensor:
    """Apply an encoder or decoder to a block of frames, all frames at once. x: [B, T, C, H, W] ->
    [B, T', C', H', W']. memory maps a MemBlock's index to its input's last frame from the previous
    block (absent: zeros, the start of a stream) and is updated for the next block."""
    B = x.shape[0]
    x = x.flatten(0, 1)                                                       # [B*T, C, H, W]
    for i, layer in enumerate(layers):
        if isinstance(layer, MemBlock):
            xt = x.unflatten(0, (B, -1))                                      # [B, T, C, H, W]
            prev = memory.get(i)
            prev = torch.zeros_like(xt[:, :1]) if prev is None else prev                # [B, 1, C, H, W]
            past = torch.cat([prev, xt[:, :-1]], 1).flatten(0, 1)             # [B*T, C, H, W]
            memory[i] = xt[:, -1:].clone(memory_format=torch.contiguous_format)   # strides as a fresh stream's zeros
            x = layer(x, past)
        else:
            x = layer(x)
    return x.unflatten(0, (B, -1))                                                      # [B, T', C', H', W']


def memory_shapes(layers: nn.Sequential, x_shape: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    """The shape of each MemBlock's carried frame when `layers` runs on x [B, T, C, H, W], worked
    out layer by layer without running anything: {layer index: (B, 1, C, H, W)}."""
    B, T, C, H, W = x_shape
    shapes = {}
    for i, layer in enumerate(layers):
        if isinstance(layer, MemBlock):
            shapes[i] = (B, 1, C, H, W)
        elif isinstance(layer, nn.Conv2d):
            (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
            C, H, W = layer.out_channels, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        elif isinstance(layer, TPool):
            T //= layer.stride
        elif isinstance(layer, TGrow):
            T *= layer.stride
        elif isinstance(layer, nn.Upsample):
            H, W = int(H * layer.scale_factor), int(W * layer.scale_factor)
        elif not isinstance(layer, (nn.ReLU, Clamp)):
            raise TypeError(f"memory_shapes: no shape rule for layer {i} ({type(layer).__name__})")
    return shapes


class TAEStream:
    """TAEHV state for one video, carried across calls, for block-by-block real time:

        stream = TAEStream(tae)
        for block in blocks:
            latents = stream.encode(frames)      # frames [B, 4k, 3, H, W] in [0, 1] -> [B, k, C, h, w]
            ...
            pixels = stream.decode(new_latents)  # first call 4F - 3 frames, later 4F, in [0, 1]
        stream.reset()                           # after a cut: start a new stream

    Memory cost: one frame per MemBlock (the parallel work inside a block is O(block length))."""

    def __init__(self, tae: TAEHV, run=run_layers):
        """run: `run_layers` or a compiled version of it (TAECodec.compile_streams)."""
        self.tae, self.run = tae, run
        self.reset()

    def reset(self) -> None:
        self.encoder_memory: dict[int, Tensor] = {}
        self.decoder_memory: dict[int, Tensor] = {}
        self.frames_decoded = 0

    def encoder_state(self) -> dict[int, Tensor]:
        """A snapshot of the encoder memory. encode() replaces entries with fresh tensors and never
        writes into them, so a shallow copy of the dict is a full snapshot."""
        return dict(self.encoder_memory)

    def set_encoder_state(self, state: dict[int, Tensor]) -> None:
        self.encoder_memory = dict(state)

    @staticmethod
    def _started(memory: dict[int, Tensor], layers: nn.Sequential, x: Tensor) -> dict[int, Tensor]:
        """`memory`, or at a stream's start (empty) the zero frames it starts from, filled in place.
        Zeros are what run_layers uses for an absent frame; present, the first block runs the
        same compiled graph as every later one (one graph to compile and load, not two)."""
        if not memory:
            memory.update({i: torch.zeros(shape, dtype=x.dtype, device=x.device)
                           for i, shape in memory_shapes(layers, tuple(x.shape)).items()})
        return memory

    @torch.no_grad()
    def encode(self, frames: Tensor) -> Tensor:
        """frames: [B, T, 3, H, W] in [0, 1], T a multiple of 4 -> latents [B, T/4, C, h, w]."""
        cfg = self.tae.cfg
        if frames.shape[1] % cfg.t_downscale or frames.shape[1] == 0:
            raise ValueError(f"TAE stream: got {frames.shape[1]} frames; blocks need a multiple of {cfg.t_downscale}")
        p = next(self.tae.parameters())
        x = frames.to(p.device, p.dtype)
        if cfg.patch_size > 1:
            x = F.pixel_unshuffle(x.flatten(0, 1), cfg.patch_size).unflatten(0, x.shape[:2])  # [B, T, C * p^2, H/p, W/p]
        return self.run(self.tae.encoder, x, self._started(self.encoder_memory, self.tae.encoder, x))

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """latents: [B, F, C, h, w] -> frames [B, T, 3, H, W] in [0, 1] (the TAE's dtype); the
        stream's first 3 frames are start-up frames and never returned."""
        p = next(self.tae.parameters())
        z = latents.to(p.device, p.dtype)
        x = self.run(self.tae.decoder, z, self._started(self.decoder_memory, self.tae.decoder, z))
        trim = max(0, self.tae.cfg.frames_to_trim - self.frames_decoded)
        self.frames_decoded += x.shape[1]
        x = self.tae.postprocess(x.flatten(0, 1)).unflatten(0, x.shape[:2])   # [B, T, 3, H, W]
        return x[:, trim:]
