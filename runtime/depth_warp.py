"""Warping depth images with OpenGL: frames with per-pixel depth, each seen from its own camera, drawn
together from another camera, exactly where the geometry allows and nowhere else.

The images live in a `LayerStack` (texture arrays: colour and inverse depth, one slot per image,
with its camera). `DepthWarp.draw` renders a list of them in priority order, in two passes:
1. splat (compute shader, once per image): every source pixel moves to the target camera and
   leaves a key (its target depth, lengthened by SAME_SURFACE per rank of its image, then the rank)
   on the target pixels around where it lands, as far as its neighbours on the same surface land
   (the inverse depth's slope, drawn once per image at upload: no cracks where a surface is seen
   more squarely than by its camera), by atomic min. So each target pixel learns the nearest
   surface any image puts there, and of images that see one surface (depths within SAME_SURFACE)
   the first in priority order: a later image never covers an earlier one's surface, but shows
   what it sees in front of it (what the earlier camera saw from behind or not at all); pixels no
   image reaches stay empty: what no camera saw (disocclusions, the border) is never stretched over.
2. refine (fragment shader, once): a later image's win stands only where no earlier camera saw
   past its surface (else a splat reached beyond that surface's edge, and the earlier image shows);
   each covered pixel's viewing ray is moved to the depth of the winning image's surface where it
   projects (fixed-point steps from the splat's depth, with inverse depth sampled bilinearly, which
   is exact on planes), and its colour is the bilinear sample of that image there, from the pixels
   of that surface only (none across a depth edge; none at all: the pixel stays empty). A pure
   rotation needs no depth: the ray projects to the homography's point whatever its depth.

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

EMPTY_KEY = 0xFFFFFFFF        # the z-buffer's "nothing landed here"
SAME_SURFACE = 0.1            # depths within this share are one surface: of neighbouring pixels, and of two images at a pixel
MAX_REACH = 3.0               # the farthest (target pixels per splat stride) a splat reaches from where it lands
MAX_LAYERS = 8                # images drawn at once (the key's low 3 bits hold the rank)
SPLAT_STRIDES = (1, 2)        # source pixel strides a splat can take
RANK_SCALE = (1.0 + SAME_SURFACE) ** np.arange(MAX_LAYERS)   # how much farther each rank's depths count in the z-buffer

FULLSCREEN_VS = """
#version 430
in vec2 in_pos;
void main() { gl_Position = vec4(in_pos, 0.0, 1.0); }
"""
QUAD = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4")             # the viewport as a triangle strip


class FullscreenPass:
    """A fragment shader run once per pixel of the bound framebuffer: uniforms by name (`pass["x"]`),
    `draw()` to run it."""

    def __init__(self, ctx, fragment_shader: str):
        self.program = ctx.program(vertex_shader=FULLSCREEN_VS, fragment_shader=fragment_shader)
        self._quad = ctx.buffer(QUAD.tobytes())
        self._vao = ctx.vertex_array(self.program, [(self._quad, "2f", "in_pos")])

    def __getitem__(self, name: str):
        return self.program[name]

    def __setitem__(self, name: str, value) -> None:
        self.program[name] = value

    def draw(self) -> None:
        self._vao.render(mode=5)                                       # TRIANGLE_STRIP

    def release(self) -> None:
        for obj in (self._vao, self._quad, self.program):
            obj.release()

CLEAR_FS = """
#version 430
out uint key;
void main() { key = EMPTY_KEY; }
""".replace("EMPTY_KEY", f"{EMPTY_KEY}u")

SPLAT_CS = """
#version 430
layout(local_size_x = 16, local_size_y = 8) in;
uniform sampler2DArray inv_depth;                                    // 1 / z, 0 = no surface
uniform sampler2D slope;                                             // the image's d(1/z)/du, d(1/z)/dv (SLOPE_FS)
layout(r32ui, binding = 1) uniform uimage2D zbuf;                    // ranked target z's bits, low 3: rank
uniform int slot;           // the image's slot in the stack
uniform uint rank;          // its priority (0 wins)
uniform float rank_scale;   // (1 + SAME_SURFACE)^rank: how much farther its depths count
uniform mat3 M;             // K_t R K_s^-1
uniform vec3 e;             // K_t t: a source pixel q with inverse depth I lands at M q + I e (times z_t I)
uniform ivec2 src_size;
uniform ivec2 dst_size;
uniform float near;
uniform float focal_ratio;  // f_t / f_s: a source pixel covers about focal_ratio z_s / z_t target pixels

