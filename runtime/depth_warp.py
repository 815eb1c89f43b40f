"""Warping depth images with OpenGL: a frame with per-pixel depth, seen from one camera, drawn from
another camera, exactly where the geometry allows and nowhere else.

Two passes per image:
1. splat (compute shader): every source pixel moves to the target camera and leaves its target
   depth in a z-buffer (atomic min) on the target pixels around where it lands. So every target
   pixel learns the nearest surface of the image that reaches it, and the pixels no surface reaches
   stay empty: what the source camera never saw (disocclusions, the border) is never stretched over.
2. refine (fragment shader): each covered target pixel's viewing ray is moved to the depth of the
   source surface where it projects (fixed-point steps from the splat's depth, with inverse depth
   sampled bilinearly, which is exact on planes), and its colour is the bilinear sample of the
   source frame there. A pure rotation needs no depth: the ray projects to the homography's point
   whatever its depth.

The cost does not grow with the camera motion (unlike a ray march along the epipolar line), and it
is per-pixel work that software rasterisers run well: a depth-displaced mesh would cost a triangle
per pixel instead (llvmpipe spends about 0.2 us of CPU per triangle).

Conventions: OpenCV cameras (+x right, +y down, +z forward), c2w [4, 4], K [3, 3] pixels with
pixel centres at integers. Images are stored with row 0 first, and the framebuffers drawn here
keep that order (framebuffer row v is image row v), so a read-back needs no flip.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EMPTY_Z = 0x7F800000          # +inf as float bits: the z-buffer's "nothing landed here"

FULLSCREEN_VS = """
#version 430
in vec2 in_pos;
void main() { gl_Position = vec4(in_pos, 0.0, 1.0); }
"""

SPLAT_CS = """
#version 430
layout(local_size_x = 16, local_size_y = 8) in;
layout(r32f, binding = 0) uniform readonly image2D inv_depth;    // source 1 / z, 0 = no surface
layout(r32ui, binding = 1) uniform uimage2D zbuf;                // target z as float bits
uniform mat3 M;           // K_t R K_s^-1
uniform vec3 e;           // K_t t: a source pixel q with inverse depth I lands at M q + I e (times z_t I)
uniform ivec2 src_size;
uniform ivec2 dst_size;
uniform float near;
uniform float focal_ratio;  // f_t / f_s: a source pixel covers about focal_ratio z_s / z_t target pixels

void put(ivec2 t, uint z) {
    if (all(greaterThanEqual(t, ivec2(0))) && all(lessThan(t, dst_size))) imageAtomicMin(zbuf, t, z);
}

void main() {
    ivec2 q = ivec2(gl_GlobalInvocationID.xy);
    if (any(greaterThanEqual(q, src_size))) return;
    float I = imageLoad(inv_depth, q).r;
    if (I <= 0.0) return;
    vec3 h = M * vec3(vec2(q), 1.0) + I * e;
    float z = h.z / I;                                    // target camera z
    if (z <= near) return;
    vec2 p = h.xy / h.z;
    uint zb = floatBitsToUint(z);
    // the 2x2 target pixels around p that lie within reach of this sample: half a pixel spacing
    // of the projected source grid, widened for rotated grids (no cracks) and kept under one pixel
    // (a nearer surface spreads little over a farther one at its silhouette)
    float reach = clamp(0.75 * focal_ratio / h.z, 0.75, 1.0);
    ivec2 t = ivec2(floor(p));
    for (int dy = 0; dy < 2; ++dy)
        for (int dx = 0; dx < 2; ++dx)
            if (all(lessThan(abs(vec2(t + ivec2(dx, dy)) - p), vec2(reach)))) put(t + ivec2(dx, dy), zb);
}
"""

REFINE_FS = """
#version 430
uniform sampler2D colour_tex;     // RGB, row 0 first
uniform sampler2D inv_depth_tex;  // 1 / camera z, bilinear (inverse depth is linear across a plane)
uniform usampler2D zbuf;          // the splat's nearest target z per pixel
uniform mat3 A;                   // target pixel (u, v, 1) -> a = K_s R^T K_t^-1 (u, v, 1)
uniform vec3 b;                   // K_s R^T t: at target inverse depth s the ray is at source a - s b
uniform vec2 src_size;
uniform vec2 sigma_range;         // target inverse depth (1 / far, 1 / near): the output depth's range
uniform int fixed_point_steps;
out vec4 frag;

// the target inverse depth at which the ray point has the depth of the source surface where it projects now
float surface(vec3 a, float s) {
    vec3 h = a - s * b;
    return h.z * texture(inv_depth_tex, (h.xy / h.z + 0.5) / src_size).r;
}

void main() {
    uint zb = texelFetch(zbuf, ivec2(gl_FragCoord.xy), 0).r;
    if (zb == 0x7F800000u) discard;                                // no surface lands here
    vec3 a = A * vec3(gl_FragCoord.xy - 0.5, 1.0);
    float s = 1.0 / uintBitsToFloat(zb);
    for (int i = 0; i < fixed_point_steps; ++i) s = surface(a, s);
    vec3 h = a - s * b;
    vec2 p = h.xy / h.z;
    frag = vec4(texture(colour_tex, (p + 0.5) / src_size).rgb, 1.0);
    gl_FragDepth = clamp((sigma_range.y - s) / (sigma_range.y - sigma_range.x), 0.0, 1.0);
}
"""


@dataclass(frozen=True)
class WarpSettings:
    """fixed_point_steps: refinements of the splat's depth along each target pixel's ray;
    near, far: the target camera's clip range (scene units)."""
    fixed_point_steps: int = 1
    near: float = 0.05
    far: float = 1e4


