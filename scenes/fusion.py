"""A lasting world state: the video's frames fused, so novel views have far fewer holes.

The reference renders output frame t from source frame t alone, so an orbit opens holes wherever
that one frame saw nothing, even where other frames did. Here:
- `build_world` accumulates the *static* pixels of every source frame (scenes/dynamic_mask.py finds
  the moving ones from the video itself) as world points, merged in voxels whose edge follows the
  pixel footprint (depth / fx, a power of two of `voxel_pixels` footprints); when the point count
  passes `max_points` every voxel doubles in size until it fits.
- `render_fused` renders a block exactly as `render_views` does (the current source frame, all of
  its pixels, moving things included), then fills the holes it leaves with the fused static points
  (bilinear splats behind a hard z-buffer), and shows them over current-frame pixels only where
  they are clearly nearer (the current frame saw the background from elsewhere). A crack inside a
  current-frame surface is only filled by points at that surface's depth. So fused points never
  cover nearer current-frame surfaces, and moving things are only where they are now.

Conventions: OpenCV cameras, c2w [4, 4], K [3, 3] pixels, pixel centres at integers.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from scenes.config import FusionConfig
from scenes.dynamic_mask import expand_dynamic, project_points, raw_dynamic, unproject
from scenes.render import DEPTH_CLIP, render_views
from scenes.warper import project

CELL_BITS = 19                    # bits per voxel coordinate in a packed key
LEVEL_MIN, LEVEL_MAX = -32, 31    # voxel edge 2^level scene units (6 bits in the key)
NEAR_Z = 1e-3                     # fused points nearer than this to a target camera are dropped
SPLAT_ELEMENTS = 1 << 23          # points x frames projected at once by render (memory bound)
CRACK_NEIGHBOURS = 6              # a hole with this many covered 8-neighbours is a crack
SOLID_WEIGHT = 0.75               # fused splat weight that replaces a farther current pixel (not an edge)


@dataclass(frozen=True)
class FusedWorld:
    """The fused static scene. xyz float32 [M, 3] world points (voxel means), rgb uint8 [M, 3],
    weight float32 [M] (source pixels merged into each point), voxel_shift: how many times the voxels
    were doubled to fit the budget; frames: source frames fused; dynamic_bits uint8 [N, ceil(h w / 8)]:
    each frame's raw dynamic mask at the analysis stride, bit-packed (mask_hw = (h, w)); cfg: the
    settings it was built with."""
    xyz: Tensor
    rgb: Tensor
    weight: Tensor
    voxel_shift: int
    frames: int
    dynamic_bits: Tensor
    mask_hw: tuple[int, int]
    cfg: FusionConfig

    def to(self, device) -> "FusedWorld":
        return replace(self, xyz=self.xyz.to(device), rgb=self.rgb.to(device), weight=self.weight.to(device),
                       dynamic_bits=self.dynamic_bits.to(device))

    def dynamic(self, indices: Tensor, H: int, W: int) -> Tensor:
        """The cleaned dynamic masks of source frames `indices` [T] -> bool [T, H, W]."""
        raw = unpack_bits(self.dynamic_bits[indices.to(self.dynamic_bits.device)], *self.mask_hw)
        return expand_dynamic(raw, H, W, self.cfg.analysis_stride, self.cfg.dilate_px)

    @property
    def points(self) -> int:
        return int(self.xyz.shape[0])


# ---------------------------------------------------------------- building

def pack_bits(mask: Tensor) -> Tensor:
    """bool [B, h, w] -> uint8 [B, ceil(h w / 8)], 8 pixels a byte (lowest bit first)."""
    flat = mask.reshape(mask.shape[0], -1).to(torch.uint8)                          # [B, hw]
    flat = F.pad(flat, (0, (-flat.shape[1]) % 8)).reshape(mask.shape[0], -1, 8)    # [B, bytes, 8]
    return (flat << torch.arange(8, device=mask.device, dtype=torch.uint8)).sum(-1).to(torch.uint8)


def unpack_bits(bits: Tensor, h: int, w: int) -> Tensor:
    """pack_bits' inverse: uint8 [B, bytes] -> bool [B, h, w]."""
    flags = (bits.unsqueeze(-1) >> torch.arange(8, device=bits.device, dtype=torch.uint8)) & 1   # [B, bytes, 8]
    return flags.reshape(bits.shape[0], -1)[:, :h * w].reshape(-1, h, w) > 0


