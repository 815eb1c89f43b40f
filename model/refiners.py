"""Refiners turn a block's point-cloud render, its validity mask and the source frames into the
frames a person sees. `GeometryRefiner` needs no weights: it shows the render with holes filled by
push-pull (a masked image pyramid). `DiTRefiner` (model/dit_refiner.py) is the InSpatio-World model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RefineInput:
    """One block of conditioning, all on the refiner's device.
    render: uint8 [T, H, W, 3] (holes 0)   mask: bool [T, H, W] (True = valid)
    source: uint8 [T, H, W, 3], the time-aligned source frames.
    mark: called with a stage name ("encode", "dit", "decode") when that stage is done (telemetry).
    source_indices: the scene frame index of each source frame (len T), where `source` is those frames
    of the one scene the refiner serves; lets the DiT reuse source latents (None: no reuse)."""
    render: torch.Tensor
    mask: torch.Tensor
    source: torch.Tensor
    mark: Callable[[str], None] = lambda stage: None
    source_indices: tuple[int, ...] | None = None


class Refiner:
    """What the engine asks of a refiner. A refiner implements `frames_for_block` and `refine`;
    everything else has a default that does nothing, so the engine calls it all on every refiner
    and never asks what one can do. What differs is declared here, as class attributes."""
    name = "refiner"
    fused_world = False     # conditions on the fused world state's render (scenes/fusion.py) where the config builds one
    latent_blocks = False   # yields whole latent blocks: the offline render predicts the reference's 4L' - 3 frames
    prepares_ahead = False  # prepare() does work: the worker sends it the next block's source frames while idle
    display_draws = False   # its frames are the filled point-cloud render, which a display draws itself (no blocks)
    warm_up_note = ""       # what the window says while warm_up() runs

    def frames_for_block(self, first: bool) -> int:
        """Output frames the next block yields (the DiT's first block after a reset is shorter)."""
        raise NotImplementedError

    def refine(self, block: RefineInput) -> torch.Tensor:
        """Return output frames uint8 [T', H, W, 3] for the block."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the temporal context (after a scrub, jump, reset or mode change)."""

    def warm_up(self, height: int, width: int, report: Callable[[str], object] = lambda message: None) -> None:
        """Make every shape ready (compile, load) before the first block, on the thread that refines."""

    def prepare(self, source: torch.Tensor, source_indices: tuple[int, ...]) -> None:
        """Do the camera-independent work of the next block (source uint8 [T, H, W, 3], scene frames
        `source_indices`) while the worker waits for its request."""

    def is_prepared(self, source_indices: tuple[int, ...] | None) -> bool:
        """Whether the next refine() of a block with these source frames skips prepared work."""
        return False

    def cache_stats(self) -> dict | None:
        """Counters of the refiner's caches for the session summary; None: it keeps none."""
        return None

    def close(self) -> None:
        """Stop background work (at the end of a session)."""


def push_pull_fill(image: torch.Tensor, valid: torch.Tensor, levels: int = 8) -> torch.Tensor:
    """Fill invalid pixels from a masked pyramid (push: average valid pixels down; pull: take the
    coarser level where a pixel has no support). image: float [T, C, H, W]; valid: float [T, 1, H, W]
    in {0, 1}. Returns float [T, C, H, W]; valid pixels are returned unchanged."""
    weighted, weights = [image * valid], [valid]                      # level 0
    for _ in range(levels):
        if min(weights[-1].shape[-2:]) <= 1:
            break
        weighted.append(F.avg_pool2d(weighted[-1], 2, ceil_mode=True))  # [T, C, h/2, w/2]
        weights.append(F.avg_pool2d(weights[-1], 2, ceil_mode=True))    # [T, 1, h/2, w/2]
    filled = weighted[-1] / weights[-1].clamp_min(1e-8)
    for level in range(len(weighted) - 2, -1, -1):
        w = weights[level]
        coarse = F.interpolate(filled, size=w.shape[-2:], mode="bilinear", align_corners=False)  # [T, C, h, w]
        mean = weighted[level] / w.clamp_min(1e-8)
        alpha = w.clamp(0, 1)                                            # support of this level
        filled = alpha * mean + (1 - alpha) * coarse
    return torch.where(valid > 0, image, filled)                                        # [T, C, H, W]


class GeometryRefiner(Refiner):
    """Shows the point-cloud render with holes filled cheaply (push-pull). Weight-free and stateless."""
    name = "geometry"
    fused_world = True
    display_draws = True

    def __init__(self, fill_levels: int = 8):
        self.fill_levels = fill_levels

    def frames_for_block(self, first: bool) -> int:
        return 12

    def refine(self, block: RefineInput) -> torch.Tensor:
        image = block.render.permute(0, 3, 1, 2).float()                  # [T, 3, H, W]
        valid = block.mask[:, None].float()                                # [T, 1, H, W]
        out = push_pull_fill(image, valid, self.fill_levels)
        return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # [T, H, W, 3]
