"""The frame program of `main.py render`: which source frame and which camera every output frame
of the reference pipeline shows, and how many frames each output has (pipeline-spec 5, 6 and 8).

The reference renders at the native, freeze-extended count T_r = N + F (targets composed with the
freeze-extended source poses, `target_c2w`), then resamples render, mask and source with one
adaptive index list. Output frame k therefore shows source frame frozen[a[k]] warped to target
pose tgt[a[k]]; the plan hands exactly that to the engine as a ScriptedPath, so the engine renders
the resampled frames directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from scenes.frames import LatentChain, dataset_frame_count, dataset_frames, freeze_indices, latent_chain
from scenes.memory import require_memory
from scenes.trajectory import TrajectoryKeys, dataset_reference_w2c, target_c2w

MAX_SOURCE_FRAMES = 1000          # the reference decodes at most this many frames
PLAN_BYTES_PER_FRAME = 2048       # peak memory per frame of the frame program and the script made from it
PI3_SCALE = 65535.0               # the reference's uint16 depth scale
PI3_MIN_RANGE = 1e-8              # below this depth range the reference divides by 1


@dataclass(frozen=True)
class FrameSettings:
    """The reference flags that shape the frame program."""
    freeze_repeat: int = 0
    freeze_frame: int | None = None      # None: the middle frame, n // 2
    adaptive: bool = True                # False with --disable_adaptive_frame
    relative_to_source: bool = False
    rotation_only: bool = False


@dataclass(frozen=True)
class RenderPlan:
    """Everything the render command needs to drive the engine for one video.

    target_c2w: float32 [T, 4, 4] target cameras of the output frames (OpenCV c2w).
    source_index: [T] source frame shown at each output frame (freeze and adaptive composed in).
    native_c2w / native_source: the same for the reference's native-length render (T_r frames),
      which sets the warper's depth-weight normaliser.
    extrinsics: float32 [1, T, 4, 4] w2c, the reference's saved `extrinsics_<g>.pt`."""
    n_source: int
    freeze_frame: int | None             # the effective (clamped) freeze frame; None without freeze
    target_c2w: torch.Tensor
    source_index: list[int]
    native_c2w: torch.Tensor
    native_source: list[int]
    adaptive_index: list[int]            # indices into the native render
    extrinsics: torch.Tensor
    radius: float                        # foreground radius that scales the saved extrinsics
    chain: LatentChain

    @property
    def frames(self) -> int:
        """T: frames of the source, render and mask outputs (and of the geometry prediction)."""
        return len(self.source_index)

    @property
    def native_frames(self) -> int:
        return len(self.native_source)


def foreground_radius(depth: torch.Tensor) -> float:
    """The reference's `first_depth_min`: frame 0's minimum depth after the uint16 round trip with
    the global min and max over all frames (pipeline-spec 2.2 and 4.4). depth: [N, H, W] float32."""
    lo, hi = depth.min().float(), depth.max().float()                      # float32, as numpy's min/max
    span = hi - lo if float(hi - lo) >= PI3_MIN_RANGE else torch.tensor(1.0)
    u16 = ((depth[0].float() - lo) / span * PI3_SCALE).clamp(0, PI3_SCALE).to(torch.int32)   # [H, W] trunc
    return float(u16.min()) / PI3_SCALE * (float(hi) - float(lo)) + float(lo)


def plan_frames(keys: TrajectoryKeys, source_c2w: torch.Tensor, depth: torch.Tensor,
                settings: FrameSettings) -> RenderPlan:
    """The reference's frame program for a scene with N = len(source_c2w) frames (at most 1000 used).

    source_c2w: float32 [N, 4, 4]; depth: [N, H, W] (only for the saved extrinsics' radius)."""
    n = min(len(source_c2w), MAX_SOURCE_FRAMES)
    native_count, count = dataset_frame_count(n, freeze_repeat=settings.freeze_repeat, adaptive=settings.adaptive,
                                              total_angle_deg=keys.total_angle_deg())
    require_memory(max(native_count, count) * PLAN_BYTES_PER_FRAME, f"the frame program's {count} output frames "
                   f"({native_count} rendered natively)", "lower --freeze_repeat, or use a trajectory that turns less")
    frozen = freeze_indices(n, settings.freeze_repeat, settings.freeze_frame)
    native = target_c2w(keys, source_c2w[frozen].float(), relative_to_source=settings.relative_to_source,
                        rotation_only=settings.rotation_only)                # [T_r, 4, 4] float32
    chain = dataset_frames(n, freeze_repeat=settings.freeze_repeat, freeze_frame=settings.freeze_frame,
                           adaptive=settings.adaptive, total_angle_deg=keys.total_angle_deg())
    T = len(chain.render_index)
    radius = foreground_radius(depth[:n])
    w2c = dataset_reference_w2c(keys, T, radius, rotation_only=settings.rotation_only)  # [T, 4, 4] f64
    frozen_at = None
    if settings.freeze_repeat:
        frozen_at = max(0, min(n // 2 if settings.freeze_frame is None else settings.freeze_frame, n - 1))
    return RenderPlan(n_source=n, freeze_frame=frozen_at, target_c2w=native[chain.render_index],
                      source_index=list(chain.source_index), native_c2w=native, native_source=frozen,
                      adaptive_index=list(chain.render_index),
                      extrinsics=torch.from_numpy(w2c).float()[None], radius=radius, chain=latent_chain(T))


def block_script_length(chain: LatentChain, first_block: int, next_blocks: int) -> int:
    """Frames a block refiner (the DiT) consumes for the reference's L' latents: its first block
    takes `first_block` frames, every later one `next_blocks` (Wan VAE 9 + 12k = 4L' - 3, TAE
    12 + 12k = 4L'). 0 when T has no whole 3-latent block."""
    if chain.blocks == 0:
        return 0
    return first_block + (chain.blocks - 1) * next_blocks


def script_indices(T: int, length: int) -> np.ndarray:
    """Positions of the plan's frames that make a script of `length` frames: the first `length`,
    the last one repeated when longer (the TAE pads its input with the last frame). -> [length]"""
    return np.minimum(np.arange(length), T - 1)


def pred_frames(chain: LatentChain, refiner_name: str) -> int:
    """Frames of the prediction video: 4L' - 3 for the DiT, T for the geometry refiner."""
    return chain.pred_frames if refiner_name == "dit" else chain.frames


def check_dit_length(chain: LatentChain) -> None:
    """The DiT needs at least one whole 3-latent block (T >= 9 frames)."""
    if chain.blocks == 0:
        raise ValueError(f"{chain.frames} output frames make no whole 3-latent DiT block (need at least 9); "
                         "use a longer clip, a freeze_repeat, or adaptive frames")

