"""The built-in sample scene: camera conventions, exact depth, self-consistent geometry, the bouncing
ball, ground truth from any view, determinism and caching. Built small (208x120, 24 frames)."""
import numpy as np
import pytest
import torch

from scenes import sample
from scenes.config import SampleConfig, ScenesConfig
from scenes.glcamera import (c2w_from_gl_view, gl_projection_from_K, gl_view_from_c2w, linearize_depth,
                             look_at_c2w, project_gl)
from scenes.sample import (SampleRenderer, ball_center, ball_radius, build_sample_scene, ground_plane,
                           load_sample_scene, render_sample_view, sample_intrinsics)

W, H = 208, 120
CFG = SampleConfig(frames=24, fps=24.0, seed=0)


@pytest.fixture(scope="module")
def scene():
    return build_sample_scene(CFG, W, H)


def np64(t: torch.Tensor) -> np.ndarray:
    return t.numpy().astype(np.float64)


def unproject(depth, K, c2w):
    """[H, W] camera z -> world points [H, W, 3] (OpenCV, pixel centres at integers)."""
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    return (rays * depth[..., None]) @ c2w[:3, :3].T + c2w[:3, 3]


def project(points, K, c2w):
    """world [..., 3] -> (u, v, z) with K @ w2c."""
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    pix = cam @ K.T
    return pix[..., 0] / pix[..., 2], pix[..., 1] / pix[..., 2], cam[..., 2]


def bilinear(img, u, v):
    h, w = img.shape[:2]
    u0, v0 = np.clip(np.floor(u).astype(int), 0, w - 2), np.clip(np.floor(v).astype(int), 0, h - 2)
    a, b = u - u0, v - v0
    if img.ndim == 3:
        a, b = a[:, None], b[:, None]
    return (img[v0, u0] * (1 - a) * (1 - b) + img[v0, u0 + 1] * a * (1 - b)
            + img[v0 + 1, u0] * (1 - a) * b + img[v0 + 1, u0 + 1] * a * b)


# ---------------------------------------------------------------- conventions

def test_gl_projection_lands_on_opencv_pixels():
    rng = np.random.default_rng(0)
    K = np.array([[300.0, 0.0, 101.3], [0.0, 280.0, 62.7], [0.0, 0.0, 1.0]])
    c2w = look_at_c2w((1.0, -0.5, 2.0), (0.3, 0.2, 9.0), (0.0, -1.0, 0.0))
    cam = np.stack([rng.uniform(-2, 2, 50), rng.uniform(-1, 1, 50), rng.uniform(0.5, 50, 50)], -1)
    world = cam @ c2w[:3, :3].T + c2w[:3, 3]
    uv_gl, window_depth = project_gl(world, c2w, K, W, H, near=0.05, far=400.0)
    u, v, z = project(world, K, c2w)
    np.testing.assert_allclose(uv_gl, np.stack([u, v], -1), atol=1e-7)
    np.testing.assert_allclose(linearize_depth(window_depth, 0.05, 400.0), cam[:, 2], rtol=1e-9)


def test_view_matrix_flips_y_and_z_and_round_trips():
    c2w = look_at_c2w((0.0, 0.0, 0.0), (0.0, 0.0, 5.0), (0.0, -1.0, 0.0))
    np.testing.assert_allclose(c2w, np.eye(4), atol=1e-12)                  # OpenCV looks down +z, y down
    view = gl_view_from_c2w(c2w)
    assert view[1, 1] == -1.0 and view[2, 2] == -1.0                        # GL looks down -z, y up
    pose = look_at_c2w((1.0, 2.0, 3.0), (4.0, 0.0, -2.0), (0.0, 1.0, 0.0))
    np.testing.assert_allclose(c2w_from_gl_view(gl_view_from_c2w(pose)), pose, atol=1e-12)
    assert np.isclose(np.linalg.det(pose[:3, :3]), 1.0)
    P = gl_projection_from_K(sample_intrinsics(W, H), W, H, 0.05, 400.0)
    assert np.isclose(P[0, 2], -1.0 / W) and np.isclose(P[1, 2], 1.0 / H)   # principal point at (W/2, H/2)


