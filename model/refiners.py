"""Refiners turn a block's point-cloud render, its validity mask and the source frames into the
frames a person sees. `GeometryRefiner` needs no weights: it shows the render with holes filled by
push-pull (a masked image pyramid). `DiTRefiner` (model/dit_refiner.py) is the InSpatio-World model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

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


class Refiner(Protocol):
    name: str

    def reset(self) -> None:
        """Forget the temporal context (after a scrub, jump, reset or mode change)."""

    def frames_for_block(self, first: bool) -> int:
        """Output frames the next block yields (the DiT's first block after a reset is shorter)."""

    def refine(self, block: RefineInput) -> torch.Tensor:
        """Return output frames uint8 [T', H, W, 3] for the block."""


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
        coarse = F.interpolate(filled, size=w.shape[-2:], mode="bilinear", align_corners=False)
        mean = weighted[level] / w.clamp_min(1e-8)
        alpha = w.clamp(0, 1)                                            # support of this level
        filled = alpha * mean + (1 - alpha) * coarse
    return torch.where(valid > 0, image, filled)


class GeometryRefiner:
    """Shows the point-cloud render with holes filled cheaply (push-pull). Weight-free and stateless."""
    name = "geometry"

    def __init__(self, fill_levels: int = 8):
        self.fill_levels = fill_levels

    def reset(self) -> None:
        pass

    def frames_for_block(self, first: bool) -> int:
        return 12

    def refine(self, block: RefineInput) -> torch.Tensor:
        image = block.render.permute(0, 3, 1, 2).float()                  # [T, 3, H, W]
        valid = block.mask[:, None].float()                                # [T, 1, H, W]
        out = push_pull_fill(image, valid, self.fill_levels)
        return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # [T, H, W, 3]
