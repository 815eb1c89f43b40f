"""The reference's `ply` render backend (pipeline-spec 7.3, `render_batch` in
`scripts/render_point_cloud.py`): world points splatted as squares with a hard z-buffer at 2x
supersampling, then downsampled.

1. Render at 2W x 2H with K rows 0 and 1 doubled. Point size 2 -> 2*2 = 4 samples, bumped to the
   odd 5: each point becomes a 5x5 square of samples (offsets -2..+2).
2. p_cam = c2w^-1 p; keep z > 0.1 (near plane); u = fx x / z + cx, v = fy y / z + cy, plus the
   offsets, rounded half to even; samples outside the image are dropped.
3. Hard z-buffer: per pixel zmin; a sample survives if z <= zmin + 1e-4 and writes its colour.
   Ties inside that band go to the last sample in point order (the reference's CPU write order;
   on GPU the reference is nondeterministic there).
4. Background 0, mask 255 where written. Colour -> uint8 by x255 and truncation, then a 2x2 box
   mean rounded half up, (sum + 2) // 4 (OpenCV INTER_AREA at exactly 2x), so edges blend with
   black; the mask takes the top-left sample of each 2x2 block (INTER_NEAREST).
"""
from __future__ import annotations

import torch
from torch import Tensor

SUPERSAMPLE = 2            # fixed: the area downsample below is exact only for 2x
NEAR_PLANE = 0.1           # points with camera z <= this are dropped
DEPTH_EPSILON = 1e-4       # z-buffer tie band


def splat_points_hi(points: Tensor, colors: Tensor, c2w: Tensor, K: Tensor, width: int, height: int, *,
                    point_size: int = 2) -> tuple[Tensor, Tensor] | None:
    """The supersampled canvases before downsampling, or None when no point is in front of the
    near plane (the reference then returns black without rasterising).

    points [P, 3] float32 world, colors [P, 3] float32 in [0, 1] RGB, c2w [4, 4], K [3, 3] at the
    output resolution -> (canvas [2H, 2W, 3] uint8 RGB, mask [2H, 2W] uint8 255 / 0)."""
    Hh, Wh = height * SUPERSAMPLE, width * SUPERSAMPLE
    dev, f32 = points.device, torch.float32
    K_hi = K.to(f32).clone()
    K_hi[:2] *= SUPERSAMPLE
    size = point_size * SUPERSAMPLE
    radius = (size + 1 if size % 2 == 0 else size) // 2
    w2c = torch.linalg.inv(c2w.to(f32))
    cam = (torch.cat([points.to(f32), torch.ones(len(points), 1, device=dev)], 1) @ w2c.T)[:, :3]  # [P, 3]
    keep = cam[:, 2] > NEAR_PLANE
    if not bool(keep.any()):
        return None
    cam, rgb = cam[keep], colors.to(f32)[keep]
    z = cam[:, 2]
    u = (K_hi[0, 0] * cam[:, 0] / z) + K_hi[0, 2]                                 # [P']
    v = (K_hi[1, 1] * cam[:, 1] / z) + K_hi[1, 2]                                 # [P']
    offsets = torch.arange(-radius, radius + 1, device=dev)                             # [2r + 1]
    dy, dx = (o.reshape(1, -1) for o in torch.meshgrid(offsets, offsets, indexing="ij"))  # [1, S] each
    us = torch.round(u[:, None] + dx).long().reshape(-1)                          # [P' * S], half to even
    vs = torch.round(v[:, None] + dy).long().reshape(-1)                                # [P' * S]
    zs = z[:, None].expand(-1, dx.shape[1]).reshape(-1)                                 # [P' * S]
    inside = (us >= 0) & (us < Wh) & (vs >= 0) & (vs < Hh)
    pix, zs = (vs * Wh + us)[inside], zs[inside]
    src = torch.arange(len(z), device=dev).repeat_interleave(dx.shape[1])[inside]  # [samples inside]: point of each sample
    last = _zbuffer(pix, zs, Hh * Wh)
    written = last >= 0
    canvas = torch.zeros(Hh * Wh, 3, device=dev, dtype=f32)                             # [2H * 2W, 3]
    canvas[written] = rgb[src[last[written]]]
    canvas_u8 = (canvas * 255).to(torch.uint8).reshape(Hh, Wh, 3)                  # [2H, 2W, 3]: truncation, as astype
    mask = (written.to(torch.uint8) * 255).reshape(Hh, Wh)                              # [2H, 2W]
    return canvas_u8, mask


def _zbuffer(pix: Tensor, zs: Tensor, n_pixels: int) -> Tensor:
    """Hard z-buffer over samples at flat pixels pix [S] with depths zs [S] -> [n_pixels] index of
    the sample that writes each pixel, -1 where none does. Survivors are within 1e-4 of the pixel's
    zmin; among them the last in sample order wins (deterministic "last write")."""
    zmin = torch.full((n_pixels,), float("inf"), device=zs.device).scatter_reduce(0, pix, zs, reduce="amin")  # [n_pixels]
    win = zs <= zmin[pix] + DEPTH_EPSILON
    order = torch.arange(len(pix), device=zs.device)                                    # [S]
    return torch.full((n_pixels,), -1, device=zs.device, dtype=torch.long).scatter_reduce(
        0, pix[win], order[win], reduce="amax")                                         # [n_pixels]


def downsample_2x(canvas_u8: Tensor, mask_hi: Tensor) -> tuple[Tensor, Tensor]:
    """[2H, 2W, 3] uint8, [2H, 2W] uint8 -> [H, W, 3] (2x2 mean, (sum + 2) // 4), [H, W] (top-left)."""
    Hh, Wh = mask_hi.shape
    blocks = canvas_u8.to(torch.int32).reshape(Hh // 2, 2, Wh // 2, 2, 3).sum(dim=(1, 3))  # [H, W, 3]
    return ((blocks + 2) // 4).to(torch.uint8), mask_hi[0::2, 0::2].contiguous()


def render_points(points: Tensor, colors: Tensor, c2w: Tensor, K: Tensor, width: int, height: int, *,
                  point_size: int = 2) -> tuple[Tensor, Tensor]:
    """One target view of a point cloud -> (rgb [H, W, 3] uint8 RGB, mask [H, W] uint8 255 covered)."""
    hi = splat_points_hi(points, colors, c2w, K, width, height, point_size=point_size)
    if hi is None:
        return (torch.zeros(height, width, 3, dtype=torch.uint8, device=points.device),
                torch.zeros(height, width, dtype=torch.uint8, device=points.device))    # [H, W, 3], [H, W]
    return downsample_2x(*hi)