void main() {
    ivec2 q = ivec2(gl_GlobalInvocationID.xy) * STRIDE;     // every STRIDE-th source pixel (cheaper, coarser)
    if (any(greaterThanEqual(q, src_size))) return;
    float I = texelFetch(inv_depth, ivec3(q, slot), 0).r;
    if (I <= 0.0) return;
    vec3 h = M * vec3(vec2(q), 1.0) + I * e;
    float z = h.z / I;                                    // target camera z
    if (z <= near) return;
    vec2 p = h.xy / h.z;
    // a positive float's bits order like the float; a later image's depth counts farther (rank_scale),
    // so it wins only where its surface is nearer than an earlier image's by more than SAME_SURFACE
    uint key = (floatBitsToUint(z * rank_scale) & ~7u) | rank;
    // the target pixels around p within reach of this sample: half of where its neighbours on the same
    // surface land, plus a quarter pixel (a surface seen more squarely than by its camera spreads its
    // samples: no cracks between them); at least the depth ratio's 0.75-1 pixel (rotated grids) and at
    // most MAX_REACH, per STRIDE. The slope is the pixel's own surface's, so at a silhouette a nearer
    // surface spreads little over a farther one.
    vec2 g = texelFetch(slope, q, 0).rg;
    vec3 hu = M[0] + g.x * e, hv = M[1] + g.y * e;        // h's change per source pixel right, down
    vec2 pu = (hu.xy - p * hu.z) / h.z, pv = (hv.xy - p * hv.z) / h.z;
    float isotropic = clamp(0.75 * focal_ratio / h.z, 0.75, 1.0);
    vec2 reach = float(STRIDE) * clamp(0.5 * (abs(pu) + abs(pv)) + 0.25, isotropic, MAX_REACH);
    ivec2 lo = max(ivec2(floor(p - reach)) + 1, ivec2(0)), hi = min(ivec2(ceil(p + reach)) - 1, dst_size - 1);
    for (int y = lo.y; y <= hi.y; ++y)
        for (int x = lo.x; x <= hi.x; ++x)
            if (rank == 0u || imageLoad(zbuf, ivec2(x, y)).r > key)   // a load is cheaper than an atomic that loses
                imageAtomicMin(zbuf, ivec2(x, y), key);
}
""".replace("MAX_REACH", f"{MAX_REACH:.1f}")

SLOPE_FS = """
#version 430
uniform sampler2DArray inv_depth;   // 1 / z, 0 = no surface
uniform int slot;
uniform ivec2 size;
uniform float same_surface;         // neighbours within this share of the inverse depth are on the same surface
out vec2 slope;                     // d(1/z)/du, d(1/z)/dv on this pixel's surface

float inv_at(ivec2 q) {
    return all(greaterThanEqual(q, ivec2(0))) && all(lessThan(q, size)) ? texelFetch(inv_depth, ivec3(q, slot), 0).r : 0.0;
}

// the inverse depth's step per pixel along d on this pixel's surface: the neighbours on it are those
// close in inverse depth or in line with the other side (any plane, however slanted); 0 with none
float step_along(ivec2 q, ivec2 d, float I) {
    float before = inv_at(q - d), after = inv_at(q + d);
    float down = I - before, up = after - I;
    bool in_line = before > 0.0 && after > 0.0 && abs(up - down) <= same_surface * max(abs(up), abs(down));
    bool has_before = before > 0.0 && (in_line || abs(down) <= same_surface * I);
    bool has_after = after > 0.0 && (in_line || abs(up) <= same_surface * I);
    return has_before && has_after ? 0.5 * (down + up) : has_after ? up : has_before ? down : 0.0;
}

