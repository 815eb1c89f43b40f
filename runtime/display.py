"""Displayed frames of a reprojected session: each one is the world drawn with OpenGL from the camera
pose at present time (runtime/world_view.py), with the newest content: the source frame at the
world time shown and, with a model refiner, the newest generated frame for that time, warped from
the camera it was generated for (runtime/scene_layers.py). The camera moves at the display's rate;
content changes at the world clock's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from runtime.depth_warp import LayerStack, WarpSettings
from runtime.hud import HudState
from runtime.scene_layers import SceneLayers
from runtime.world_view import WorldView

SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "Software Rasterizer")     # GL_RENDERER names of CPU rasterisers
SOFTWARE_RENDER_SCALE = 0.75     # render_scale "auto" there: about a quarter less CPU a frame (docs/performance.md)


def resolve_render_scale(render_scale: float | str, gl_renderer: str) -> float:
    """runtime.render_scale for this renderer: "auto" is 1 on a GPU and SOFTWARE_RENDER_SCALE on a CPU
    rasteriser, where every pixel drawn costs CPU the rest of the session needs."""
    if render_scale != "auto":
        return float(render_scale)
    return SOFTWARE_RENDER_SCALE if any(name in gl_renderer for name in SOFTWARE_RENDERERS) else 1.0


@dataclass(frozen=True)
class GeneratedView:
    """A generated frame to warp: key identifies it (a new key uploads it), frame uint8 [H, W, 3],
    depth float32 [H, W] camera z, K [3, 3], c2w [4, 4] the camera it was generated for."""
    key: object
    frame: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    c2w: np.ndarray


class Display:
    """Draws one displayed frame per `show` through `presenter` (a WindowPresenter or HeadlessPresenter:
    `ctx` and `present_texture`). scene: the Scene (host tensors); scale: its walking scale;
    static(i): bool [H, W] static pixels of source frame i, or None when unknown; render_scale: the
    share of the scene's size the world is drawn at before it is scaled up, or "auto"
    (resolve_render_scale)."""

    def __init__(self, presenter, scene, *, scale: float, static: Callable[[int], np.ndarray | None] = lambda i: None,
                 settings: WarpSettings = WarpSettings(), render_scale: float | str = "auto"):
        ctx = presenter.ctx
        size = (scene.width, scene.height)
        self.presenter, self.ctx = presenter, ctx
        with ctx:
            self.gl_renderer = ctx.info["GL_RENDERER"]
            self.render_scale = resolve_render_scale(render_scale, self.gl_renderer)
            self.view = WorldView(ctx, size, settings, self.render_scale)
            stack = LayerStack(ctx, size, 3)
        self.K = scene.K.double().numpy()                                        # [N, 3, 3]
        self.layers = SceneLayers(stack, scene.frames.numpy(), scene.depth.numpy(), self.K,
                                  scene.c2w.double().numpy(), scale, static)
        self._generated_key = None
        with ctx:                                    # the drivers compile for the first draw (0.2 s on llvmpipe):
            self._draw(self.layers.c2w[0], 0, None)  # done now, the session's first frame is drawn like the rest
        self._drawn: tuple | None = None            # what the frame texture holds: (c2w bytes, source, generated)
        self.seen: float | None = None              # share of the drawn frame the source frames covered (no
        #                                             generated frame: that covers what the model invented too)

    def show(self, c2w: np.ndarray, source_index: int, generated: GeneratedView | None, hud: HudState,
             at_s: float | None = None, on_read: Callable[[np.ndarray], None] | None = None) -> None:
        """Draw the world from camera c2w [4, 4] at source frame `source_index`, with `generated`
        warped over it, and present it (at_s: when, for a presenter that writes a video; on_read gets
        the frame uint8 [H, W, 3] once read back: see Presenter.present_texture)."""
        with self.ctx:
            wanted = (np.asarray(c2w, np.float64).tobytes(), source_index, None if generated is None else generated.key)
            if wanted != self._drawn:                # a still camera over still content is not drawn again
                self._draw(c2w, source_index, generated)
                self._drawn = wanted
            self.presenter.present_texture(self.view.frame, hud, at_s=at_s, on_read=on_read)

    def _draw(self, c2w: np.ndarray, source_index: int, generated: GeneratedView | None) -> None:
        self.layers.show_source(source_index)
        if generated is None:
            self.layers.drop_generated()
            self._generated_key = None
        elif generated.key != self._generated_key:
            self.layers.show_generated(generated.frame, generated.depth, generated.K, generated.c2w)
            self._generated_key = generated.key
        self.layers.fill_for(c2w)
        self.view.render(self.layers.stack, self.layers.order(), self.K[source_index], c2w)
        self.seen = self.view.covered() if generated is None else None

    def release(self) -> None:
        with self.ctx:
            self.layers.stack.release()
            self.view.release()
