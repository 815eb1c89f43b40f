"""Content of the built-in sample scene: procedural textures, meshes, the bouncing ball and the camera path.

Pure numpy and deterministic in the seed; no GL here (scenes/sample.py renders it). The "stage" frame is
right-handed with +y up, the ground at y = 0 and metres as units; the camera dollies sideways along
+x at z = 8 while looking roughly towards -z. Scene poses are re-anchored to the first camera
(scenes/sample.py), exactly as depth/pose estimators anchor real videos.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenes.glcamera import look_at_c2w

GRAVITY = 9.81                      # m/s^2
BALL_RADIUS = 0.35                  # m
BALL_PEAK = 1.4                     # m of bottom clearance at the top of each bounce
BALL_Z = -1.5                       # m, the plane the ball travels in
SKY_RADIUS = 150.0                  # m; the dome gives every pixel a finite depth
LIGHT_DIR = np.array([0.35, 0.85, 0.40]) / np.linalg.norm([0.35, 0.85, 0.40])   # [3]: towards the sun: towards the sun


@dataclass(frozen=True)
class Mesh:
    """Non-indexed triangles with the texture that paints them.

    vertices: float32 [V, 8] = position xyz (stage metres), normal xyz, uv; V is a multiple of 3."""
    name: str
    vertices: np.ndarray
    texture: str
    emissive: float = 0.0           # 1 = unlit (the sky), 0 = Lambert-lit


# ---------------------------------------------------------------- textures (uint8 [H, W, 3])

def _noise(rng: np.random.Generator, size: int, cells: int, octaves: int = 4) -> np.ndarray:
    """Tileable fractal value noise in [0, 1]. -> float32 [size, size]"""
    from scipy import ndimage             # here, not at the top: only a cache miss draws textures
    out, amp, total = np.zeros((size, size)), 1.0, 0.0                                  # [size, size]
    for o in range(octaves):
        c = min(cells * 2 ** o, size)
        grid = rng.random((c, c))
        out += amp * ndimage.zoom(grid, size / c, order=3, mode="grid-wrap")[:size, :size]
        total += amp
        amp *= 0.5
    out /= total
    return ((out - out.min()) / (np.ptp(out) + 1e-9)).astype(np.float32)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def _ground_texture(rng, size=512) -> np.ndarray:
    """Stone checker, 0.5 m tiles over a 4 m repeat, with grout and per-tile jitter."""
    tile = size // 8
    y, x = np.mgrid[0:size, 0:size]
    checker = ((x // tile + y // tile) % 2).astype(np.float32)
    jitter = rng.uniform(0.85, 1.15, (8, 8))[y // tile, x // tile]
    light, dark = np.array([0.78, 0.72, 0.62]), np.array([0.50, 0.47, 0.42])            # [3] each
    base = light * (1 - checker[..., None]) + dark * checker[..., None]
    shade = (0.72 + 0.45 * _noise(rng, size, 8)) * jitter
    grout = ((x % tile < 2) | (y % tile < 2)).astype(np.float32)
    rgb = base * shade[..., None] * (1 - 0.45 * grout[..., None])
    return _to_uint8(rgb)


def _brick_texture(rng, size=512) -> np.ndarray:
    """Running-bond bricks 0.25 x 0.125 m over a 2 m repeat."""
    bw, bh = size // 8, size // 16
    y, x = np.mgrid[0:size, 0:size]
    row = y // bh
    xs = x + (row % 2) * (bw // 2)
    col = (xs // bw) % 8
    tint = rng.uniform(0.75, 1.2, (16, 8))[row, col]
    mortar = ((xs % bw < 3) | (y % bh < 3)).astype(np.float32)[..., None]
    brick = np.array([0.62, 0.30, 0.22]) * (tint * (0.8 + 0.3 * _noise(rng, size, 16)))[..., None]  # [size, size, 3]
    return _to_uint8(brick * (1 - mortar) + np.array([0.72, 0.70, 0.66]) * mortar)      # [size, size, 3]


def _crate_texture(rng, size=256) -> np.ndarray:
    """One crate face (uv 0..1): vertical planks, wood grain and a darker frame."""
    y, x = np.mgrid[0:size, 0:size]
    grain = 0.5 + 0.5 * np.sin(40 * np.pi * x / size + 6 * _noise(rng, size, 4))
    plank = rng.uniform(0.85, 1.15, 6)[(x * 6) // size]
    seam = ((x * 6) % size < 6).astype(np.float32)
    frame = ((x < size // 10) | (x >= size - size // 10) | (y < size // 10) | (y >= size - size // 10))
    wood = np.array([0.70, 0.50, 0.28]) * (plank * (0.8 + 0.25 * grain))[..., None]     # [size, size, 3]
    wood = wood * (1 - 0.5 * seam[..., None])
    return _to_uint8(np.where(frame[..., None], wood * 0.7, wood))                      # [size, size, 3]


def _stone_texture(rng, size=256) -> np.ndarray:
    """Pillar stone: beige noise with horizontal courses every 0.5 m of a 2 m repeat."""
    y = np.mgrid[0:size, 0:size][0]
    course = ((y % (size // 4)) < 3).astype(np.float32)[..., None]
    rgb = np.array([0.80, 0.76, 0.68]) * (0.7 + 0.4 * _noise(rng, size, 8))[..., None]  # [size, size, 3]
    return _to_uint8(rgb * (1 - 0.35 * course))


def _facade_texture(rng, size=256, wall=(0.62, 0.64, 0.70)) -> np.ndarray:
    """Building facade, 4 m repeat: two windows per repeat and storey."""
    y, x = np.mgrid[0:size, 0:size]
    cell = size // 2
    wx, wy = x % cell, y % cell
    window = (wx > cell * 0.25) & (wx < cell * 0.75) & (wy > cell * 0.2) & (wy < cell * 0.7)
    glass = np.array([0.20, 0.28, 0.38]) * (0.7 + 0.6 * _noise(rng, size, 4))[..., None]  # [size, size, 3]
    wall_rgb = np.array(wall) * (0.8 + 0.3 * _noise(rng, size, 16))[..., None]          # [size, size, 3]
    return _to_uint8(np.where(window[..., None], glass, wall_rgb))                      # [size, size, 3]


def _ball_texture(rng, width=256, height=128) -> np.ndarray:
    """Beach ball: six coloured gores around the equator, so its spin is visible."""
    colours = np.array([[0.85, 0.12, 0.10], [0.95, 0.95, 0.92], [0.98, 0.80, 0.10],
                        [0.95, 0.95, 0.92], [0.12, 0.35, 0.85], [0.95, 0.95, 0.92]])    # [6, 3]
    x = np.mgrid[0:height, 0:width][1]
    rgb = colours[(x * 6) // width]
    return _to_uint8(rgb * (0.92 + 0.08 * _noise(rng, width, 4)[:height, :, None]))


def _sky_texture(rng, width=1024, height=256) -> np.ndarray:
    """Dome texture over (longitude, latitude top..bottom): blue gradient, clouds near the horizon."""
    lat = np.linspace(0.5, -0.5, height)[:, None] * np.pi                  # [H, 1] radians
    up = np.clip(np.sin(lat), 0.0, 1.0)
    zenith, horizon, below = np.array([0.25, 0.45, 0.80]), np.array([0.75, 0.85, 0.95]), np.array([0.55, 0.55, 0.52])  # [3] each
    sky = horizon + (zenith - horizon) * np.sqrt(up)[..., None]
    clouds = _noise(rng, width, 8)[:height] ** 2
    band = np.exp(-((lat - 0.18) / 0.14) ** 2)
    sky = sky + (1.0 - sky) * (clouds * band)[..., None] * 1.4
    sky = np.where((lat < 0)[..., None], below, sky)                                    # [H, 1, 3]
    return _to_uint8(np.broadcast_to(sky, (height, width, 3)))                          # [H, W, 3]


def make_textures(seed: int) -> dict[str, np.ndarray]:
    """Every texture of the scene, deterministic in `seed`. -> name -> uint8 [H, W, 3]"""
    rng = np.random.default_rng(seed)
    return {"ground": _ground_texture(rng), "brick": _brick_texture(rng), "crate": _crate_texture(rng),
            "stone": _stone_texture(rng), "facade": _facade_texture(rng),
            "facade_warm": _facade_texture(rng, wall=(0.78, 0.66, 0.52)), "ball": _ball_texture(rng),
            "sky": _sky_texture(rng)}


# ---------------------------------------------------------------- meshes

def _quad(center, a, b, normal, uv_size) -> np.ndarray:
    """Two triangles spanning center +- a +- b (half-extent vectors). -> float32 [6, 8]"""
    c, a, b = (np.asarray(v, dtype=np.float64) for v in (center, a, b))                 # [3] each
    corners = [c - a - b, c + a - b, c + a + b, c - a + b]
    uvs = [(0, 0), (uv_size[0], 0), (uv_size[0], uv_size[1]), (0, uv_size[1])]
    order = [0, 1, 2, 0, 2, 3]
    return np.array([[*corners[i], *normal, *uvs[i]] for i in order], dtype=np.float32)  # [6, 8]


def ground_vertices(half_extent_m: float, tex_m: float, tile_m: float = 4.0) -> np.ndarray:
    """The ground y = 0 as a grid of tile_m squares out to +- half_extent_m. Small triangles keep the
    rasteriser's depth exact (one 600 m quad loses ~1e-4 of relative depth to clipping). -> float32 [V, 8]"""
    edges = np.arange(-half_extent_m, half_extent_m, tile_m)                            # [E]
    x0, z0 = (a.ravel() for a in np.meshgrid(edges, edges))                          # [T]
    corners = np.array([(0, 0), (1, 0), (1, 1), (0, 0), (1, 1), (0, 1)], dtype=np.float64) * tile_m   # [6, 2]
    x = x0[:, None] + corners[None, :, 0]                                           # [T, 6]
    z = z0[:, None] + corners[None, :, 1]
    out = np.zeros(x.shape + (8,), dtype=np.float32)                                    # [T, 6, 8]
    out[..., 0], out[..., 2], out[..., 4] = x, z, 1.0
    out[..., 6], out[..., 7] = (x - x0[:, None]) / tex_m, (z - z0[:, None]) / tex_m  # local uv: exact in float32
    return out.reshape(-1, 8)                                                           # [T * 6, 8]