void main() {
    ivec2 q = ivec2(gl_FragCoord.xy);
    float I = inv_at(q);
    slope = I > 0.0 ? vec2(step_along(q, ivec2(1, 0), I), step_along(q, ivec2(0, 1), I)) : vec2(0.0);
}
"""

REFINE_FS = """
#version 430
uniform sampler2DArray colour_tex;     // RGB, row 0 first
uniform sampler2DArray inv_depth_tex;  // 1 / camera z, bilinear (inverse depth is linear across a plane)
uniform usampler2D zbuf;               // the splat's key per pixel
uniform int slot_of[MAX_LAYERS];       // rank -> slot
uniform mat3 A[MAX_LAYERS];            // per rank: target pixel (u, v, 1) -> a = K_s R^T K_t^-1 (u, v, 1)
uniform vec3 b[MAX_LAYERS];            // per rank: K_s R^T t; at target inverse depth s the ray is at source a - s b
uniform mat3 M[MAX_LAYERS];            // per rank: the splat's M and e (source pixel q, inverse depth I lands at M q + I e)
uniform vec3 e[MAX_LAYERS];
uniform float rank_scale[MAX_LAYERS]; // per rank: the splat's rank_scale
uniform vec2 src_size;
uniform int fixed_point_steps;
out vec4 frag;

