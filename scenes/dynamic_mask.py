"""Static/dynamic segmentation of a video from the video itself: its frames, depth and poses.

Each frame i is compared with neighbouring frames j = i + o (o in `neighbour_offsets`): every pixel
of i is unprojected with its depth, moved into camera j and looked up there. Against j's 3x3
neighbourhood around the landing pixel (so edges and sub-pixel texture do not count):
- the point lies clearly in front of everything j sees there: j looks through where the point was,
  so it moved away (a free-space violation) -> inconsistent;
- it lies clearly behind: j cannot see it (occluded) -> no evidence;
- otherwise j sees the same surface: its colour must lie within the neighbourhood's colour range
  widened by `colour_tolerance`, else -> inconsistent.
A pixel is dynamic when at least `dynamic_vote` of the neighbours with evidence disagree; the mask
is cleaned of single-pixel specks and dilated by `dilate_px`. The test runs on every
`analysis_stride`-th pixel and the mask is upsampled (nearest).

Conventions: OpenCV cameras, c2w [N, 4, 4], K [N, 3, 3] pixels, pixel centres at integers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from scenes.config import FusionConfig


def unproject(depth: Tensor, K: Tensor, c2w: Tensor) -> Tensor:
    """Pixels to world points. depth [B, H, W] camera z, K [B, 3, 3], c2w [B, 4, 4] -> [B, H, W, 3]."""
    B, H, W = depth.shape
    dev, f32 = depth.device, torch.float32
    ys, xs = torch.meshgrid(torch.arange(H, device=dev, dtype=f32), torch.arange(W, device=dev, dtype=f32),
                            indexing="ij")                                              # [H, W] each
    pix = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, H * W, 3)   # [1, HW, 3]
    rays = pix @ torch.linalg.inv(K.to(f32)).transpose(1, 2)                        # [B, HW, 3]
    cam = rays * depth.to(f32).reshape(B, H * W, 1)                                 # [B, HW, 3]
    c2w = c2w.to(f32)
    world = cam @ c2w[:, :3, :3].transpose(1, 2) + c2w[:, None, :3, 3]              # [B, HW, 3]
    return world.reshape(B, H, W, 3)                                                    # [B, H, W, 3]


def project_points(points: Tensor, K: Tensor, w2c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """World points [B, M, 3] into cameras w2c [B, 4, 4], K [B, 3, 3] -> u, v, z each [B, M]."""
    cam = points @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]            # [B, M, 3]
    z = cam[..., 2]
    q = cam @ K.transpose(1, 2)                                                     # [B, M, 3]
    return q[..., 0] / z, q[..., 1] / z, z


def _pool3(x: Tensor, op: str) -> Tensor:
    """3x3 min or max over [B, C, H, W] (edges replicate)."""
    if op == "min":
        return -F.max_pool2d(-x, 3, stride=1, padding=1)
    return F.max_pool2d(x, 3, stride=1, padding=1)


def _lookup(image: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Nearest-pixel lookup of image [B, C, H, W] at (u, v) [B, M] (clamped) -> [B, M, C]."""
    B, C, H, W = image.shape
    x = torch.round(u).clamp(0, W - 1).long()
    y = torch.round(v).clamp(0, H - 1).long()
    flat = (y * W + x).unsqueeze(1).expand(B, C, -1)                                # [B, C, M]
    return image.reshape(B, C, H * W).gather(2, flat).transpose(1, 2)              # [B, M, C]


def pair_evidence(colour: Tensor, depth: Tensor, K: Tensor, c2w: Tensor, i: Tensor, j: Tensor,
                  cfg: FusionConfig) -> tuple[Tensor, Tensor]:
    """Does frame j confirm frame i's pixels? colour [N, 3, H, W] in [0, 1], depth [N, H, W],
    K [N, 3, 3], c2w [N, 4, 4]; i, j [B] frame indices (pairs).
    -> inconsistent, evidence: bool [B, H, W] (inconsistent implies evidence)."""
    B, (_, _, H, W) = i.shape[0], colour.shape
    pts = unproject(depth[i], K[i], c2w[i]).reshape(B, H * W, 3)                    # [B, HW, 3]
    u, v, z = project_points(pts, K[j].to(torch.float32), torch.linalg.inv(c2w[j].to(torch.float32)))
    inside = (z > 0) & (u > -0.5) & (u < W - 0.5) & (v > -0.5) & (v < H - 0.5)     # [B, HW]
    dj = depth[j].unsqueeze(1)                                                      # [B, 1, H, W]
    near = _lookup(_pool3(dj, "min"), u, v)[..., 0]                                 # [B, HW]
    far = _lookup(_pool3(dj, "max"), u, v)[..., 0]                                  # [B, HW]
    tol = cfg.depth_tolerance
    moved = z < near * (1 - tol)                   # j sees through where the point should be
    occluded = z > far * (1 + tol)
    evidence = inside & ~occluded
    lo = _lookup(_pool3(colour[j], "min"), u, v)                                    # [B, HW, 3]
    hi = _lookup(_pool3(colour[j], "max"), u, v)                                    # [B, HW, 3]
    ci = colour[i].reshape(B, 3, H * W).transpose(1, 2)                             # [B, HW, 3]
    recoloured = ((ci < lo - cfg.colour_tolerance) | (ci > hi + cfg.colour_tolerance)).any(-1)
    inconsistent = evidence & (moved | recoloured)
    return inconsistent.reshape(B, H, W), evidence.reshape(B, H, W)                     # [B, H, W] each