def box_vertices(center, size, yaw_deg=0.0, tex_m=None) -> np.ndarray:
    """Axis-aligned box turned by `yaw_deg` about +y. UVs are metres / tex_m, or 0..1 per face when
    tex_m is None. -> float32 [36, 8]"""
    c = np.asarray(center, dtype=np.float64)                                            # [3]
    t = np.radians(yaw_deg)
    axes = [np.array([np.cos(t), 0.0, -np.sin(t)]), np.array([0.0, 1.0, 0.0]), np.array([np.sin(t), 0.0, np.cos(t)])]  # [3] each
    half = 0.5 * np.asarray(size, dtype=np.float64)                                     # [3]
    faces = []
    for k in range(3):
        i, j = [m for m in range(3) if m != k]
        for sign in (1.0, -1.0):
            n = sign * axes[k]
            uv = (1.0, 1.0) if tex_m is None else (2 * half[i] / tex_m, 2 * half[j] / tex_m)
            faces.append(_quad(c + n * half[k], axes[i] * half[i], axes[j] * half[j], n, uv))
    return np.concatenate(faces)                                                        # [36, 8]


def cylinder_vertices(base, radius, height, tex_m, segments=24) -> np.ndarray:
    """Upright cylinder with smooth normals and a flat top. -> float32 [segments * 9, 8]"""
    bx, by, bz = base
    ang = np.linspace(0.0, 2 * np.pi, segments + 1)                                     # [segments + 1]
    tris = []
    for a0, a1 in zip(ang[:-1], ang[1:]):
        n0, n1 = np.array([np.cos(a0), 0, np.sin(a0)]), np.array([np.cos(a1), 0, np.sin(a1)])  # [3] each
        p = [np.array([bx, by, bz]) + radius * n + np.array([0, h, 0]) for n in (n0, n1) for h in (0.0, height)]  # [3] each
        u0, u1 = a0 * radius / tex_m, a1 * radius / tex_m
        v1 = height / tex_m
        rows = [(p[0], n0, u0, 0), (p[2], n1, u1, 0), (p[3], n1, u1, v1), (p[0], n0, u0, 0), (p[3], n1, u1, v1),
                (p[1], n0, u0, v1)]
        top = np.array([bx, by + height, bz])                                           # [3]
        rows += [(top, (0, 1, 0), 0.5, 0.5), (p[1], (0, 1, 0), 0.5 + n0[0] / 2, 0.5 + n0[2] / 2),
                 (p[3], (0, 1, 0), 0.5 + n1[0] / 2, 0.5 + n1[2] / 2)]
        tris += [[*pt, *nm, u, v] for pt, nm, u, v in rows]
    return np.array(tris, dtype=np.float32)                                             # [segments * 9, 8]