def warp_uniforms(src_K: np.ndarray, src_c2w: np.ndarray, tgt_K: np.ndarray, tgt_c2w: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """Uniforms for drawing source camera (K, c2w) from target camera (K, c2w). With
    T = w2c_t c2w_s = [R | t]: the splat's M = K_t R K_s^-1 and e = K_t t; the refinement's
    A = K_s R^T K_t^-1 and b = K_s R^T t (the target ray of pixel (u, v) at target depth w is the
    source homogeneous point w A (u, v, 1) - b)."""
    T = np.linalg.inv(np.asarray(tgt_c2w, np.float64)) @ np.asarray(src_c2w, np.float64)
    R, t = T[:3, :3], T[:3, 3]
    Ks, Kt = np.asarray(src_K, np.float64), np.asarray(tgt_K, np.float64)
    return {"M": Kt @ R @ np.linalg.inv(Ks), "e": Kt @ t, "A": Ks @ R.T @ np.linalg.inv(Kt), "b": Ks @ R.T @ t}


class DepthLayer:
    """One depth image on the GL side: colour (RGB8), inverse depth (R32F, 0 = no surface) and its camera."""

    def __init__(self, ctx, size: tuple[int, int]):
        import moderngl
        self.ctx, self.size = ctx, size
        self.colour = ctx.texture(size, 3)
        self.inv_depth = ctx.texture(size, 1, dtype="f4")
        for tex in (self.colour, self.inv_depth):
            tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
            tex.repeat_x = tex.repeat_y = False
        self.K, self.c2w = np.eye(3), np.eye(4)
        self.valid = False

    def upload(self, colour: np.ndarray, depth: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> None:
        """colour uint8 [H, W, 3], depth float32 [H, W] camera z (> 0 and finite; others are no
        surface), K [3, 3], c2w [4, 4]."""
        w, h = self.size
        if colour.shape != (h, w, 3) or depth.shape != (h, w):
            raise ValueError(f"DepthLayer: expected colour [{h}, {w}, 3] and depth [{h}, {w}], got "
                             f"{list(colour.shape)} and {list(depth.shape)}")
        depth = np.asarray(depth, dtype=np.float32)
        ok = np.isfinite(depth) & (depth > 0)
        inv = np.divide(1.0, depth, out=np.zeros_like(depth), where=ok)                 # [H, W]
        self.colour.write(np.ascontiguousarray(colour, dtype=np.uint8), alignment=1)
        self.inv_depth.write(np.ascontiguousarray(inv))
        self.K, self.c2w = np.asarray(K, np.float64), np.asarray(c2w, np.float64)
        self.valid = bool(ok.any())

    def release(self) -> None:
        self.colour.release()
        self.inv_depth.release()


class DepthWarp:
    """`draw(layer, K, c2w)` renders a DepthLayer from camera (K, c2w) into the bound framebuffer of
    `size`: RGBA with alpha 1 where covered and depth = target inverse depth mapped to [0, 1]
    (0 at `near`); uncovered pixels are not written. Needs OpenGL 4.3 (compute shaders)."""

    def __init__(self, ctx, size: tuple[int, int], settings: WarpSettings = WarpSettings()):
        self.ctx, self.size, self.settings = ctx, size, settings
        self.splat = ctx.compute_shader(SPLAT_CS)
        self.refine = ctx.program(vertex_shader=FULLSCREEN_VS, fragment_shader=REFINE_FS)
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4")
        self.vbo = ctx.buffer(quad.tobytes())
        self.vao = ctx.vertex_array(self.refine, [(self.vbo, "2f", "in_pos")])
        self.zbuf = ctx.texture(size, 1, dtype="u4")
        self._empty = np.full((size[1], size[0]), EMPTY_Z, dtype=np.uint32).tobytes()
        self.splat["dst_size"] = size
        self.splat["near"] = settings.near
        for name, value in (("colour_tex", 0), ("inv_depth_tex", 1), ("zbuf", 2),
                            ("fixed_point_steps", settings.fixed_point_steps),
                            ("sigma_range", (1.0 / settings.far, 1.0 / settings.near))):
            self.refine[name] = value

    def draw(self, layer: DepthLayer, K: np.ndarray, c2w: np.ndarray) -> None:
        if not layer.valid:
            return
        u = warp_uniforms(layer.K, layer.c2w, K, c2w)
        self.zbuf.write(self._empty)
        self.splat["M"].write(u["M"].T.astype("f4").tobytes())          # GLSL matrices are column-major
        self.splat["e"] = tuple(float(x) for x in u["e"])
        self.splat["focal_ratio"] = float(K[0][0] / layer.K[0, 0])
        self.splat["src_size"] = layer.size
        layer.inv_depth.bind_to_image(0, read=True, write=False)
        self.zbuf.bind_to_image(1, read=True, write=True)
        self.splat.run((layer.size[0] + 15) // 16, (layer.size[1] + 7) // 8)
        self.ctx.memory_barrier()
        self.refine["A"].write(u["A"].T.astype("f4").tobytes())
        self.refine["b"] = tuple(float(x) for x in u["b"])
        self.refine["src_size"] = tuple(float(x) for x in layer.size)
        layer.colour.use(0)
        layer.inv_depth.use(1)
        self.zbuf.use(2)
        self.vao.render(mode=5)                                          # TRIANGLE_STRIP

    def release(self) -> None:
        for obj in (self.vao, self.vbo, self.refine, self.splat, self.zbuf):
            obj.release()