def _keys(xyz: Tensor, level: Tensor) -> Tensor:
    """Pack (level, voxel cell) into one int64 per point. xyz [M, 3], level long [M] -> long [M]."""
    half = 1 << (CELL_BITS - 1)
    cell = torch.floor(xyz / torch.exp2(level.to(xyz.dtype)).unsqueeze(-1)).long() + half       # [M, 3]
    cell = cell.clamp(0, (1 << CELL_BITS) - 1)
    return (((level - LEVEL_MIN) << (3 * CELL_BITS)) | (cell[:, 0] << (2 * CELL_BITS))
            | (cell[:, 1] << CELL_BITS) | cell[:, 2])


def _level_of(keys: Tensor) -> Tensor:
    return (keys >> (3 * CELL_BITS)) + LEVEL_MIN


def _merge(keys: Tensor, xyz: Tensor, rgb: Tensor, weight: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Weighted means of the points that share a key. keys [M], xyz [M, 3], rgb float [M, 3],
    weight [M] -> the same for the unique keys."""
    uniq, inv = torch.unique(keys, return_inverse=True)                             # [U], [M]
    acc = torch.zeros(len(uniq), 7, device=xyz.device, dtype=torch.float32)        # [U, 7]
    acc.index_add_(0, inv, torch.cat([xyz * weight[:, None], rgb * weight[:, None], weight[:, None]], 1))
    w = acc[:, 6]
    return uniq, acc[:, :3] / w[:, None], acc[:, 3:6] / w[:, None], w


def _fit_budget(state: tuple, max_points: int) -> tuple[tuple, int]:
    """Double every voxel until at most max_points remain. -> (state, doublings)"""
    doublings = 0
    while len(state[0]) > max_points:
        keys, xyz, rgb, w = state
        level = (_level_of(keys) + 1).clamp(max=LEVEL_MAX)
        state = _merge(_keys(xyz, level), xyz, rgb, w)
        doublings += 1
    return state, doublings


def _frame_points(frames_u8, depth, K, c2w, idx, static, cfg, shift) -> tuple[Tensor, Tensor, Tensor]:
    """Static, valid-depth pixels of frames idx as (keys [P], xyz [P, 3], rgb float [P, 3])."""
    d = depth[idx].to(torch.float32)                                                # [B, H, W]
    xyz = unproject(d.clamp(*DEPTH_CLIP), K[idx], c2w[idx])                         # [B, H, W, 3]
    keep = static & torch.isfinite(d) & (d > 0) & torch.isfinite(xyz).all(-1)      # [B, H, W]
    fx = K[idx, 0, 0].to(torch.float32).reshape(-1, 1, 1)                           # [B, 1, 1]
    footprint = d.clamp(*DEPTH_CLIP) / fx * (cfg.voxel_pixels * 2.0 ** shift)       # [B, H, W]
    level = torch.floor(torch.log2(footprint)).long().clamp(LEVEL_MIN, LEVEL_MAX)
    xyz, level = xyz[keep], level[keep]                                             # [P, 3], [P]
    return _keys(xyz, level), xyz, frames_u8[idx][keep].to(torch.float32)


def build_world(frames_u8: Tensor, depth: Tensor, K: Tensor, c2w: Tensor, cfg: FusionConfig = FusionConfig(),
                progress: bool = False) -> FusedWorld:
    """Fuse a whole video's static content.

    frames_u8 [N, H, W, 3] uint8, depth [N, H, W] camera z, K [N, 3, 3] or [3, 3] pixels,
    c2w [N, 4, 4] OpenCV camera-to-world. Runs on frames_u8's device, `cfg.chunk_frames` frames
    at a time; memory stays within max_points plus one chunk of pixels."""
    N, H, W, _ = _check_video(frames_u8, depth, K, c2w)
    dev = frames_u8.device
    depth = depth.to(dev)
    K = K.to(device=dev, dtype=torch.float32).expand(N, 3, 3)
    c2w = c2w.to(device=dev, dtype=torch.float32)
    empty = torch.zeros(0, 3, device=dev)
    state, shift = (torch.zeros(0, dtype=torch.long, device=dev), empty, empty, empty[:, 0]), 0
    starts = range(0, N, cfg.chunk_frames)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="fusing the scene", unit="chunk", file=sys.stderr)
    bits = []
    for a in starts:
        idx = torch.arange(a, min(a + cfg.chunk_frames, N), device=dev)
        raw = raw_dynamic(frames_u8, depth, K, c2w, idx, cfg)                       # [B, h, w]
        bits.append(pack_bits(raw))
        adds = (idx % cfg.point_stride == 0) | (idx == N - 1)                       # [B] frames that add points
        if not bool(adds.any()):
            continue
        static = ~expand_dynamic(raw[adds], H, W, cfg.analysis_stride, cfg.dilate_px)   # [A, H, W]
        keys, xyz, rgb = _frame_points(frames_u8, depth, K, c2w, idx[adds], static, cfg, shift)
        state = _merge(torch.cat([state[0], keys]), torch.cat([state[1], xyz]), torch.cat([state[2], rgb]),
                       torch.cat([state[3], torch.ones_like(keys, dtype=torch.float32)]))
        state, doubled = _fit_budget(state, cfg.max_points)
        shift += doubled
    _, xyz, rgb, w = state
    return FusedWorld(xyz=xyz, rgb=rgb.round().clamp(0, 255).to(torch.uint8), weight=w, voxel_shift=shift, frames=N,
                      dynamic_bits=torch.cat(bits), mask_hw=tuple(raw.shape[1:]), cfg=cfg)


def _check_video(frames_u8, depth, K, c2w) -> tuple[int, int, int, int]:
    if frames_u8.dtype != torch.uint8 or frames_u8.ndim != 4 or frames_u8.shape[-1] != 3:
        raise ValueError(f"build_world: frames must be uint8 [N, H, W, 3], got {frames_u8.dtype} {tuple(frames_u8.shape)}")
    N, H, W, _ = frames_u8.shape
    if tuple(depth.shape) != (N, H, W) or tuple(c2w.shape) != (N, 4, 4) or tuple(K.shape) not in ((3, 3), (N, 3, 3)):
        raise ValueError(f"build_world: need depth [{N}, {H}, {W}], c2w [{N}, 4, 4] and K [3, 3] or [{N}, 3, 3], got "
                         f"{list(depth.shape)}, {list(c2w.shape)}, {list(K.shape)}")
    return N, H, W, 3


# ---------------------------------------------------------------- rendering

def splat_points(world: FusedWorld, K: Tensor, tgt_w2c: Tensor, H: int, W: int, depth_tolerance: float,
                 compact: bool | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Render the fused points: bilinear splats onto 4 pixels each, behind a hard z-buffer (a splat
    counts where its z <= the pixel's nearest z * (1 + depth_tolerance)).
    K [T, 3, 3], tgt_w2c [T, 4, 4] -> rgb float [T, H, W, 3] (0..255), weight [T, H, W] (0 = nothing),
    z [T, H, W] (nearest point's camera z, inf = nothing). compact: drop the points outside each view
    before splatting (faster, but waits for the host); None = on the CPU only."""
    T, M = tgt_w2c.shape[0], world.points
    group = max(1, SPLAT_ELEMENTS // max(M, 1))
    compact = world.xyz.device.type == "cpu" if compact is None else compact
    parts = [_splat_group(world, K[a:a + group], tgt_w2c[a:a + group], H, W, depth_tolerance, compact)
             for a in range(0, T, group)]
    return tuple(torch.cat(p) for p in zip(*parts))


def _splat_group(world: FusedWorld, K: Tensor, w2c: Tensor, H: int, W: int, tol: float,
                 compact: bool) -> tuple[Tensor, Tensor, Tensor]:
    T, M = w2c.shape[0], world.points
    u, v, z = project_points(world.xyz.expand(T, M, 3), K, w2c)                    # [T, M] each
    ok = (z > NEAR_Z) & (u > -1) & (u < W) & (v > -1) & (v < H)                     # NaN/inf fail these
    frame = torch.arange(T, device=z.device).reshape(T, 1).expand(T, M)            # [T, M]
    point = torch.arange(M, device=z.device).reshape(1, M).expand(T, M)            # [T, M]
    if compact:                         # keep only the visible pairs
        u, v, z, frame, point, ok = u[ok], v[ok], z[ok], frame[ok], point[ok], ok[ok]   # [P] each
    else:                               # invisible pairs: weight 0, z inf, on a valid cell
        u, v, z = torch.where(ok, u, 0.0), torch.where(ok, v, 0.0), torch.where(ok, z, torch.inf)
        u, v, z, frame, point, ok = (x.reshape(-1) for x in (u, v, z, frame, point, ok))
    x0, y0 = torch.floor(u + 1), torch.floor(v + 1)                                 # +1: padded canvas
    fx, fy = u + 1 - x0, v + 1 - y0
    nw = frame * ((H + 2) * (W + 2)) + y0.long() * (W + 2) + x0.long()             # [P]
    cells = torch.stack([nw, nw + 1, nw + W + 2, nw + W + 3]).reshape(-1)          # [4P]
    prox = (torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]) * ok).reshape(-1)  # [4P]
    zkey = z.repeat(4)                                                              # [4P]
    zbuf = torch.full((T * (H + 2) * (W + 2),), torch.inf, device=z.device)
    zbuf.scatter_reduce_(0, cells, zkey, reduce="amin")
    w = prox * (zkey <= zbuf.index_select(0, cells) * (1 + tol))                    # [4P]
    rgb = world.rgb.to(torch.float32).index_select(0, point).repeat(4, 1)           # [4P, 3]
    acc = [torch.zeros_like(zbuf).scatter_add_(0, cells, w * rgb[:, c]) for c in range(3)]
    weight = torch.zeros_like(zbuf).scatter_add_(0, cells, w)
    def crop(flat: Tensor) -> Tensor:                                               # [T, H, W]
        return flat.reshape(T, H + 2, W + 2)[:, 1:-1, 1:-1]
    colour = torch.stack([crop(a) for a in acc], -1) / crop(weight).clamp_min(1e-12).unsqueeze(-1)  # [T, H, W, 3]
    return colour, crop(weight), crop(zbuf)