def sphere_vertices(radius, lon_segments=32, lat_segments=16, inward=False) -> np.ndarray:
    """UV sphere centred at the origin; u = longitude / 2 pi, v = 0 at the north pole.
    -> float32 [lon * lat * 6, 8]"""
    lon = np.linspace(0.0, 2 * np.pi, lon_segments + 1)                                 # [lon + 1]
    lat = np.linspace(0.0, np.pi, lat_segments + 1)                                     # [lat + 1]
    L, A = np.meshgrid(lon, lat)                                                    # [lat+1, lon+1]
    n = np.stack([np.sin(A) * np.cos(L), np.cos(A), np.sin(A) * np.sin(L)], axis=-1)  # [lat+1, lon+1, 3]
    uv = np.stack([L / (2 * np.pi), A / np.pi], axis=-1)                                # [lat+1, lon+1, 2]
    grid = np.concatenate([radius * n, -n if inward else n, uv], axis=-1)          # [lat+1, lon+1, 8]
    q00, q01, q10, q11 = grid[:-1, :-1], grid[:-1, 1:], grid[1:, :-1], grid[1:, 1:]
    tris = np.stack([q00, q10, q11, q00, q11, q01], axis=2)                         # [lat, lon, 6, 8]
    return tris.reshape(-1, 8).astype(np.float32)                                       # [lat * lon * 6, 8]