void main() {
    uint key = texelFetch(zbuf, ivec2(gl_FragCoord.xy), 0).r;
    if (key == 0xFFFFFFFFu) discard;                               // no surface lands here
    int rank = int(key & 7u);
    float s = 1.0 / uintBitsToFloat(key & ~7u);
    vec3 here = vec3(gl_FragCoord.xy - 0.5, 1.0);
    if (rank > 0) {
        s *= rank_scale[rank];
        // a later image's surface in front of an earlier one's shows only where the earlier camera did
        // not see past it (a surface that camera could not see: its far side, or behind something);
        // where it saw past, the later image's splat reached beyond that surface's edge, and the
        // earlier image shows
        for (int r = 0; r < rank; ++r) {
            vec3 h = A[r] * here - s * b[r];
            vec2 x = h.xy / h.z;
            if (h.z <= 0.0 || any(lessThan(x, vec2(-0.5))) || any(greaterThanEqual(x, src_size - 0.5))) continue;
            float seen = texelFetch(inv_depth_tex, ivec3(ivec2(round(x)), slot_of[r]), 0).r;
            if (seen > 0.0 && seen * (1.0 + SAME_SURFACE) < s / h.z) { rank = r; break; }
        }
    }
    float layer = float(slot_of[rank]);
    vec3 a = A[rank] * here, bb = b[rank];
    for (int i = 0; i < fixed_point_steps; ++i) {                  // to the surface where the ray projects
        vec3 h = a - s * bb;
        s = h.z * texture(inv_depth_tex, vec3((h.xy / h.z + 0.5) / src_size, layer)).r;
    }
    vec3 h = a - s * bb;
    vec2 x = h.xy / h.z;                                           // where the ray meets the image
    float I = s / h.z;                                             // its surface's inverse depth there
    // bilinear colour from the four pixels around x that show the surface there: a pixel within
    // SAME_SURFACE of its depth, or one whose own depth would move x less than a pixel from where the
    // surface lands (so a rotation, which needs no depth, keeps all four). None: the splat reached
    // past the surface's edge (its neighbour across the edge is another surface), so the image has
    // nothing here and the pixel stays empty
    vec3 uv = vec3((x + 0.5) / src_size, layer);
    vec4 around = textureGather(inv_depth_tex, uv);               // pixels (0, 1), (1, 1), (1, 0), (0, 0) from floor(x)
    bvec4 keep = lessThanEqual(abs(around - I), vec4(SAME_SURFACE * I));
    if (!all(keep)) {                                              // at a depth edge: where would each land?
        vec3 mx = M[rank] * vec3(x, 1.0);
        vec2 lands = (mx.xy + I * e[rank].xy) / (mx.z + I * e[rank].z);
        for (int j = 0; j < 4; ++j) {
            vec3 g = mx + around[j] * e[rank];
            keep[j] = keep[j] || (g.z > 0.0 && distance(g.xy / g.z, lands) <= 1.0);
        }
    }
    if (all(keep)) {                                               // one surface: the filtered sample
        frag = vec4(texture(colour_tex, uv).rgb, 1.0);
        return;
    }
    if (!any(keep)) discard;
    ivec2 p0 = ivec2(floor(x));
    vec2 f = x - vec2(p0);
    const ivec2 corner[4] = ivec2[4](ivec2(0, 1), ivec2(1, 1), ivec2(1, 0), ivec2(0, 0));
    vec4 sum = vec4(0.0);
    for (int j = 0; j < 4; ++j) {
        if (!keep[j]) continue;
        ivec2 o = corner[j];
        float w = mix(1.0 - f.x, f.x, float(o.x)) * mix(1.0 - f.y, f.y, float(o.y));
        ivec3 t = ivec3(clamp(p0 + o, ivec2(0), ivec2(src_size) - 1), slot_of[rank]);
        sum += w * vec4(texelFetch(colour_tex, t, 0).rgb, 1.0);
    }
    if (sum.a <= 0.0) discard;
    frag = vec4(sum.rgb / sum.a, 1.0);
}
""".replace("MAX_LAYERS", str(MAX_LAYERS)).replace("SAME_SURFACE", f"{SAME_SURFACE}")


@dataclass(frozen=True)
class WarpSettings:
    """fixed_point_steps: refinements of the splat's depth along each target pixel's ray;
    near: surfaces nearer than this to the target camera (scene units) are not drawn."""
    fixed_point_steps: int = 1
    near: float = 0.05


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


class LayerStack:
    """Depth images of one size on the GL side: colour (RGB8) and inverse depth (R32F, 0 = no
    surface) in texture arrays, one slot per image, with each slot's camera. Uploads go through
    pixel buffers (a ring, orphaned on reuse): the copy into the texture runs on the GPU when it gets
    there, instead of the driver converting and copying on the display's thread."""

    RING = 3                   # pixel buffers per texture: an upload never waits for one still in use

    def __init__(self, ctx, size: tuple[int, int], slots: int):
        import moderngl
        self.ctx, self.size, self.slots = ctx, size, slots
        w, h = size
        self.colour = ctx.texture_array((*size, slots), 3)
        self.inv_depth = ctx.texture_array((*size, slots), 1, dtype="f4")
        for tex in (self.colour, self.inv_depth):
            tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
            tex.repeat_x = tex.repeat_y = False
        # each slot's inverse-depth slope, drawn at upload (a fragment pass: llvmpipe runs those about 3x
        # cheaper than a compute pass); one texture per slot, as a framebuffer draws into one
        self.slope = [ctx.texture(size, 2, dtype="f4") for _ in range(slots)]
        self._slope_fbos = [ctx.framebuffer([tex]) for tex in self.slope]
        self._slope_pass = FullscreenPass(ctx, SLOPE_FS)
        self._slope_pass["inv_depth"], self._slope_pass["size"], self._slope_pass["same_surface"] = 0, size, SAME_SURFACE
        self._buffers = {tex: [ctx.buffer(reserve=w * h * bytes_per_pixel, dynamic=True) for _ in range(self.RING)]
                         for tex, bytes_per_pixel in ((self.colour, 3), (self.inv_depth, 4))}
        self._next = 0
        self.K = [np.eye(3)] * slots
        self.c2w = [np.eye(4)] * slots
        self.valid = [False] * slots

    def upload(self, slot: int, colour: np.ndarray, depth: np.ndarray, K: np.ndarray, c2w: np.ndarray) -> None:
        """colour uint8 [H, W, 3], depth float32 [H, W] camera z (> 0 and finite; others are no
        surface), K [3, 3], c2w [4, 4]."""
        w, h = self.size
        if colour.shape != (h, w, 3) or depth.shape != (h, w):
            raise ValueError(f"LayerStack: expected colour [{h}, {w}, 3] and depth [{h}, {w}], got "
                             f"{list(colour.shape)} and {list(depth.shape)}")
        depth = np.asarray(depth, dtype=np.float32)
        ok = np.isfinite(depth) & (depth > 0)
        inv = np.divide(1.0, depth, out=np.zeros_like(depth), where=ok)                 # [H, W]
        viewport = (0, 0, slot, w, h, 1)
        for tex, data in ((self.colour, np.ascontiguousarray(colour, dtype=np.uint8)), (self.inv_depth, inv)):
            buffer = self._buffers[tex][self._next]
            buffer.orphan()
            buffer.write(data)
            tex.write(buffer, viewport=viewport, alignment=1)
        self._next = (self._next + 1) % self.RING
        bound = self.ctx.fbo
        self._slope_fbos[slot].use()
        self.inv_depth.use(0)
        self._slope_pass["slot"] = slot
        self._slope_pass.draw()
        if bound is not None:                                            # as it was (none before a first use)
            bound.use()
        self.K[slot], self.c2w[slot] = np.asarray(K, np.float64), np.asarray(c2w, np.float64)
        self.valid[slot] = bool(ok.any())

    def release(self) -> None:
        for buffers in self._buffers.values():
            for buffer in buffers:
                buffer.release()
        for obj in (self._slope_pass, *self._slope_fbos, *self.slope, self.colour, self.inv_depth):
            obj.release()


