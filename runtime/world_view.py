"""One displayed frame of the world, drawn with OpenGL from any camera: depth layers in priority order
(runtime/depth_warp.py), then the pixels none of them covers filled by push-pull.

The first layer that covers a pixel shows there: a generated frame warped from the camera it was
made for, then the current source frame, then a source frame that sees what the others do not.
What no layer covers (space no camera saw, the view's border after a large move) is filled by
push-pull: the covered pixels' mip pyramid (push), then from the coarsest level down each level is
laid over the upsampled level below it (pull), so a hole takes the colours around it, smoothly.

`render` leaves the frame in `frame` (RGBA8, image rows top first); `read` copies it to the host.
"""
from __future__ import annotations

import numpy as np

from runtime.depth_warp import FULLSCREEN_VS, DepthWarp, LayerStack, WarpSettings

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


class WorldView:
    """Draws the world at display size (width, height) from a camera, into `frame`."""

    def __init__(self, ctx, size: tuple[int, int], settings: WarpSettings = WarpSettings()):
        import moderngl
        self.ctx, self.size = ctx, size
        self.warp = DepthWarp(ctx, size, settings)
        self.layers = ctx.texture(size, 4, dtype="f2")        # half floats: the pyramid's averages stay exact enough
        self.layers.filter = (moderngl.LINEAR_MIPMAP_NEAREST, moderngl.LINEAR)
        self.layers.repeat_x = self.layers.repeat_y = False
        self.levels = int(np.log2(max(size))) + 1
        # the coarsest level whose texels each average a whole 2^k x 2^k block: below it, a level of odd
        # size drops its last row or column, so its mean is no longer the frame's
        self.exact_level = 0
        while self.exact_level + 1 < self.levels and all(s % (2 << self.exact_level) == 0 for s in size):
            self.exact_level += 1
        self.layer_fbo = ctx.framebuffer([self.layers])
        self.frame = ctx.texture(size, 4)
        self.frame_fbo = ctx.framebuffer([self.frame])
        self.pull = ctx.program(vertex_shader=FULLSCREEN_VS, fragment_shader=PULL_FS)
        self.pull["layers"], self.pull["coarser"] = 0, 1
        sizes = [(max(1, size[0] >> k), max(1, size[1] >> k)) for k in range(self.levels)]
        self.filled = [ctx.texture(s, 4, dtype="f2") for s in sizes[1:]]     # levels 1 .. n-1, pulled
        for tex in self.filled:
            tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
            tex.repeat_x = tex.repeat_y = False
        self.filled_fbos = [ctx.framebuffer([tex]) for tex in self.filled]
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4")
        self.vbo = ctx.buffer(quad.tobytes())
        self.pull_vao = ctx.vertex_array(self.pull, [(self.vbo, "2f", "in_pos")])

    def render(self, stack: LayerStack, order: list[tuple[int, int]], K: np.ndarray, c2w: np.ndarray) -> None:
        """order: (slot, splat stride) of the stack's images in priority order, first wins;
        K [3, 3], c2w [4, 4] of the display camera (OpenCV). Slots without an image are skipped."""
        self.layer_fbo.use()
        self.layer_fbo.clear(0.0, 0.0, 0.0, 0.0)
        self.warp.draw(stack, order, K, c2w)
        self.layers.build_mipmaps(0, self.levels - 1)                      # push
        self.layers.use(0)
        for level in range(self.levels - 1, -1, -1):                        # pull, coarsest first
            (self.filled_fbos[level - 1] if level else self.frame_fbo).use()
            (self.filled[level] if level + 1 < self.levels else self.filled[-1]).use(1)
            self.pull["level"], self.pull["coarsest"] = level, level + 1 == self.levels
            self.pull_vao.render(mode=5)                                    # TRIANGLE_STRIP

    def covered(self) -> float:
        """The share of the last rendered frame's pixels that a layer covered (before the fill): the
        mean coverage over the push pyramid's `exact_level`, a small read."""
        w, h = self.size[0] >> self.exact_level, self.size[1] >> self.exact_level
        texels = np.frombuffer(self.layers.read(level=self.exact_level), np.float16).reshape(h, w, 4)   # [h, w, 4]
        return float(np.clip(texels[..., 3].astype(np.float32).mean(), 0.0, 1.0))

    def read(self) -> np.ndarray:
        """The last rendered frame -> uint8 [H, W, 3], row 0 first."""
        w, h = self.size
        return np.frombuffer(self.frame_fbo.read(components=3, alignment=1), np.uint8).reshape(h, w, 3)

    def release(self) -> None:
        for obj in (self.pull_vao, self.vbo, self.pull, *self.filled_fbos, *self.filled, self.frame_fbo,
                    self.frame, self.layer_fbo, self.layers):
            obj.release()
        self.warp.release()