# ---------------------------------------------------------------- the built scene

def test_shapes_dtypes_and_anchor(scene):
    assert scene.frames.shape == (24, H, W, 3) and scene.frames.dtype == torch.uint8
    assert scene.depth.shape == (24, H, W) and scene.depth.dtype == torch.float32
    assert scene.K.shape == (24, 3, 3) and scene.c2w.shape == (24, 4, 4) and scene.fps == 24.0
    assert torch.equal(scene.c2w[0], torch.eye(4))                          # anchored at the first camera
    assert bool(torch.isfinite(scene.depth).all()) and float(scene.depth.min()) > 0.5
    assert float(scene.depth.max()) < 200.0                                 # the sky dome is finite
    assert scene.caption and scene.meta["settings"]["frames"] == 24
    travel = np.linalg.norm(np64(scene.c2w[-1, :3, 3]) - np64(scene.c2w[0, :3, 3]))
    assert 4.5 < travel < 5.5                                               # the 5 m sideways dolly
    yaw = np.degrees(np.arccos(np.clip(np64(scene.c2w[-1, :3, 2]) @ np64(scene.c2w[0, :3, 2]), -1, 1)))
    assert 5.0 < yaw < 30.0


def test_depth_equals_the_analytic_ground_plane(scene):
    """Ground pixels: rendered depth vs the exact ray/plane intersection, at pixel centres."""
    n, d = ground_plane()
    for i in (0, 11, 23):
        K, c2w, depth = np64(scene.K[i]), np64(scene.c2w[i]), np64(scene.depth[i])
        v, u = np.mgrid[0:H, 0:W].astype(np.float64)
        rays = (np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T) @ c2w[:3, :3].T
        z_ground = -(n @ c2w[:3, 3] + d) / (rays @ n)
        rel = np.abs(depth - z_ground) / np.abs(z_ground)
        bottom = rel[-H // 4:]                                              # mostly ground near the camera
        assert (bottom < 1e-4).mean() > 0.6
        assert np.median(bottom[bottom < 1e-2]) < 2e-5                     # a half-pixel shift gives ~1e-2


def test_frames_reproject_consistently(scene):
    """Unproject frame i with its depth/K/c2w, project into frame j: depth and colour agree on the
    static pixels that stay visible."""
    for i, j in ((0, 6), (0, 23), (12, 14)):
        points = unproject(np64(scene.depth[i]), np64(scene.K[i]), np64(scene.c2w[i])).reshape(-1, 3)
        colours = np64(scene.frames[i]).reshape(-1, 3)
        static = np.ones(len(points), dtype=bool)
        for k in (i, j):
            static &= np.linalg.norm(points - ball_center(k / CFG.fps), axis=1) > ball_radius() + 0.05
        u, v, z = project(points, np64(scene.K[j]), np64(scene.c2w[j]))
        inside = static & (z > 0) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
        z_j = 1.0 / bilinear(1.0 / np64(scene.depth[j]), u[inside], v[inside])   # 1/z is affine on planes
        rel = np.abs(z_j - z[inside]) / z[inside]
        visible = rel < 1e-2
        assert visible.mean() > 0.6, (i, j, visible.mean())
        assert np.median(rel[visible]) < 5e-5, (i, j)
        err = np.abs(bilinear(np64(scene.frames[j]), u[inside], v[inside]) - colours[inside]).mean(1)[visible]
        assert err.mean() < 4.0 and np.median(err) < 2.0, (i, j, err.mean(), np.median(err))


def test_render_sample_view_reproduces_the_frames_exactly(scene):
    with SampleRenderer(W, H, CFG.seed) as renderer:
        for i in (0, 9, 23):
            rgb, depth = render_sample_view(scene.c2w[i], i, CFG, W, H, renderer=renderer)
            assert torch.equal(rgb, scene.frames[i]) and torch.equal(depth, scene.depth[i]), i
    rgb, depth = render_sample_view(scene.c2w[5], 5, CFG, W, H)                    # its own context
    assert torch.equal(rgb, scene.frames[5])


def test_novel_view_is_ground_truth_of_the_same_world(scene):
    """A camera 1 m to the left and turned: its depth agrees with frame 0's geometry where both see it."""
    novel = np64(scene.c2w[0]) @ np.array([[np.cos(0.2), 0, np.sin(0.2), -1.0], [0, 1, 0, 0.1],
                                            [-np.sin(0.2), 0, np.cos(0.2), 0.5], [0, 0, 0, 1]])
    rgb, depth = render_sample_view(torch.from_numpy(novel).float(), 0, CFG, W, H)
    assert rgb.shape == (H, W, 3) and bool(torch.isfinite(depth).all())
    points = unproject(np64(scene.depth[0]), np64(scene.K[0]), np64(scene.c2w[0])).reshape(-1, 3)
    u, v, z = project(points, sample_intrinsics(W, H).astype(np.float64), novel.astype(np.float32).astype(np.float64))
    inside = (z > 0) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
    rel = np.abs(1.0 / bilinear(1.0 / depth.numpy().astype(np.float64), u[inside], v[inside]) - z[inside]) / z[inside]
    assert (rel < 1e-2).mean() > 0.5 and np.median(rel[rel < 1e-2]) < 5e-5


def test_ball_falls_bounces_and_is_rendered_where_physics_puts_it(scene):
    t = np.linspace(0.0, 5.0, 5001)
    n, d = ground_plane()
    clearance = np.array([n @ ball_center(x) + d for x in t]) - ball_radius()
    contacts = np.where((clearance[1:-1] < clearance[:-2]) & (clearance[1:-1] <= clearance[2:]))[0] + 1
    assert len(contacts) >= 4                                               # bounces, more than once
    assert np.all(clearance[contacts] < 6e-3)           # within one 1 ms step at ~5 m/s of touching
    assert clearance.min() > -1e-9                      # and never below the ground
    assert clearance.max() > 1.0 and clearance[0] == pytest.approx(clearance.max(), abs=1e-6)
    assert np.linalg.norm(ball_center(4.0) - ball_center(0.0)) > 2.0        # it travels sideways too
    for i in (0, 8, 16, 23):                                                # and it is where the frames show it
        centre = ball_center(i / CFG.fps)
        u, v, z = project(centre, np64(scene.K[i]), np64(scene.c2w[i]))
        assert 0 <= u < W and 0 <= v < H
        assert z - ball_radius() - 0.02 < float(scene.depth[i, round(v), round(u)]) < z


def test_determinism(scene):
    again = build_sample_scene(CFG, W, H)
    for name in ("frames", "depth", "K", "c2w"):
        assert torch.equal(getattr(again, name), getattr(scene, name)), name
    other_seed = build_sample_scene(SampleConfig(frames=2, fps=24.0, seed=1), W, H)
    assert not torch.equal(other_seed.frames[0], scene.frames[0])


def test_load_sample_scene_builds_once_then_reads_the_cache(tmp_path, monkeypatch):
    cfg = ScenesConfig(width=64, height=48, sample=SampleConfig(frames=3))
    first = load_sample_scene(cfg, tmp_path, progress=False)
    assert first.frames.shape == (3, 48, 64, 3) and len(list(tmp_path.iterdir())) == 1

    def no_build(*args, **kwargs):
        raise AssertionError("the cached sample was rebuilt")
    monkeypatch.setattr(sample, "build_sample_scene", no_build)
    second = load_sample_scene(cfg, tmp_path, progress=False)
    assert torch.equal(second.frames, first.frames) and second.meta == first.meta
