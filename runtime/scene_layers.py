"""Which images the world view draws, and keeping them on the GPU: the newest generated frame (with
the camera it was made for and its depth), the source frame at the current world time, and a
second source frame that fills what those two do not show.

In priority order (runtime/depth_warp.py: the nearest surface shows, and of images that see one surface
the first):
- GENERATED: a refined frame (the DiT's), warped from its own camera to the display camera;
- LIVE: the source frame at the world time shown, all of it (moving things where they are now):
  with the geometry refiner this is the picture, with the DiT it shows where the warp has nothing
  (or a nearer surface the generated frame's camera could not see);
- FILL: the source frame whose camera is nearest the display camera, its static pixels only
  (moving things are elsewhere at its time): it sees much of what the live frame's camera cannot.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from runtime.depth_warp import LayerStack

GENERATED, LIVE, FILL = 0, 1, 2
FILL_STRIDE = 2               # the fill image only fills holes: a coarser splat is enough
SWITCH_GAIN = 0.8             # another fill frame is taken once its distance is below this share of the current one's


class SceneLayers:
    """frames uint8 [N, H, W, 3], depth float32 [N, H, W], K [N, 3, 3], c2w [N, 4, 4] (OpenCV) of the
    scene on the host; scale: the scene's walking scale (a turn of one radian counts as this far);
    static(i) -> bool [H, W] (True where source frame i shows the static world) or None when
    unknown (then the fill frame is drawn whole)."""

    def __init__(self, stack: LayerStack, frames: np.ndarray, depth: np.ndarray, K: np.ndarray, c2w: np.ndarray,
                 scale: float, static: Callable[[int], np.ndarray | None] = lambda i: None):
        if stack.slots < 3:
            raise ValueError(f"SceneLayers needs a stack of 3 slots, got {stack.slots}")
        self.stack, self.frames, self.depth, self.K, self.c2w = stack, frames, depth, K, c2w
        self.scale, self.static = scale, static
        self.centres = c2w[:, :3, 3]                                          # [N, 3]
        self.forwards = c2w[:, :3, 2]                                         # [N, 3]
        self.live_index: int | None = None
        self.fill_index: int | None = None

    def show_source(self, index: int) -> None:
        """The world time shown: source frame `index` becomes the LIVE image."""
        if index != self.live_index:
            self.stack.upload(LIVE, self.frames[index], self.depth[index], self.K[index], self.c2w[index])
            self.live_index = index

    def show_generated(self, frame: np.ndarray, depth: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> None:
        """A generated frame uint8 [H, W, 3] with its depth float32 [H, W] and camera becomes GENERATED."""
        self.stack.upload(GENERATED, frame, depth, K, c2w)

    def drop_generated(self) -> None:
        self.stack.valid[GENERATED] = False

    def fill_for(self, c2w: np.ndarray) -> None:
        """Take as FILL the source frame (other than the live one) whose camera is nearest `c2w`: the
        distance of the centres plus the angle between the view directions (radians x scale)."""
        cost = (np.linalg.norm(self.centres - c2w[:3, 3], axis=1)
                + self.scale * np.arccos(np.clip(self.forwards @ c2w[:3, 2], -1.0, 1.0)))     # [N]
        if self.live_index is not None:
            cost[self.live_index] = np.inf
            if self.fill_index == self.live_index:                           # the live frame moved onto it
                self.fill_index = None
        best = int(np.argmin(cost))
        if not np.isfinite(cost[best]) or best == self.fill_index:
            return
        if self.fill_index is not None and cost[best] > SWITCH_GAIN * cost[self.fill_index]:
            return                                                            # not clearly better: no flicker
        depth = self.depth[best]
        static = self.static(best)
        if static is not None:
            depth = np.where(static, depth, 0.0).astype(np.float32)           # moving things: no surface
        self.stack.upload(FILL, self.frames[best], depth, self.K[best], self.c2w[best])
        self.fill_index = best

    def order(self) -> list[tuple[int, int]]:
        """(slot, splat stride) of the images to draw, in priority order."""
        return [(GENERATED, 1), (LIVE, 1), (FILL, FILL_STRIDE)]
