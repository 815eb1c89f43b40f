"""Render-validity mask -> 4-channel mask latent (the reference's `convert_mask_video`,
utils/render_warper.py; model-stack-spec §6). No learned weights.

Each frame is resized bilinearly to the latent grid (H/8, W/8; half-pixel centres, no antialias),
frame 0 is repeated so it appears 4 times, and consecutive runs of 4 frames become the 4 channels of
one latent frame: latent 0 = [m0, m0, m0, m0], latent i >= 1 = [m(4i-3), ..., m(4i)], the Wan VAE's
temporal grouping. F = floor((T + 3)/4) = 1 + (T - 1)//4.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mask_to_latent(mask: Tensor, first_block: bool = True) -> Tensor:
    """mask: [B, T, H, W] in {-1, +1} (+1 = covered by the render) -> [B, F, 4, H/8, W/8] in [-1, 1],
    in mask's dtype. first_block: repeat frame 0 as the reference does at the start of a video;
    later blocks of a stream (T a multiple of 4) are grouped as they are. Trailing frames that do
    not fill a group of 4 are dropped."""
    B, T, H, W = mask.shape
    small = F.interpolate(mask.reshape(B * T, 1, H, W), size=(H // 8, W // 8), mode="bilinear",
                          align_corners=False).reshape(B, T, H // 8, W // 8)  # [B, T, h, w]
    if first_block:
        small = torch.cat([small[:, :1].expand(-1, 3, -1, -1), small], 1)    # [B, T + 3, h, w]
    usable = small.shape[1] - small.shape[1] % 4
    return small[:, :usable].reshape(B, usable // 4, 4, H // 8, W // 8)      # [B, F, 4, h, w]


def convert_mask_video(mask_video: Tensor) -> Tensor:
    """The reference's signature: mask_video [B, 3, T, H, W] in {-1, +1}, only channel 0 is read
    -> [B, F, 4, H/8, W/8]."""
    return mask_to_latent(mask_video[:, 0])
