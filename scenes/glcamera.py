"""OpenCV <-> OpenGL camera conventions, in one place.

roam's cameras are OpenCV: +x right, +y down, +z forward; a pixel (u, v) has its centre at integer
coordinates, so pixel u covers [u - 0.5, u + 0.5] and `K @ [X, Y, Z]` lands on it for Z > 0.
OpenGL looks down -z with +y up, its window pixel i covers [i, i + 1], and rows go bottom-up.

    x_gl_eye = X,  y_gl_eye = -Y,  z_gl_eye = -Z          (FLIP_YZ, applied to camera coordinates)
    x_window = u + 0.5,  y_window = H - (v + 0.5)          (rows are flipped after glReadPixels)

Everything here is float64 numpy; callers cast to float32 for the GPU at the last moment.
"""
from __future__ import annotations

import numpy as np

FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])   # OpenCV camera axes <-> OpenGL eye axes (its own inverse)


def gl_view_from_c2w(c2w: np.ndarray) -> np.ndarray:
    """World -> OpenGL eye matrix for an OpenCV camera-to-world pose.

    c2w: [4, 4] (OpenCV camera axes)   ->   [4, 4]"""
    return FLIP_YZ @ np.linalg.inv(np.asarray(c2w, dtype=np.float64))                   # [4, 4]


def c2w_from_gl_view(view: np.ndarray) -> np.ndarray:
    """Inverse of `gl_view_from_c2w`: OpenGL view matrix -> OpenCV camera-to-world pose. [4, 4]"""
    return np.linalg.inv(FLIP_YZ @ np.asarray(view, dtype=np.float64))                  # [4, 4]


def gl_projection_from_K(K: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """OpenGL projection whose rasterised pixel centres agree exactly with the OpenCV intrinsics K.

    A camera point (X, Y, Z) that K maps to pixel (u, v) lands at NDC
    x = 2 (u + 0.5) / W - 1 and y = 1 - 2 (v + 0.5) / H (then rows are flipped on read-back),
    with depth mapped to [-1, 1] between `near` and `far` (metres) as glFrustum does.
    K: [3, 3]   ->   [4, 4]"""
    K = np.asarray(K, dtype=np.float64)                                                 # [3, 3]
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    W, H = float(width), float(height)
    P = np.zeros((4, 4))                                                                # [4, 4]
    P[0, 0] = 2.0 * fx / W
    P[0, 1] = -2.0 * skew / W                       # y_gl_eye = -Y
    P[0, 2] = 1.0 - 2.0 * (cx + 0.5) / W            # z_gl_eye = -Z carries the principal point
    P[1, 1] = 2.0 * fy / H
    P[1, 2] = 2.0 * (cy + 0.5) / H - 1.0
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = -1.0
    return P


def linearize_depth(depth_buffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """Window depth in [0, 1] (glDepthRange 0..1) -> camera z in metres (OpenCV +z forward).

    Inverts `gl_projection_from_K`'s depth rows exactly: z_ndc = 2 d - 1, Z = 2 f n / (f + n - z_ndc (f - n)).
    depth_buffer: [...] float   ->   [...] float64"""
    z_ndc = 2.0 * np.asarray(depth_buffer, dtype=np.float64) - 1.0                      # [...]
    return 2.0 * far * near / ((far + near) - z_ndc * (far - near))


def project_gl(points_world: np.ndarray, c2w: np.ndarray, K: np.ndarray, width: int, height: int,
               near: float, far: float) -> tuple[np.ndarray, np.ndarray]:
    """Project world points the way the GL pipeline does, returning OpenCV pixels and window depth.

    For tests and debugging: the result must match `K @ (w2c @ p)` to rounding.
    points_world: [..., 3]   ->   uv [..., 2] (OpenCV pixels), depth_window [...] in [0, 1]"""
    p = np.concatenate([points_world, np.ones_like(points_world[..., :1])], axis=-1)     # [..., 4]
    clip = p @ (gl_projection_from_K(K, width, height, near, far) @ gl_view_from_c2w(c2w)).T
    ndc = clip[..., :3] / clip[..., 3:4]                                                   # [..., 3]
    u = (ndc[..., 0] + 1.0) * 0.5 * width - 0.5
    v = (1.0 - ndc[..., 1]) * 0.5 * height - 0.5
    return np.stack([u, v], axis=-1), 0.5 * ndc[..., 2] + 0.5                           # [..., 2], [...]


def look_at_c2w(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world pose at `eye` looking at `target`, with image-up along `up`.

    Columns of R are the camera's right (+x), down (+y) and forward (+z) in world coordinates.
    eye, target, up: [3]   ->   [4, 4]"""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))      # [3] each
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)                                                                     # [4, 4]
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w