def _clean(dynamic: Tensor, dilate_px: int) -> Tensor:
    """Drop isolated specks (a dynamic pixel needs 2 dynamic 8-neighbours), then dilate.
    dynamic bool [B, H, W] -> bool [B, H, W]."""
    d = dynamic.unsqueeze(1).to(torch.float32)                                      # [B, 1, H, W]
    neighbours = F.avg_pool2d(d, 3, stride=1, padding=1, count_include_pad=False) * 9 - d
    d = d * (neighbours >= 2)
    if dilate_px > 0:
        d = F.max_pool2d(d, 2 * dilate_px + 1, stride=1, padding=dilate_px)
    return d[:, 0] > 0


def raw_dynamic(frames_u8: Tensor, depth: Tensor, K: Tensor, c2w: Tensor, indices: Tensor,
                cfg: FusionConfig = FusionConfig()) -> Tensor:
    """The dynamic test at every `analysis_stride`-th pixel, before cleaning (see dynamic_masks for
    the arguments). -> bool [B, ceil(H / s), ceil(W / s)]"""
    N = frames_u8.shape[0]
    s, dev = cfg.analysis_stride, frames_u8.device
    colour = frames_u8[:, ::s, ::s].permute(0, 3, 1, 2).to(torch.float32) / 255.0   # [N, 3, h, w]
    d = depth[:, ::s, ::s].to(device=dev, dtype=torch.float32)                      # [N, h, w]
    Ks = K.to(device=dev, dtype=torch.float32).expand(N, 3, 3) * torch.tensor(
        [[1 / s], [1 / s], [1.0]], device=dev)                                     # [N, 3, 3] at stride s
    c2w = c2w.to(device=dev, dtype=torch.float32)
    offsets = torch.tensor(cfg.neighbour_offsets, device=dev)                       # [O]
    idx = indices.to(dev).long()
    i = idx.repeat_interleave(len(offsets))                                         # [B*O]
    j = i + offsets.repeat(len(idx))                                                # [B*O]
    real = (j >= 0) & (j < N)
    bad, seen = pair_evidence(colour, d, Ks, c2w, i, j.clamp(0, N - 1), cfg)        # [B*O, h, w] each
    bad = (bad & real[:, None, None]).reshape(len(idx), len(offsets), *bad.shape[1:]).sum(1)  # [B, h, w]
    seen = (seen & real[:, None, None]).reshape(len(idx), len(offsets), *seen.shape[1:]).sum(1)  # [B, h, w]
    return (bad > 0) & (bad >= cfg.dynamic_vote * seen)                             # [B, h, w]


def expand_dynamic(raw: Tensor, H: int, W: int, stride: int, dilate_px: int) -> Tensor:
    """raw_dynamic's bool [B, h, w] -> the cleaned, dilated full-size mask bool [B, H, W]."""
    full = raw.repeat_interleave(stride, 1).repeat_interleave(stride, 2)[:, :H, :W]  # [B, H, W]
    return _clean(full, dilate_px)


def dynamic_masks(frames_u8: Tensor, depth: Tensor, K: Tensor, c2w: Tensor, indices: Tensor,
                  cfg: FusionConfig = FusionConfig()) -> Tensor:
    """Which pixels of the frames `indices` belong to moving things.

    frames_u8 [N, H, W, 3] uint8 (the whole video), depth [N, H, W] camera z, K [N, 3, 3] or [3, 3],
    c2w [N, 4, 4]; indices [B] long. -> bool [B, H, W], True = dynamic. A frame with no neighbour
    that sees any of its pixels is all static. Runs on frames_u8's device."""
    _, H, W, _ = frames_u8.shape
    raw = raw_dynamic(frames_u8, depth, K, c2w, indices, cfg)
    return expand_dynamic(raw, H, W, cfg.analysis_stride, cfg.dilate_px)


def dynamic_debug_image(frames_u8: Tensor, dynamic: Tensor) -> Tensor:
    """The static/dynamic debug view: the frame in dim grey, dynamic pixels tinted red, static
    pixels faintly green. frames_u8 [T, H, W, 3] uint8, dynamic bool [T, H, W] -> uint8 [T, H, W, 3]."""
    grey = frames_u8.to(torch.float32).mean(-1, keepdim=True)                       # [T, H, W, 1]
    base = 0.35 * grey + 40.0
    red = torch.tensor([255.0, 40.0, 40.0], device=frames_u8.device)                    # [3]
    green = torch.tensor([0.0, 30.0, 0.0], device=frames_u8.device)                     # [3]
    out = torch.where(dynamic.unsqueeze(-1), 0.4 * base + 0.6 * red, base + green)  # [T, H, W, 3]
    return out.round().clamp(0, 255).to(torch.uint8)
