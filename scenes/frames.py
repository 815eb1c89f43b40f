"""Frame-index bookkeeping of the reference pipeline (pipeline-spec sections 6.2-6.4): time
freeze, adaptive frame count, and the latent / output frame-count chain.

Everything here is a pure function of integers that returns index lists or counts. Index lists
map output positions to input frames; the same list is applied to frames, depths and poses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scenes.errors import SceneInputError

MIN_ANGLE_PER_FRAME_DEG = 0.3     # adaptive: fewest degrees of camera turn per output frame
MAX_ANGLE_PER_FRAME_DEG = 0.8     # adaptive: most degrees of camera turn per output frame
MIN_ADAPTIVE_FRAMES = 121         # adaptive: shorter clips are ping-ponged up to at least this
FRAMES_PER_LATENT = 4             # Wan VAE / TAEHV temporal compression
LATENTS_PER_BLOCK = 3             # num_frame_per_block of the causal DiT


def _check_count(n: int, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SceneInputError(f"{what} must be an integer >= 1, got {n!r}")


def freeze_indices(n: int, freeze_repeat: int = 0, freeze_frame: int | None = None, *,
                   strict: bool = False) -> list[int]:
    """Time freeze: [0 .. f] + [f] * F + [f+1 .. n-1], so frame f shows F + 1 times.

    freeze_frame None means n // 2. An index outside [0, n-1] is clamped into it by default, as
    the reference does (so 10 on a 5-frame clip freezes frame 4); strict=True raises instead.
    freeze_repeat 0 leaves the sequence unchanged (freeze_frame is then not even checked)."""
    _check_count(n, "frame count")
    if isinstance(freeze_repeat, bool) or not isinstance(freeze_repeat, (int, np.integer)) or freeze_repeat < 0:
        raise SceneInputError(f"freeze_repeat must be an integer >= 0, got {freeze_repeat!r}")
    if freeze_repeat == 0:
        return list(range(n))
    f = n // 2 if freeze_frame is None else int(freeze_frame)
    if strict and not 0 <= f < n:
        raise SceneInputError(f"freeze_frame {f} is outside the clip's frames 0..{n - 1}")
    f = max(0, min(f, n - 1))
    return list(range(f + 1)) + [f] * int(freeze_repeat) + list(range(f + 1, n))


def adaptive_bounds(n: int, total_angle_deg: float) -> tuple[int, int]:
    """(min_needed, max_needed) frames for a camera turn of total_angle_deg (raw keys' total).
    A pure dolly (total <= 1e-3) keeps n on both sides."""
    if total_angle_deg > 1e-3:
        return (max(2, math.ceil(total_angle_deg / MAX_ANGLE_PER_FRAME_DEG) + 1),
                max(2, math.floor(total_angle_deg / MIN_ANGLE_PER_FRAME_DEG) + 1))
    return n, n


def bounce_indices(n_source: int, n_target: int) -> list[int]:
    """The reference's resampler: ping-pong 0, 1, .., n-1, n-2, .., 1, 0, 1, .. up to n_target
    when n_target > n_source, else a truncating linspace(0, n_source - 1, n_target) subsample.
    n_source = 1 cannot ping-pong (the reference divides by zero and then retries forever)."""
    _check_count(n_source, "source frame count")
    _check_count(n_target, "target frame count")
    if n_target <= n_source:
        return np.linspace(0, n_source - 1, n_target).astype(int).tolist()
    if n_source == 1:
        raise SceneInputError(f"cannot ping-pong a 1-frame clip to {n_target} frames; "
                              f"give a longer clip or a freeze_repeat")
    cycle = 2 * (n_source - 1)
    return [p if p < n_source else cycle - p for p in (i % cycle for i in range(n_target))]


def adaptive_count(n: int, total_angle_deg: float) -> int:
    """Frames after the adaptive frame count (dataset.adaptive_frame) of n aligned frames: clips
    shorter than max(min_needed, 121) grow to it, clips longer than max_needed shrink to it."""
    min_needed, max_needed = adaptive_bounds(n, total_angle_deg)
    target = max(min_needed, MIN_ADAPTIVE_FRAMES)
    return target if n < target else max_needed if n > max_needed else n


def adaptive_indices(n: int, total_angle_deg: float) -> list[int]:
    """Adaptive frame count: indices into the n aligned frames. Clips that grow are ping-ponged,
    clips that shrink are subsampled (truncating linspace), others are unchanged."""
    _check_count(n, "frame count")
    target = adaptive_count(n, total_angle_deg)
    return list(range(n)) if target == n else bounce_indices(n, target)


@dataclass(frozen=True)
class DatasetFrames:
    """Output frame -> frame of each input video of the v2v step (after freeze and adaptive)."""
    source_index: list[int]   # indices into the decoded source video (freeze composed in)
    render_index: list[int]   # indices into the rendered video (already freeze-extended)


def dataset_frame_count(n_source: int, *, freeze_repeat: int = 0, adaptive: bool = True,
                        total_angle_deg: float = 0.0) -> tuple[int, int]:
    """(frames after the freeze, output frames) of `dataset_frames`, counted without building its lists."""
    frozen = n_source + freeze_repeat
    return frozen, adaptive_count(frozen, total_angle_deg) if adaptive else frozen


def dataset_frames(n_source: int, *, freeze_repeat: int = 0, freeze_frame: int | None = None,
                   adaptive: bool = True, total_angle_deg: float = 0.0, strict: bool = False) -> DatasetFrames:
    """The v2v dataset's full index chain for a clip of n_source frames (render has n + F)."""
    frozen = freeze_indices(n_source, freeze_repeat, freeze_frame, strict=strict)
    render = adaptive_indices(len(frozen), total_angle_deg) if adaptive else list(range(len(frozen)))
    return DatasetFrames([frozen[i] for i in render], render)


@dataclass(frozen=True)
class LatentChain:
    """Frame counts downstream of a T-frame conditioning video (pipeline-spec 6.2)."""
    frames: int           # T: also the length of the written source and render videos
    latents: int          # L = ceil(T / 4), for the Wan VAE, TAEHV and the mask alike
    latents_used: int     # L' = 3 floor(L / 3): whole 3-latent blocks
    blocks: int           # L' / 3 DiT blocks

    @property
    def pred_frames(self) -> int:
        """4 L' - 3 decoded frames (source frames 0 .. 4L' - 4); 0 when there is no whole block
        (T <= 8, e.g. T = 5: TAEHV decodes nothing and the reference's VAE decoder raises)."""
        return max(FRAMES_PER_LATENT * self.latents_used - (FRAMES_PER_LATENT - 1), 0)


def latent_chain(T: int) -> LatentChain:
    _check_count(T, "frame count T")
    latents = math.ceil(T / FRAMES_PER_LATENT)
    used = latents - latents % LATENTS_PER_BLOCK
    return LatentChain(int(T), latents, used, used // LATENTS_PER_BLOCK)