def make_static_meshes(seed: int) -> list[Mesh]:
    """Ground, walls, buildings, crates, pillars and the sky dome, jittered by `seed`."""
    rng = np.random.default_rng(seed + 1)

    def jit(scale):
        return rng.uniform(-scale, scale)

    meshes = [Mesh("sky", sphere_vertices(SKY_RADIUS, 64, 32, inward=True), "sky", emissive=1.0),
              Mesh("ground", ground_vertices(300.0, 4.0), "ground"),
              Mesh("wall", box_vertices((-9.0, 1.4, -9.0), (0.5, 2.8, 30.0), 0.0, tex_m=2.0), "brick")]
    buildings = [((-12, -32), (10, 12, 6)), ((-2, -38), (9, 16, 6)), ((7, -31), (8, 9, 6)),
                 ((16, -25), (7, 11, 7)), ((14, -8), (6, 7, 10))]
    for k, ((x, z), (w, h, d)) in enumerate(buildings):
        h = h * (1 + jit(0.15))
        meshes.append(Mesh(f"building{k}", box_vertices((x + jit(1), h / 2, z + jit(1)), (w, h, d), jit(8), 4.0),
                           "facade" if k % 2 == 0 else "facade_warm"))
    crates = [((-1.5, 3.0), 0.8, 0.0), ((2.2, 1.0), 1.0, 0.0), ((-3.2, -4.0), 1.2, 0.0), ((-3.2, -4.0), 0.8, 1.2),
              ((3.8, -7.0), 0.9, 0.0), ((0.5, -11.0), 0.7, 0.0)]
    for k, ((x, z), s, lift) in enumerate(crates):
        s = s * (1 + jit(0.1))
        meshes.append(Mesh(f"crate{k}", box_vertices((x, lift + s / 2, z), (s, s, s), jit(35)), "crate"))
    pillars = [(-0.8, -6, 0.30, 4.0), (4.5, -3, 0.35, 4.5), (-5, -12, 0.4, 5), (1.8, -16, 0.4, 5)]
    for k, (x, z, r, h) in enumerate(pillars):
        meshes.append(Mesh(f"pillar{k}", cylinder_vertices((x + jit(0.3), 0.0, z + jit(0.3)), r, h, 2.0), "stone"))
    return meshes


def ball_mesh() -> Mesh:
    """The ball in its own frame (centre at the origin); `ball_model_matrix` places it."""
    return Mesh("ball", sphere_vertices(BALL_RADIUS, 32, 16), "ball")


# ---------------------------------------------------------------- motion

def ball_center_stage(t_s: float) -> np.ndarray:
    """Ball centre at time t (stage frame). Elastic bounce under gravity, analytic: the height is a
    parabola per period with its minimum, the radius, exactly at ground contact. -> [3]"""
    period = 2.0 * np.sqrt(2.0 * BALL_PEAK / GRAVITY)
    tau = (t_s + 0.5 * period) % period                     # starts at the top of a bounce
    y = BALL_RADIUS + 0.5 * GRAVITY * tau * (period - tau)
    x = 2.5 * np.cos(2.0 * np.pi * t_s / 10.0)
    return np.array([x, y, BALL_Z])                                                     # [3]


def ball_model_matrix(t_s: float) -> np.ndarray:
    """Ball model-to-stage matrix: spin about z as if rolling with its horizontal travel. [4, 4]"""
    center = ball_center_stage(t_s)
    angle = -(center[0] - ball_center_stage(0.0)[0]) / BALL_RADIUS
    c, s = np.cos(angle), np.sin(angle)
    M = np.eye(4)                                                                       # [4, 4]
    M[:2, :2] = [[c, -s], [s, c]]
    M[:3, 3] = center
    return M


def camera_path_stage(num_frames: int) -> np.ndarray:
    """Sideways dolly from x = -2.5 to +2.5 m with eased speed, looking at a point that drifts a fifth
    as far, so the yaw turns by about 16 degrees. -> float64 [N, 4, 4] OpenCV c2w in the stage frame"""
    s = 0.5 - 0.5 * np.cos(np.pi * np.arange(num_frames) / max(num_frames - 1, 1))      # [N]
    x = -2.5 + 5.0 * s
    return np.stack([look_at_c2w((xi, 1.6, 8.0), (0.2 * xi, 0.2, -6.0), (0.0, 1.0, 0.0)) for xi in x])  # [N, 4, 4]
