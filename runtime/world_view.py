"""One displayed frame of the world, drawn with OpenGL from any camera: depth layers in priority order
(runtime/depth_warp.py), then the pixels none of them covers filled from a colour pyramid.

The first layer that covers a pixel shows there: a generated frame warped from the camera it was
made for, then the current source frame, then a source frame that sees what the others do not.
What no layer covers (space no camera saw, the view's border after a large move) is filled by
push-pull: the mip pyramid of the covered pixels, read at the finest level that has any.

`render` leaves the frame in `frame` (RGBA8, image rows top first); `read` copies it to the host.
"""
from __future__ import annotations

import numpy as np

from runtime.depth_warp import FULLSCREEN_VS, DepthWarp, LayerStack, WarpSettings

FILL_FS = """
#version 430
uniform sampler2D layers;         // premultiplied: rgb * coverage, a = coverage; mipmapped
uniform int levels;
out vec4 frag;

void main() {
    ivec2 q = ivec2(gl_FragCoord.xy);
    vec4 c = texelFetch(layers, q, 0);
    if (c.a < 1.0) {                                  // a hole: the finest pyramid level that reaches it
        vec2 uv = gl_FragCoord.xy / vec2(textureSize(layers, 0));
        for (int level = 1; level < levels; ++level) {
            vec4 coarse = textureLod(layers, uv, float(level));
            if (coarse.a > 1e-3) { c = vec4(coarse.rgb / coarse.a, 1.0); break; }
        }
    }
    frag = vec4(c.rgb, 1.0);
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
        self.layer_fbo = ctx.framebuffer([self.layers])
        self.frame = ctx.texture(size, 4)
        self.frame_fbo = ctx.framebuffer([self.frame])
        self.fill = ctx.program(vertex_shader=FULLSCREEN_VS, fragment_shader=FILL_FS)
        self.fill["layers"], self.fill["levels"] = 0, self.levels
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4")
        self.vbo = ctx.buffer(quad.tobytes())
        self.fill_vao = ctx.vertex_array(self.fill, [(self.vbo, "2f", "in_pos")])

    def render(self, stack: LayerStack, order: list[tuple[int, int]], K: np.ndarray, c2w: np.ndarray) -> None:
        """order: (slot, splat stride) of the stack's images in priority order, first wins;
        K [3, 3], c2w [4, 4] of the display camera (OpenCV). Slots without an image are skipped."""
        self.layer_fbo.use()
        self.layer_fbo.clear(0.0, 0.0, 0.0, 0.0)
        self.warp.draw(stack, order, K, c2w)
        self.layers.build_mipmaps(0, self.levels - 1)
        self.frame_fbo.use()
        self.layers.use(0)
        self.fill_vao.render(mode=5)                                    # TRIANGLE_STRIP

    def read(self) -> np.ndarray:
        """The last rendered frame -> uint8 [H, W, 3], row 0 first."""
        w, h = self.size
        return np.frombuffer(self.frame_fbo.read(components=3, alignment=1), np.uint8).reshape(h, w, 3)

    def release(self) -> None:
        for obj in (self.fill_vao, self.vbo, self.fill, self.frame_fbo, self.frame, self.layer_fbo, self.layers):
            obj.release()
        self.warp.release()
