"""How a video of any shape becomes the working size (scenes.fit): stretch, crop or pad.

    stretch  both axes scaled on their own, the whole picture kept but squashed (the reference's resize;
             `render` always uses it, so its outputs match the reference exactly)
    crop     one scale for both axes, the picture centred and its overflow cut (shape kept, edges lost)
    pad      one scale for both axes, the whole picture centred and the rest filled black (shape kept,
             bars added; their depth continues the picture's edge)

A `FrameFit` maps anything that covers the whole source picture (frames at the source resolution,
depth maps and intrinsics at a depth model's resolution) onto the working frame, so every depth
provider places its depth exactly under the pixels it belongs to. Conventions: sizes are (width,
height); K rows scale like `scenes.depth.base.scale_K` (the reference's), crops and bars shift cx, cy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from scenes.config import FIT_MODES


@dataclass(frozen=True)
class FrameFit:
    """mode: stretch | crop | pad; source: (w, h) of the picture as displayed; size: (W, H) working."""
    mode: str
    source: tuple[int, int]
    size: tuple[int, int]

    def __post_init__(self):
        if self.mode not in FIT_MODES:
            raise ValueError(f"scenes.fit={self.mode!r}: expected one of {', '.join(FIT_MODES)}")

    # ---------------------------------------------------------------- geometry
    def window(self, width: int, height: int) -> tuple[int, int, int, int]:
        """For a picture of width x height covering the source: the box (x0, y0, x1, y1) in its pixels
        that fills the working frame (crop: inside the picture; stretch and pad: the whole picture)."""
        if self.mode != "crop":
            return 0, 0, width, height
        W, H = self.size
        keep_w, keep_h = min(width, round(height * W / H)), min(height, round(width * H / W))
        x0, y0 = (width - keep_w) // 2, (height - keep_h) // 2
        return x0, y0, x0 + keep_w, y0 + keep_h

    def inner(self) -> tuple[int, int, int, int]:
        """The rectangle (x0, y0, x1, y1) of the working frame the picture lands on (pad: less than all)."""
        W, H = self.size
        if self.mode != "pad":
            return 0, 0, W, H
        w, h = self.source
        scale = min(W / w, H / h)
        iw, ih = min(W, max(1, round(w * scale))), min(H, max(1, round(h * scale)))
        x0, y0 = (W - iw) // 2, (H - ih) // 2
        return x0, y0, x0 + iw, y0 + ih

    @property
    def shape_change(self) -> float:
        """How much a stretch would change the picture's shape (0 = same aspect ratio)."""
        (w, h), (W, H) = self.source, self.size
        return abs((W / H) / (w / h) - 1)

    def describe(self) -> str:
        """One line saying what was done to the picture."""
        (w, h), (W, H) = self.source, self.size
        if self.mode == "stretch":
            return f"{w}x{h} stretched to {W}x{H} (its shape changed {self.shape_change:.0%}; scenes.fit=crop or pad keeps it)"
        if self.mode == "crop":
            x0, y0, x1, y1 = self.window(w, h)
            lost = f"{1 - (x1 - x0) / w:.0%} of the width" if x1 - x0 < w else f"{1 - (y1 - y0) / h:.0%} of the height"
            return f"{w}x{h} cropped to {x1 - x0}x{y1 - y0} ({lost} cut; scenes.fit=pad keeps all), scaled to {W}x{H}"
        x0, y0, x1, y1 = self.inner()
        return f"{w}x{h} scaled to {x1 - x0}x{y1 - y0} and padded to {W}x{H} (black bars; scenes.fit=crop fills the frame)"

    # ---------------------------------------------------------------- applying it
    def frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Source frames uint8 [T, h, w, 3] -> working frames uint8 [T, H, W, 3] (bilinear, antialias)."""
        x0, y0, x1, y1 = self.window(frames.shape[2], frames.shape[1])
        ix0, iy0, ix1, iy1 = self.inner()
        out = resize_frames(frames[:, y0:y1, x0:x1], ix1 - ix0, iy1 - iy0)             # [T, ih, iw, 3]
        W, H = self.size
        return F.pad(out, (0, 0, ix0, W - ix1, iy0, H - iy1)) if (ix1 - ix0, iy1 - iy0) != (W, H) else out

    def depth(self, depth: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Depth covering the source picture [N, h, w] (any resolution) -> float32 [N, H, W], nearest
        samples; pad's bars repeat the nearest edge depth."""
        d = torch.as_tensor(np.asarray(depth, dtype=np.float32) if not isinstance(depth, torch.Tensor) else depth)
        x0, y0, x1, y1 = self.window(d.shape[2], d.shape[1])
        ix0, iy0, ix1, iy1 = self.inner()
        out = resize_depth_nearest(d[:, y0:y1, x0:x1], ix1 - ix0, iy1 - iy0)            # [N, ih, iw]
        W, H = self.size
        if (ix1 - ix0, iy1 - iy0) == (W, H):
            return out
        return F.pad(out[:, None], (ix0, W - ix1, iy0, H - iy1), mode="replicate")[:, 0].contiguous()

    def K(self, K: np.ndarray, from_size: tuple[int, int]) -> np.ndarray:
        """Intrinsics [..., 3, 3] in pixels of a from_size picture covering the source -> float64 [..., 3, 3]
        in working pixels (stretch: exactly scale_K)."""
        x0, y0, x1, y1 = self.window(*from_size)
        ix0, iy0, ix1, iy1 = self.inner()
        K = np.array(K, dtype=np.float64)
        K[..., 0, 2] -= x0
        K[..., 1, 2] -= y0
        K[..., 0, :] *= (ix1 - ix0) / (x1 - x0)
        K[..., 1, :] *= (iy1 - iy0) / (y1 - y0)
        K[..., 0, 2] += ix0
        K[..., 1, 2] += iy0
        return K


# ---------------------------------------------------------------- resizing

def resize_frames(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Stretch-resize like the reference (bilinear, antialias, align_corners=False).

    frames: uint8 [T, h, w, 3]   ->   uint8 [T, height, width, 3]"""
    if frames.shape[1:3] == (height, width):
        return frames
    x = frames.permute(0, 3, 1, 2).float()                                           # [T, 3, h, w]
    x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()   # [T, H, W, 3]


def resize_depth_nearest(depth: np.ndarray | torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Nearest-neighbour stretch like cv2.INTER_NEAREST (source index floor(dst * in / out)).
    depth: [N, h, w] -> float32 [N, height, width]"""
    d = torch.as_tensor(np.asarray(depth, dtype=np.float32) if not isinstance(depth, torch.Tensor) else depth)
    d = d.to(torch.float32)
    if tuple(d.shape[1:]) == (height, width):
        return d.contiguous()
    return F.interpolate(d[:, None], size=(height, width), mode="nearest")[:, 0].contiguous()   # [N, H, W]