class DepthWarp:
    """`draw(stack, order, K, c2w)` renders the stack's images `order` = [(slot, stride), ...]
    (first wins) from camera (K, c2w) into the bound framebuffer of `size`: colour with alpha 1
    where an image covers a pixel, nothing elsewhere. `stride` (in SPLAT_STRIDES) > 1 splats every
    stride-th source pixel only (cheaper, for images that fill holes). Needs OpenGL 4.3 (compute)."""

    def __init__(self, ctx, size: tuple[int, int], settings: WarpSettings = WarpSettings()):
        self.ctx, self.size, self.settings = ctx, size, settings
        self.splats = {stride: ctx.compute_shader(SPLAT_CS.replace("#version 430", f"#version 430\n#define STRIDE {stride}"))
                       for stride in SPLAT_STRIDES}
        self.refine = FullscreenPass(ctx, REFINE_FS)
        self.zbuf = ctx.texture(size, 1, dtype="u4")
        self.clear = FullscreenPass(ctx, CLEAR_FS)    # drawn: no empty key buffer uploaded each frame
        self._zbuf_fbo = ctx.framebuffer([self.zbuf])
        for splat in self.splats.values():
            splat["dst_size"], splat["near"], splat["inv_depth"], splat["slope"] = size, settings.near, 0, 3
        for name, value in (("colour_tex", 0), ("inv_depth_tex", 1), ("zbuf", 2),
                            ("fixed_point_steps", settings.fixed_point_steps)):
            self.refine[name] = value
        self.refine["rank_scale"].write(RANK_SCALE.astype("f4").tobytes())

    def draw(self, stack: LayerStack, order: list[tuple[int, int]], K: np.ndarray, c2w: np.ndarray) -> None:
        order = [(slot, stride) for slot, stride in order if stack.valid[slot]]
        if len(order) > MAX_LAYERS:
            raise ValueError(f"DepthWarp: at most {MAX_LAYERS} images at once, got {len(order)}")
        target = self.ctx.fbo
        self._zbuf_fbo.use()
        self.clear.draw()
        target.use()
        self.ctx.memory_barrier()
        stack.inv_depth.use(0)
        self.zbuf.bind_to_image(1, read=True, write=True)
        A, b, M, e = np.zeros((MAX_LAYERS, 3, 3)), np.zeros((MAX_LAYERS, 3)), np.zeros((MAX_LAYERS, 3, 3)), np.zeros((MAX_LAYERS, 3))
        slots = np.zeros(MAX_LAYERS, np.int32)
        for rank, (slot, stride) in enumerate(order):
            u = warp_uniforms(stack.K[slot], stack.c2w[slot], K, c2w)
            splat = self.splats[stride]
            splat["M"].write(u["M"].T.astype("f4").tobytes())            # GLSL matrices are column-major
            splat["e"] = tuple(float(x) for x in u["e"])
            splat["focal_ratio"] = float(K[0][0] / stack.K[slot][0, 0])
            splat["src_size"], splat["slot"], splat["rank"], splat["rank_scale"] = stack.size, slot, rank, float(RANK_SCALE[rank])
            stack.slope[slot].use(3)
            splat.run(-(-stack.size[0] // (16 * stride)), -(-stack.size[1] // (8 * stride)))
            A[rank], b[rank], M[rank], e[rank], slots[rank] = u["A"].T, u["b"], u["M"].T, u["e"], slot
        self.ctx.memory_barrier()
        for name, value in (("A", A), ("b", b), ("M", M), ("e", e)):
            self.refine[name].write(value.astype("f4").tobytes())
        self.refine["slot_of"].write(slots.tobytes())
        self.refine["src_size"] = tuple(float(x) for x in stack.size)
        stack.colour.use(0)
        stack.inv_depth.use(1)
        self.zbuf.use(2)
        self.refine.draw()

    def release(self) -> None:
        for obj in (self.refine, self.clear, self._zbuf_fbo, *self.splats.values(), self.zbuf):
            obj.release()
