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
    """3x3 min or max over [B, C, H, W] (the window clipped at the edges), as two 3-tap passes."""
    f = torch.minimum if op == "min" else torch.maximum
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")                                    # [B, C, H + 2, W + 2]
    rows = f(f(p[..., :-2], p[..., 1:-1]), p[..., 2:])                              # [B, C, H + 2, W]
    return f(f(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])            # [B, C, H, W]


def neighbourhoods(colour: Tensor, depth: Tensor) -> Tensor:
    """What a frame j offers the test at each pixel: its 3x3 depth range and colour range.
    colour [U, 3, H, W] in [0, 1], depth [U, H, W] -> [U, 8, H, W]: depth min, depth max, colour min (3),
    colour max (3)."""
    d = depth.unsqueeze(1)                                                          # [U, 1, H, W]
    return torch.cat([_pool3(d, "min"), _pool3(d, "max"), _pool3(colour, "min"), _pool3(colour, "max")], 1)  # [U, 8, H, W]


def pixel_to_pixel(K_i: Tensor, c2w_i: Tensor, K_j: Tensor, c2w_j: Tensor) -> Tensor:
    """The map from (x d, y d, d, 1) of a pixel of camera i with depth d to (u z, v z, z) in camera j.
    K [..., 3, 3], c2w [..., 4, 4] -> float32 [..., 3, 4] (composed in float64)."""
    f64 = torch.float64
    from_i = torch.zeros(*K_i.shape[:-2], 4, 4, dtype=f64, device=K_i.device)     # [..., 4, 4]
    from_i[..., :3, :3] = torch.linalg.inv(K_i.to(f64))
    from_i[..., 3, 3] = 1.0
    to_j = K_j.to(f64) @ torch.linalg.inv(c2w_j.to(f64))[..., :3, :]               # [..., 3, 4]
    return (to_j @ c2w_i.to(f64) @ from_i).to(torch.float32)


def pair_evidence(colour_i: Tensor, depth_i: Tensor, A: Tensor, near_j: Tensor, j_slot: Tensor,
                  cfg: FusionConfig) -> tuple[Tensor, Tensor]:
    """Do frames j confirm the pixels of frames i? B frames i, each against O frames j:
    colour_i [B, 3, H, W] in [0, 1], depth_i [B, H, W], A [B, O, 3, 4] (`pixel_to_pixel` from i to
    each j), near_j [U, 8, H, W] (`neighbourhoods` of the frames j), j_slot [B, O]: which of them.
    -> inconsistent, evidence: bool [B, O, H, W] (inconsistent implies evidence)."""
    B, _, H, W = colour_i.shape
    O, dev = A.shape[1], colour_i.device         # noqa: E741 (O: the frames j of each i, as in the shapes)
    ys, xs = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32),
                            torch.arange(W, device=dev, dtype=torch.float32), indexing="ij")   # [H, W] each
    d = depth_i.reshape(B, 1, H * W)                                                # [B, 1, HW]
    x, y = xs.reshape(1, 1, H * W), ys.reshape(1, 1, H * W)                          # [1, 1, HW] each
    q = [d * (A[..., c, 0:1] * x + A[..., c, 1:2] * y + A[..., c, 2:3]) + A[..., c, 3:4] for c in range(3)]
    z = q[2]                                                                        # [B, O, HW]
    u, v = q[0] / z, q[1] / z
    inside = (z > 0) & (u > -0.5) & (u < W - 0.5) & (v > -0.5) & (v < H - 0.5)     # [B, O, HW]
    px = torch.round(u).clamp(0, W - 1).long() + torch.round(v).clamp(0, H - 1).long() * W
    cells = near_j.permute(0, 2, 3, 1).reshape(-1, 8)                               # [U HW, 8]
    seen = cells.index_select(0, (px + j_slot.unsqueeze(-1) * (H * W)).reshape(-1)).reshape(B, O, H * W, 8)  # [B, O, HW, 8]
    tol = cfg.depth_tolerance
    moved = z < seen[..., 0] * (1 - tol)           # j sees through where the point should be
    occluded = z > seen[..., 1] * (1 + tol)
    evidence = inside & ~occluded
    ci = colour_i.reshape(B, 1, 3, H * W).transpose(2, 3)                           # [B, 1, HW, 3]
    recoloured = ((ci < seen[..., 2:5] - cfg.colour_tolerance) | (ci > seen[..., 5:8] + cfg.colour_tolerance)).any(-1)
    inconsistent = evidence & (moved | recoloured)
    return inconsistent.reshape(B, O, H, W), evidence.reshape(B, O, H, W)            # [B, O, H, W] each