def current_depth(depth: Tensor, K: Tensor, src_c2w: Tensor, tgt_c2w: Tensor, only: Tensor | None = None) -> Tensor:
    """Nearest camera z of the current frame's pixels (those where `only` [T, H, W] is True, default
    all) in the target view, each on its nearest pixel.
    depth [T, H, W], K [T, 3, 3], src_c2w, tgt_c2w [T, 4, 4] -> [T, H, W] (inf = nothing landed)."""
    T, H, W = depth.shape
    d = depth.to(torch.float32).clamp(*DEPTH_CLIP).unsqueeze(1)                     # [T, 1, H, W]
    u, v, z = project(d, torch.linalg.inv(src_c2w), torch.linalg.inv(tgt_c2w), K)   # [T, HW] each
    x, y = torch.round(u), torch.round(v)
    ok = (z > 0) & (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    if only is not None:
        ok = ok & only.reshape(T, H * W)
    cell = torch.arange(T, device=z.device).reshape(T, 1) * (H * W) + torch.where(ok, y * W + x, 0.0).long()
    out = torch.full((T * H * W,), torch.inf, device=z.device)
    out.scatter_reduce_(0, cell.reshape(-1), torch.where(ok, z, torch.inf).reshape(-1), reduce="amin")
    return out.reshape(T, H, W)


def _min_pool(z: Tensor, radius: int) -> Tensor:
    """Min of [T, H, W] over a (2 radius + 1)^2 window -> [T, H, W]."""
    return -F.max_pool2d(-z.unsqueeze(1), 2 * radius + 1, stride=1, padding=radius)[:, 0]


def fused_wins(cur_mask: Tensor, cur_z: Tensor, fused_weight: Tensor, fused_z: Tensor, moving_z: Tensor,
               depth_tolerance: float) -> Tensor:
    """Where the fused points are shown: (1) holes of the current render (cur_mask False) that the
    fused points reach, except cracks (>= CRACK_NEIGHBOURS covered 8-neighbours) whose fused surface
    lies behind the current surface around them, and except where it lies behind a nearby moving thing
    (`moving_z`: the current frame's moving pixels' z, spread over the protected radius), whose unseen
    side it would otherwise paint with background; (2) covered pixels where the fused surface is
    clearly nearer than every current-frame surface around the pixel (the current frame saw what lies
    behind it from elsewhere). So fused points never cover nearer current-frame surfaces.
    All [T, H, W]: cur_mask bool, fused_weight, camera z (inf = none) -> bool [T, H, W]."""
    reached = fused_weight > 0
    covered = cur_mask.unsqueeze(1).to(torch.float32)                               # [T, 1, H, W]
    neighbours = F.avg_pool2d(covered, 3, stride=1, padding=1, count_include_pad=False) * 9 - covered
    crack = neighbours[:, 0] >= CRACK_NEIGHBOURS
    z = cur_z.unsqueeze(1)                                                          # [T, 1, H, W]
    farthest = F.max_pool2d(torch.where(torch.isfinite(z), z, 0.0), 3, stride=1, padding=1)[:, 0]
    nearest = _min_pool(cur_z, 1)                                                   # [T, H, W], inf = none
    behind = crack & (farthest > 0) & (fused_z > farthest * (1 + depth_tolerance))
    behind_moving = fused_z > moving_z * (1 + depth_tolerance)
    in_front = cur_mask & (fused_weight >= SOLID_WEIGHT) & (fused_z < nearest * (1 - depth_tolerance))
    return reached & ((~cur_mask & ~behind & ~behind_moving) | in_front)


def render_fused(world: FusedWorld | None, frames_u8: Tensor, depth: Tensor, K: Tensor, src_c2w: Tensor,
                 tgt_c2w: Tensor, *, indices: Tensor | None = None,
                 log_depth_max: Tensor | float | None = None) -> tuple[Tensor, Tensor]:
    """render_views (same arguments, same output contract) with its holes filled from `world`.

    frames_u8 [T, H, W, 3] uint8 (the block's current source frames), depth [T, H, W], K [3, 3] or
    [T, 3, 3], src_c2w, tgt_c2w [T, 4, 4]; indices [T] long: the source frame index of each (their
    moving pixels are protected; None = no protection). -> render uint8 [T, H, W, 3] (holes 0), mask
    bool [T, H, W]. The pixels are render_views' own except where `fused_wins`; world None (or
    empty) gives render_views exactly. Runs on frames_u8's device; no host sync."""
    render, mask = render_views(frames_u8, depth, K, src_c2w, tgt_c2w, log_depth_max=log_depth_max)
    if world is None or world.points == 0:
        return render, mask
    T, H, W, _ = frames_u8.shape
    dev, f32, tol = frames_u8.device, torch.float32, world.cfg.depth_tolerance
    K = K.to(device=dev, dtype=f32).expand(T, 3, 3)
    src, tgt, depth = src_c2w.to(device=dev, dtype=f32), tgt_c2w.to(device=dev, dtype=f32), depth.to(dev)
    world = world.to(dev)
    rgb, weight, fz = splat_points(world, K, torch.linalg.inv(tgt), H, W, tol)
    moving_z = torch.full_like(fz, torch.inf)
    if indices is not None and world.cfg.protect_px > 0:
        moving = current_depth(depth, K, src, tgt, only=world.dynamic(indices, H, W))   # [T, H, W]
        moving_z = _min_pool(moving, world.cfg.protect_px)
    fill = fused_wins(mask, current_depth(depth, K, src, tgt), weight, fz, moving_z, tol)
    out = torch.where(fill.unsqueeze(-1), rgb.round().clamp(0, 255).to(torch.uint8), render)
    return out, mask | fill
