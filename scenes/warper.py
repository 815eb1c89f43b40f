"""The reference's default renderer: per-frame depth-image forward splatting (pipeline-spec 7.2,
`DepthWarper` in `scripts/render_point_cloud.py`), batched, in torch, on any device.

Each target frame b uses only source frame b: every source pixel is unprojected with its depth,
moved into the target camera, projected, and splatted bilinearly onto its 4 neighbours of a
canvas padded by one pixel, with a soft z-buffer weight exp(-50 l / l_max), l = log(1 + z).
l_max is the maximum over the whole batch (the reference renders a whole video as one batch);
pass `log_depth_max` to use a video-wide value when rendering in blocks. Float32 throughout,
with the reference's operation order where it changes rounding (see the comments).

Camera convention: OpenCV, w2c 4x4 matrices, K [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], pixel
centres at integer coordinates (no +0.5).
"""
from __future__ import annotations

import torch
from torch import Tensor

DEPTH_SATURATION = 1000.0     # z2 is clamped to [0, 1000] before the log in the depth weight
DEPTH_SHARPNESS = 50.0        # w_depth = exp(50 l / l_max)
LOG_DEPTH_FLOOR = 1e-6        # l_max is floored here (an all-zero-depth batch)


def project(depth: Tensor, src_w2c: Tensor, tgt_w2c: Tensor, K: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Where every source pixel lands in its target camera.

    depth [B, 1, H, W] (camera z), src_w2c, tgt_w2c [B, 4, 4], K [B, 3, 3]
    -> u, v (target pixel coordinates) and z2 (target camera z), each [B, H*W] float32."""
    B, _, H, W = depth.shape
    dev, f32 = depth.device, torch.float32
    rel = torch.bmm(tgt_w2c.to(f32), torch.linalg.inv(src_w2c.to(f32)))           # [B, 4, 4]
    ys, xs = torch.meshgrid(torch.arange(H, device=dev, dtype=f32), torch.arange(W, device=dev, dtype=f32),
                            indexing="ij")                                              # [H, W] each
    pix = torch.stack([xs, ys, torch.ones_like(xs)]).reshape(1, 3, H * W)          # [1, 3, N]
    rays = torch.linalg.inv(K.to(f32)) @ pix                                       # [B, 3, N]
    pts = torch.cat([depth.to(f32).reshape(B, 1, H * W) * rays,
                     torch.ones(B, 1, H * W, device=dev, dtype=f32)], dim=1)       # [B, 4, N]
    q = K.to(f32) @ (rel[:, :3] @ pts)                                             # [B, 3, N]
    return q[:, 0] / q[:, 2], q[:, 1] / q[:, 2], q[:, 2]


def log_depth(z2: Tensor) -> Tensor:
    """The depth weight's l = log(1 + clamp(z2, 0, 1000)); as the reference, not log1p."""
    return torch.log(1 + torch.clamp(z2, min=0, max=DEPTH_SATURATION))


def max_log_depth(depth: Tensor, src_w2c: Tensor, tgt_w2c: Tensor, K: Tensor) -> Tensor:
    """max l over every pixel of every frame given (0-dim tensor, no host sync). Compute it over a
    whole video (in chunks if memory needs) and pass it to forward_warp for each block."""
    return log_depth(project(depth, src_w2c, tgt_w2c, K)[2]).max()


def forward_warp(colour: Tensor, depth: Tensor, src_w2c: Tensor, tgt_w2c: Tensor, K: Tensor, *,
                 log_depth_max: Tensor | float | None = None) -> tuple[Tensor, Tensor]:
    """Render each source frame from its target camera.

    colour  [B, 3, H, W] float32 in [-1, 1]      depth [B, 1, H, W] float32 camera z (> 0)
    src_w2c, tgt_w2c [B, 4, 4]                   K [B, 3, 3] (the same K for source and target)
    log_depth_max: l_max of the depth weight; None = this batch's own maximum (the reference).
    -> render [B, 3, H, W] float32 in [-1, 1], exactly -1 at holes;
       mask [B, 1, H, W] float32, 1 where any splat weight > 0, else 0."""
    B, C, H, W = colour.shape
    assert depth.shape == (B, 1, H, W), f"depth {tuple(depth.shape)} does not match colour {tuple(colour.shape)}"
    u, v, z2 = project(depth, src_w2c, tgt_w2c, K)                                 # [B, N] each
    ell = log_depth(z2)                                                            # [B, N]
    l_max = ell.max() if log_depth_max is None else torch.as_tensor(log_depth_max, dtype=torch.float32,
                                                                    device=ell.device)  # [] (0-dim)
    # soft z-buffer: nearer points dominate exponentially. The reference's weight is
    # bilinear * [z2 >= 0] / w_depth; a divisor of inf for points behind the target camera gives
    # the same bits (the bilinear factor is finite and >= 0) in one pass instead of two.
    w_depth = torch.exp(ell / l_max.clamp_min(LOG_DEPTH_FLOOR) * DEPTH_SHARPNESS)            # [B, N]
    w_depth = torch.where(z2 >= 0, w_depth, torch.tensor(float("inf"), device=z2.device))  # [B, N]
    pixels = colour.to(torch.float32).permute(0, 2, 3, 1).reshape(B, H * W, C)   # [B, N, C]; free if channels-last
    acc = _splat(pixels, u, v, w_depth, H, W)
    acc = acc.reshape(B, H + 2, W + 2, C + 1)[:, 1:-1, 1:-1].permute(0, 3, 1, 2)  # [B, C+1, H, W]
    weight = acc[:, C:]                                                            # [B, 1, H, W]
    known = weight > 0
    render = torch.where(known, acc[:, :C] / weight, torch.tensor(-1.0, device=acc.device)).clamp(-1, 1)  # [B, C, H, W]
    return render, known.to(torch.float32)


def _splat(colour: Tensor, u: Tensor, v: Tensor, w_depth: Tensor, H: int, W: int) -> Tensor:
    """Bilinear splat of colour [B, N, C] at (u, v) [B, N] with weight bilinear / w_depth (all
    [B, N]) into a canvas padded by 1 pixel -> flat accumulator [B*(H+2)*(W+2), C+1] holding
    (sum w*colour, sum w)."""
    B, N, C = colour.shape
    xs = torch.arange(W, device=u.device, dtype=u.dtype).repeat(H)                # [N]
    ys = torch.arange(H, device=u.device, dtype=u.dtype).repeat_interleave(W)     # [N]
    # (u - x) + x: the reference goes through a flow field and back; this rounding is kept.
    # The +1 moves into the padded canvas; position, floor and ceil are clamped to it, so
    # far-off points land on the border, which is cropped away.
    # A NaN position (0/0: a point at the target camera centre) is sent to the border as well.
    x = torch.nan_to_num(((u - xs) + xs) + 1, nan=0.0)
    y = torch.nan_to_num(((v - ys) + ys) + 1, nan=0.0)
    x0, x1 = torch.floor(x).clamp(0, W + 1), torch.ceil(x).clamp(0, W + 1)
    y0, y1 = torch.floor(y).clamp(0, H + 1), torch.ceil(y).clamp(0, H + 1)
    x, y = x.clamp(0, W + 1), y.clamp(0, H + 1)
    base = torch.arange(B, device=u.device).reshape(B, 1) * ((H + 2) * (W + 2))  # [B, 1]
    nw = base + y0.long() * (W + 2) + x0.long()                                    # [B, N] flat cell
    down, right = (y1 - y0).long() * (W + 2), (x1 - x0).long()                     # 0 or 1 row / column
    colour1 = torch.cat([colour, torch.ones_like(colour[..., :1])], dim=-1)        # [B, N, C+1]: (c, 1)
    acc = torch.zeros(B * (H + 2) * (W + 2), C + 1, device=u.device, dtype=torch.float32)  # [B * (H + 2) * (W + 2), C + 1]
    # the reference's order nw, sw, ne, se; an exact-integer position puts all four on one cell
    top, bottom, left, rgt = 1 - (y - y0), 1 - (y1 - y), 1 - (x - x0), 1 - (x1 - x)  # [B, N] each
    for cell, prox in ((nw, top * left), (nw + down, bottom * left), (nw + right, top * rgt),
                       (nw + down + right, bottom * rgt)):
        w = (prox / w_depth).unsqueeze(-1)                                         # [B, N, 1]
        # an expanded index takes torch's fast sorted scatter path on CPU
        acc.scatter_add_(0, cell.reshape(-1, 1).expand(-1, C + 1), (colour1 * w).reshape(-1, C + 1))
    return acc


def to_encoder_u8(render: Tensor) -> Tensor:
    """[B, 3, H, W] render in [-1, 1] -> [B, H, W, 3] uint8, trunc(clip((x + 1) 127.5, 0, 255)):
    what the reference pipes to its video encoder; holes (-1) become 0."""
    return ((render.permute(0, 2, 3, 1) + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)   # [B, H, W, 3]


def mask_to_u8(mask: Tensor) -> Tensor:
    """[B, 1, H, W] mask in {0, 1} -> [B, H, W, 3] uint8, 255 valid / 0 hole (the mask video)."""
    return (mask.permute(0, 2, 3, 1) * 255.0).clamp(0, 255).to(torch.uint8).expand(-1, -1, -1, 3)  # [B, H, W, 3]