def _neighbour_counts(x: Tensor) -> Tensor:
    """True pixels in each pixel's 3 x 3 window, zero outside: bool [B, H, W] -> uint8 [B, H, W]."""
    H, W = x.shape[1:]
    p = F.pad(x.to(torch.uint8), (1, 1, 1, 1))                                      # [B, H + 2, W + 2]
    rows = p[:, :H] + p[:, 1:H + 1] + p[:, 2:]                                      # [B, H, W + 2]
    return rows[:, :, :W] + rows[:, :, 1:W + 1] + rows[:, :, 2:]                    # [B, H, W]


def _any_within(x: Tensor, r: int, dim: int) -> Tensor:
    """Whether any pixel within r along `dim` (1 or 2) is True: bool [B, H, W] -> bool [B, H, W].
    Windows double in length each step, so the cost grows with log r."""
    n = x.shape[dim]
    pad = (0, 0, r, r) if dim == 1 else (r, r)
    a = F.pad(x.to(torch.uint8), pad).bool()                                         # [.., n + 2r, ..]
    span = 1                                                                        # a[i]: any of p[i : i + span]
    while 2 * span <= 2 * r + 1:
        a = a.narrow(dim, 0, a.shape[dim] - span) | a.narrow(dim, span, a.shape[dim] - span)
        span *= 2
    rest = 2 * r + 1 - span                                                         # two windows cover 2r + 1
    return a.narrow(dim, 0, n) | a.narrow(dim, rest, n) if rest else a.narrow(dim, 0, n)


def _clean(dynamic: Tensor, dilate_px: int) -> Tensor:
    """Drop isolated specks (a dynamic pixel needs 2 dynamic 8-neighbours; at the border, the same
    share of the neighbours it has), then dilate. dynamic bool [B, H, W] -> bool [B, H, W]."""
    d = dynamic.to(torch.uint8)                                                     # [B, H, W]
    around = _neighbour_counts(dynamic)                                             # itself included
    cells = _neighbour_counts(torch.ones_like(dynamic[:1]))                         # [1, H, W] 9 inside, 4 or 6 at the border
    kept = dynamic & (9 * around >= (2 + d) * cells)                               # 2 of 8 neighbours, scaled at the border
    if dilate_px > 0:
        return _any_within(_any_within(kept, dilate_px, 1), dilate_px, 2)
    return kept


def raw_dynamic(frames_u8: Tensor, depth: Tensor, K: Tensor, c2w: Tensor, indices: Tensor,
                cfg: FusionConfig = FusionConfig()) -> Tensor:
    """The dynamic test at every `analysis_stride`-th pixel, before cleaning (see dynamic_masks for
    the arguments). Each frame involved is read and pooled once. -> bool [B, ceil(H / s), ceil(W / s)]"""
    N = frames_u8.shape[0]
    s, dev, f32 = cfg.analysis_stride, frames_u8.device, torch.float32
    idx = indices.to(dev).long()                                                    # [B]
    j = idx[:, None] + torch.tensor(cfg.neighbour_offsets, device=dev)              # [B, O]
    real = ((j >= 0) & (j < N))[..., None, None]                                    # [B, O, 1, 1]
    used, slot = torch.unique(j.clamp(0, N - 1), return_inverse=True)              # [U], [B, O]
    Ks = K.to(device=dev, dtype=f32).expand(N, 3, 3) * torch.tensor(
        [[1 / s], [1 / s], [1.0]], device=dev)                                     # [N, 3, 3] at stride s
    c2w = c2w.to(device=dev, dtype=f32)
    def colour(f: Tensor) -> Tensor:                                                # [T, 3, h, w] in [0, 1]
        return frames_u8[f][:, ::s, ::s].permute(0, 3, 1, 2).to(f32) / 255.0       # [T, 3, h, w]
    def strided(f: Tensor) -> Tensor:                                               # [T, h, w]
        return depth[f.to(depth.device)][:, ::s, ::s].to(device=dev, dtype=f32)
    near = neighbourhoods(colour(used), strided(used))                              # [U, 8, h, w]
    A = pixel_to_pixel(Ks[idx, None], c2w[idx, None], Ks[used][slot], c2w[used][slot])   # [B, O, 3, 4]
    bad, seen = pair_evidence(colour(idx), strided(idx), A, near, slot, cfg)         # [B, O, h, w] each
    bad, seen = (bad & real).sum(1), (seen & real).sum(1)                           # [B, h, w]
    return (bad > 0) & (bad >= cfg.dynamic_vote * seen)


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
