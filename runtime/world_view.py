"""One displayed frame of the world, drawn with OpenGL from any camera: depth layers in priority order
(runtime/depth_warp.py), then the pixels none of them covers filled by push-pull.

The nearest surface the layers put on a pixel shows there, and of layers that see one surface the
first in priority order: a generated frame warped from the camera it was made for, then the current
source frame, then a source frame that sees what the others do not.
What no layer covers (space no camera saw, the view's border after a large move) is filled by
push-pull: the covered pixels' mip pyramid (push), then from the coarsest level down each level is
laid over the upsampled level below it (pull), so a hole takes the colours around it, smoothly.

With a render scale below 1 all of that is drawn at that share of the display size and then scaled
up (bilinear) to it: the cost of a software renderer (llvmpipe) goes with the pixels it draws.

`render` leaves the frame in `frame` (RGBA8, display size, image rows top first); `read` copies it to
the host.
"""
from __future__ import annotations

import numpy as np

from runtime.depth_warp import DepthWarp, FullscreenPass, LayerStack, WarpSettings

PULL_FS = """
#version 430
uniform sampler2D layers;         // premultiplied: rgb * coverage, a = coverage; mipmapped (the push)
uniform sampler2D coarser;        // the next coarser level, already filled
uniform int level;                // the level drawn
uniform bool coarsest;            // nothing below it: its colours are the covered share's average
out vec4 frag;

void main() {                     // this level over the coarser one: covered pixels keep their colour
    vec4 own = texelFetch(layers, ivec2(gl_FragCoord.xy), level);
    if (coarsest) { frag = own.a > 0.0 ? own / own.a : vec4(0.0); return; }
    vec4 below = texture(coarser, gl_FragCoord.xy / vec2(textureSize(layers, level)));
    frag = own + (1.0 - min(own.a, 1.0)) * below;
}
"""


UPSCALE_FS = """
#version 430
uniform sampler2D drawn;          // the frame at the render scale, bilinear
uniform vec2 size;                // the display size
out vec4 frag;

void main() { frag = texture(drawn, gl_FragCoord.xy / size); }
"""


def scaled_intrinsics(K: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """K [3, 3] of a camera whose image of from_size (w, h) is resampled to to_size: the same rays
    through the same image positions (pixel centres at integers, so u' + 0.5 = s (u + 0.5))."""
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return S @ np.asarray(K, np.float64)


class WorldView:
    """Draws the world at display size (width, height) from a camera, into `frame`; render_scale
    (0, 1]: the share of that size it draws at before scaling up."""

    def __init__(self, ctx, size: tuple[int, int], settings: WarpSettings = WarpSettings(), render_scale: float = 1.0):
        import moderngl
        self.ctx, self.size = ctx, size
        self.drawn_size = drawn = (max(1, round(size[0] * render_scale)), max(1, round(size[1] * render_scale)))
        self.frame = ctx.texture(size, 4)
        self.frame_fbo = ctx.framebuffer([self.frame])
        self.drawn, self.drawn_fbo, self.upscale = self.frame, self.frame_fbo, None
        if drawn != size:                                   # drawn smaller, then scaled up into frame
            self.drawn = ctx.texture(drawn, 4)
            self.drawn.filter = (moderngl.LINEAR, moderngl.LINEAR)
            self.drawn.repeat_x = self.drawn.repeat_y = False
            self.drawn_fbo = ctx.framebuffer([self.drawn])
            self.upscale = FullscreenPass(ctx, UPSCALE_FS)
            self.upscale["drawn"], self.upscale["size"] = 0, tuple(float(x) for x in size)
        self.warp = DepthWarp(ctx, drawn, settings)
        self.layers = ctx.texture(drawn, 4, dtype="f2")        # half floats: the pyramid's averages stay exact enough
        self.layers.filter = (moderngl.LINEAR_MIPMAP_NEAREST, moderngl.LINEAR)
        self.layers.repeat_x = self.layers.repeat_y = False
        self.levels = int(np.log2(max(drawn))) + 1
        # the coarsest level whose texels each average a whole 2^k x 2^k block: below it, a level of odd
        # size drops its last row or column, so its mean is no longer the frame's
        self.exact_level = 0
        while self.exact_level + 1 < self.levels and all(s % (2 << self.exact_level) == 0 for s in drawn):
            self.exact_level += 1
        self.layer_fbo = ctx.framebuffer([self.layers])
        self.pull = FullscreenPass(ctx, PULL_FS)
        self.pull["layers"], self.pull["coarser"] = 0, 1
        sizes = [(max(1, drawn[0] >> k), max(1, drawn[1] >> k)) for k in range(self.levels)]
        self.filled = [ctx.texture(s, 4, dtype="f2") for s in sizes[1:]]     # levels 1 .. n-1, pulled
        for tex in self.filled:
            tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
            tex.repeat_x = tex.repeat_y = False
        self.filled_fbos = [ctx.framebuffer([tex]) for tex in self.filled]

    def render(self, stack: LayerStack, order: list[tuple[int, int]], K: np.ndarray, c2w: np.ndarray) -> None:
        """order: (slot, splat stride) of the stack's images in priority order (first wins on one surface);
        K [3, 3] (at display size), c2w [4, 4] of the display camera (OpenCV). Slots without an image
        are skipped."""
        self.layer_fbo.use()
        self.layer_fbo.clear(0.0, 0.0, 0.0, 0.0)
        self.warp.draw(stack, order, scaled_intrinsics(K, self.size, self.drawn_size), c2w)
        self.layers.build_mipmaps(0, self.levels - 1)                      # push
        self.layers.use(0)
        for level in range(self.levels - 1, -1, -1):                        # pull, coarsest first
            (self.filled_fbos[level - 1] if level else self.drawn_fbo).use()
            (self.filled[level] if level + 1 < self.levels else self.filled[-1]).use(1)
            self.pull["level"], self.pull["coarsest"] = level, level + 1 == self.levels
            self.pull.draw()
        if self.upscale is not None:
            self.frame_fbo.use()
            self.drawn.use(0)
            self.upscale.draw()

    def covered(self) -> float:
        """The share of the last rendered frame's pixels that a layer covered (before the fill): the
        mean coverage over the push pyramid's `exact_level`, a small read."""
        w, h = self.drawn_size[0] >> self.exact_level, self.drawn_size[1] >> self.exact_level
        texels = np.frombuffer(self.layers.read(level=self.exact_level), np.float16).reshape(h, w, 4)   # [h, w, 4]
        return float(np.clip(texels[..., 3].astype(np.float32).mean(), 0.0, 1.0))

    def read(self) -> np.ndarray:
        """The last rendered frame -> uint8 [H, W, 3], row 0 first."""
        w, h = self.size
        return np.frombuffer(self.frame_fbo.read(components=3, alignment=1), np.uint8).reshape(h, w, 3)

    def release(self) -> None:
        if self.upscale is not None:
            for obj in (self.upscale, self.drawn_fbo, self.drawn):
                obj.release()
        for obj in (self.pull, *self.filled_fbos, *self.filled, self.frame_fbo,
                    self.frame, self.layer_fbo, self.layers):
            obj.release()
        self.warp.release()
