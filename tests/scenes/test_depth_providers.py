"""Depth providers on real files written here (numpy, Pillow, PyAV): file forms and their errors, the
estimate prior and its error on the sample, sample recognition, the DA3 adapter's pure parts and its
chunked run with a stand-in model, and auto's choice."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from tests.makers import FakeDA3
from scenes.config import DepthConfig, SampleConfig
from scenes.depth import DepthError, DepthRequest, plan_depth, run_depth
from scenes.depth.base import default_K, depth_errors, scale_K
from scenes.frame_fit import resize_depth_nearest
from scenes.depth.da3 import (chain_chunks, chunk_ranges, da3_depth, da3_process_size, reanchor, smooth_c2w)
from scenes.depth.estimate import estimate_depth
from scenes.depth.files import file_depth
from scenes.depth.formats import write_float_depth_png, write_pi3_depth
from scenes.sample import build_sample_scene
from scenes.video import VideoWriter

W, H, N = 32, 18, 5          # working size and frames of the file tests
SRC = (64, 36)               # "source" video size (same aspect)


def request(n=N, width=W, height=H, path=Path("clip.mp4"), fps=24.0, source=SRC, frames=None, **cfg):
    frames = torch.zeros(n, height, width, 3, dtype=torch.uint8) if frames is None else frames
    return DepthRequest(Path(path), frames, fps, source, DepthConfig(**cfg))


def ramp_depth(n=N, h=36, w=64) -> np.ndarray:
    """Distinct positive depth per frame and pixel. float32 [n, h, w]"""
    return (1.0 + np.arange(n)[:, None, None] + np.arange(h * w).reshape(h, w) / (h * w)).astype(np.float32)


def random_c2w(n, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.2, (n, 3))).as_matrix()
    c2w[:, :3, 3] = rng.normal(0, 1, (n, 3))
    return c2w


# ---------------------------------------------------------------- shared geometry

def test_resize_depth_nearest_uses_floor_source_indices():
    d = np.arange(2 * 6 * 10, dtype=np.float32).reshape(2, 6, 10)
    out = resize_depth_nearest(d, 15, 4).numpy()
    ys, xs = np.floor(np.arange(4) * 6 / 4).astype(int), np.floor(np.arange(15) * 10 / 15).astype(int)
    np.testing.assert_array_equal(out, d[:, ys][:, :, xs])


def test_scale_K_is_anisotropic_like_the_reference():
    K = np.array([[400.0, 0, 252], [0, 410, 140], [0, 0, 1]])
    out = scale_K(K, (504, 280), (832, 480))
    np.testing.assert_allclose(out[:2, 2], [416, 240])
    np.testing.assert_allclose([out[0, 0], out[1, 1]], [400 * 832 / 504, 410 * 480 / 280])
    assert out[2, 2] == 1


def test_default_K_keeps_square_pixels_of_the_source():
    K = default_K(832, 480, (640, 480), 60.0)                          # a 4:3 source stretched to 832x480
    f_src = 320 / np.tan(np.radians(30))
    np.testing.assert_allclose([K[0, 0], K[1, 1]], [f_src * 832 / 640, f_src], rtol=1e-6)
    np.testing.assert_allclose(K[:2, 2], [416, 240])


# ---------------------------------------------------------------- file provider

def test_npz_with_K_and_c2w(tmp_path):
    depth, c2w = ramp_depth(), random_c2w(N).astype(np.float32)
    K = np.array([[50.0, 0, 32], [0, 50, 18], [0, 0, 1]])
    np.savez(tmp_path / "d.npz", depth=depth, K=K, c2w=c2w)
    res = file_depth(request(), tmp_path / "d.npz")
    assert res.depth.shape == (N, H, W) and res.depth.dtype == torch.float32
    np.testing.assert_array_equal(res.depth.numpy(), depth[:, ::2, ::2])       # nearest at exactly half size
    np.testing.assert_allclose(res.K[3].numpy(), scale_K(K, (64, 36), (W, H)), rtol=1e-6)
    np.testing.assert_array_equal(res.c2w.numpy(), c2w)


def test_npz_with_per_frame_K_and_npy_fall_back_to_defaults(tmp_path):
    Ks = np.tile(np.array([[50.0, 0, 32], [0, 50, 18], [0, 0, 1]]), (N, 1, 1)) * np.arange(1, N + 1)[:, None, None]
    Ks[:, 2, 2] = 1
    np.savez(tmp_path / "d.npz", depth=ramp_depth(), K=Ks)
    res = file_depth(request(), tmp_path / "d.npz")
    np.testing.assert_allclose(res.K[4, 0, 0].item(), 250 * W / 64, rtol=1e-6)
    np.testing.assert_array_equal(res.c2w.numpy(), np.tile(np.eye(4), (N, 1, 1)))
    np.save(tmp_path / "d.npy", ramp_depth().astype(np.float64))
    res = file_depth(request(hfov_deg=90.0), tmp_path / "d.npy")
    np.testing.assert_allclose(res.K[0].numpy(), default_K(W, H, SRC, 90.0))


def test_png16_folder_with_scale(tmp_path):
    codes = (ramp_depth() * 1000).astype(np.uint16)
    for i, c in enumerate(codes):
        Image.fromarray(c).save(tmp_path / f"{i:04d}.png")
    (tmp_path / "scale.txt").write_text("0.001\n")
    res = file_depth(request(), tmp_path)
    np.testing.assert_allclose(res.depth.numpy(), codes[:, ::2, ::2] * np.float32(0.001), rtol=1e-6)
    (tmp_path / "scale.txt").write_text("-1")
    with pytest.raises(DepthError, match="scale.txt"):
        file_depth(request(), tmp_path)


def test_float_rgba_folder_with_reference_cameras(tmp_path):
    depth, c2w = ramp_depth(), random_c2w(N)
    (tmp_path / "depth").mkdir()
    for i, d in enumerate(depth):
        write_float_depth_png(tmp_path / "depth" / f"{i:04d}.png", d)
    K = np.array([[50.0, 0, 32], [0, 50, 18], [0, 0, 1]])
    np.savetxt(tmp_path / "intrinsic.txt", np.concatenate([K] * N))
    np.savetxt(tmp_path / "extrinsic.txt", np.concatenate(list(np.linalg.inv(c2w)[:, :3])))
    res = file_depth(request(), tmp_path)
    np.testing.assert_array_equal(res.depth.numpy(), depth[:, ::2, ::2])
    np.testing.assert_allclose(res.c2w.numpy(), c2w, atol=1e-5)
    np.testing.assert_allclose(res.K[0, :2, 2].numpy(), [16, 9])


def test_pi3_folder(tmp_path):
    depth = ramp_depth()
    write_pi3_depth(tmp_path, depth)
    res = file_depth(request(), tmp_path)
    np.testing.assert_allclose(res.depth.numpy(), depth[:, ::2, ::2], atol=(depth.max() - depth.min()) / 65535 * 1.01)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[:-1], "holds 4 depth maps but the video decodes to 5 frames"),
    (lambda d: d[0], r"shape \[36, 64\], expected \[N, H, W\]"),
    (lambda d: d[:, :, :20], "different shape than the video"),
    (lambda d: np.where(d > 3, np.nan, d), "NaN/inf"),
    (lambda d: np.where(d > 3, np.inf, d), "NaN/inf"),
    (lambda d: d - 2, "<= 0"),
])
def test_bad_depth_files_are_one_line_errors_naming_the_file(tmp_path, mutate, message):
    path = tmp_path / "bad.npz"
    np.savez(path, depth=mutate(ramp_depth()))
    with pytest.raises(DepthError, match=message) as err:
        file_depth(request(), path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_bad_cameras_and_unreadable_files(tmp_path):
    np.savez(tmp_path / "k.npz", depth=ramp_depth(), K=np.eye(4))
    with pytest.raises(DepthError, match="K has shape"):
        file_depth(request(), tmp_path / "k.npz")
    np.savez(tmp_path / "c.npz", depth=ramp_depth(), c2w=np.eye(4))
    with pytest.raises(DepthError, match="c2w has shape"):
        file_depth(request(), tmp_path / "c.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DepthError, match="not a readable numpy file"):
        file_depth(request(), tmp_path / "junk.npz")
    np.savez(tmp_path / "nodepth.npz", d=ramp_depth())
    with pytest.raises(DepthError, match="no 'depth' array"):
        file_depth(request(), tmp_path / "nodepth.npz")


# ---------------------------------------------------------------- estimate

def test_estimate_is_a_ground_plane_under_a_backdrop():
    res = estimate_depth(request(n=3, width=64, height=36, source=(64, 36), eye_height=1.5, backdrop=20.0))
    d, K = res.depth[0].numpy(), res.K[0].numpy()
    assert res.depth.shape == (3, 36, 64) and (d > 0).all() and np.isfinite(d).all()
    assert (d[: int(K[1, 2]) + 1] == 20.0).all()                                     # at and above the horizon
    rows = d[:, 0]
    assert (np.diff(rows[19:]) <= 0).all() and rows[-1] < 20.0                      # nearer towards the bottom
    np.testing.assert_allclose(rows[-1], 1.5 * K[1, 1] / (35 - K[1, 2]), rtol=1e-6)
    assert torch.equal(res.c2w, torch.eye(4).expand(3, 4, 4))


def test_estimate_error_on_the_sample_is_bounded():
    truth = build_sample_scene(SampleConfig(frames=4), 104, 60)
    res = estimate_depth(request(n=4, width=104, height=60, source=(104, 60), frames=truth.frames))
    err = depth_errors(res.depth, truth.depth)
    assert err["abs_rel"] < 1.0 and err["delta1"] > 0.1, err
    assert depth_errors(truth.depth, truth.depth)["abs_rel"] == 0.0


# ---------------------------------------------------------------- sample

def write_video(path, frames, fps=24.0):
    with VideoWriter(path, fps=fps, width=frames.shape[2], height=frames.shape[1]) as writer:
        writer.write_frames(frames)
    return path


def test_sample_video_is_recognised_and_gets_exact_depth(tmp_path):
    cfg = SampleConfig(frames=6, fps=24.0)
    truth = build_sample_scene(cfg, 96, 54)
    video = write_video(tmp_path / "sample.mp4", truth.frames)
    from scenes.video import decode_video
    frames, fps = decode_video(video, 96, 54)
    req = request(n=6, width=96, height=54, path=video, fps=fps, source=(96, 54), frames=frames)
    res = run_depth(plan_depth("auto", video), req, SampleConfig(frames=120, fps=30.0))
    assert res.provider == "sample" and "sample" in res.notes["reason"]
    assert torch.equal(res.depth, truth.depth) and torch.equal(res.c2w, truth.c2w) and torch.equal(res.K, truth.K)
    other = request(n=6, width=96, height=54, path=video, fps=fps, source=(96, 54), frames=255 - frames)
    assert run_depth(plan_depth("auto", video), other, cfg).provider == "estimate"
    with pytest.raises(DepthError, match="not the built-in sample's video"):
        run_depth(plan_depth("sample", video), other, cfg)


# ---------------------------------------------------------------- DA3 adapter

@pytest.mark.parametrize("size, expected", [((1920, 900), (504, 238)), ((1352, 760), (504, 280)),
                                            ((1920, 1080), (504, 280)), ((832, 480), (504, 294)),
                                            ((480, 832), (294, 504)), ((504, 504), (504, 504)),
                                            ((1000, 21), (504, 14))])
def test_da3_process_size(size, expected):
    assert da3_process_size(*size) == expected


def test_reanchor_and_smoothing_follow_the_reference():
    c2w = random_c2w(9, seed=1)
    rel = reanchor(c2w)
    np.testing.assert_allclose(rel[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(np.linalg.inv(rel[2]) @ rel[5], np.linalg.inv(c2w[2]) @ c2w[5], atol=1e-12)
    smooth = smooth_c2w(rel)
    quat = gaussian_filter1d(Rotation.from_matrix(rel[:, :3, :3]).as_quat(), 2.0, axis=0, mode="reflect", truncate=4.0)
    np.testing.assert_allclose(smooth[:, :3, :3], Rotation.from_quat(quat).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(smooth[:, :3, 3], gaussian_filter1d(rel[:, :3, 3], 2.0, axis=0, mode="reflect"))
    assert not np.allclose(smooth[0], np.eye(4))                                    # reflect padding, as the reference
    still = np.tile(np.eye(4), (5, 1, 1))
    np.testing.assert_allclose(smooth_c2w(still), still, atol=1e-12)


def test_chunks_share_one_frame_and_chain_back_together():
    assert chunk_ranges(10, 4) == [(0, 4), (3, 7), (6, 10)]
    assert chunk_ranges(4, 4) == [(0, 4)] and chunk_ranges(5, 4) == [(0, 4), (3, 5)]
    with pytest.raises(DepthError, match="chunk_frames"):
        chunk_ranges(5, 1)
    truth_c2w, truth_depth = reanchor(random_c2w(10, seed=2)), ramp_depth(10, 4, 6)
    parts = []
    for k, (a, b) in enumerate(chunk_ranges(10, 4)):
        s = 1.0 + k                                                                   # each chunk has its own scale
        local = reanchor(truth_c2w[a:b])
        local[:, :3, 3] /= s
        parts.append((truth_depth[a:b] / s, local))
    depth, c2w = chain_chunks(parts)
    np.testing.assert_allclose(depth, truth_depth, rtol=1e-5)
    np.testing.assert_allclose(c2w, truth_c2w, atol=1e-9)




def test_da3_adapter_runs_chunks_and_scales_to_the_working_size(tmp_path):
    frames = torch.from_numpy(np.linspace(0, 250, 10).astype(np.uint8)[:, None, None, None].repeat(36, 1)
                              .repeat(64, 2).repeat(3, 3))
    video = write_video(tmp_path / "v.mp4", frames)
    model = FakeDA3()
    res = da3_depth(request(n=10, path=video, source=(64, 36), chunk_frames=4), model)
    assert [b[0] for b in model.batches] == [4, 4, 4] and model.batches[0][1:] == (280, 504)
    assert res.depth.shape == (10, H, W) and res.notes["process_size"] == [504, 280]
    np.testing.assert_allclose(res.K[0, :2, 2].numpy(), [W / 2, H / 2], rtol=1e-6)
    np.testing.assert_allclose(res.K[0, 0, 0].item(), 300 * W / 504, rtol=1e-6)
    x = res.c2w[:, 0, 3].numpy()
    assert np.all(np.diff(x) > 0) and abs(x[-1] - 0.9) < 0.25                      # chained over chunks, smoothed


def test_da3_missing_package_or_weights_says_what_to_do(tmp_path, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "depth_anything_3" else real(name))
    with pytest.raises(DepthError, match=r"pip install --no-deps -r requirements-depth.txt"):
        plan_depth("da3", tmp_path / "v.mp4", da3_dir=tmp_path / "DA3")
    plan = plan_depth("auto", tmp_path / "v.mp4", da3_dir=tmp_path / "DA3")
    assert plan.fallback == "estimate" and "depth_anything_3" in plan.reason


# ---------------------------------------------------------------- auto / plan

def test_auto_prefers_a_depth_file_beside_the_video(tmp_path):
    video = tmp_path / "clip.mp4"
    assert plan_depth("auto", video).fallback == "estimate"
    np.savez(tmp_path / "clip.npz", depth=ramp_depth())
    plan = plan_depth("auto", video)
    assert plan.fallback == "file" and plan.depth_file == tmp_path / "clip.npz" and plan.file_hash.startswith("sha256:")
    assert run_depth(plan, request(path=video), SampleConfig()).provider == "file"
    with pytest.raises(DepthError, match="unknown depth provider"):
        plan_depth("midas", video)
    with pytest.raises(DepthError, match="--depth-file .* not found"):
        plan_depth("file", video, tmp_path / "missing.npz")
    with pytest.raises(DepthError, match="only read by --depth file"):
        plan_depth("estimate", video, tmp_path / "clip.npz")


def test_da3_without_weights_says_where_to_download_them(tmp_path, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "depth_anything_3" else real(name))
    (tmp_path / "DA3").mkdir()
    with pytest.raises(DepthError, match=r"no DA3 weights in .*DA3 .*config.json.*download --only depth"):
        plan_depth("da3", tmp_path / "v.mp4", da3_dir=tmp_path / "DA3")


def test_png_folders_of_mixed_sizes_or_broken_files(tmp_path):
    Image.fromarray(np.full((36, 64), 1000, np.uint16)).save(tmp_path / "0000.png")
    Image.fromarray(np.full((18, 32), 1000, np.uint16)).save(tmp_path / "0001.png")
    with pytest.raises(DepthError, match="differ in size"):
        file_depth(request(n=2), tmp_path)
    (tmp_path / "0001.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DepthError, match="0001.png: not a readable PNG"):
        file_depth(request(n=2), tmp_path)


# ---------------------------------------------------------------- SfM for estimate

def test_sfm_pose_interpolation_holds_ends_and_slerps_between():
    from scenes.depth.sfm import _interpolate
    a, b = np.eye(4), np.eye(4)
    b[:3, :3] = Rotation.from_euler("y", 30, degrees=True).as_matrix()
    b[:3, 3] = [3.0, 0, 0]
    out = _interpolate(np.array([2, 5]), np.stack([a, b]), 8)
    np.testing.assert_allclose(out[:3], np.stack([a] * 3), atol=1e-12)
    np.testing.assert_allclose(out[5:], np.stack([b] * 3), atol=1e-12)
    np.testing.assert_allclose(out[3, :3, 3], [1.0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(Rotation.from_matrix(out[4, :3, :3]).as_euler("xyz", degrees=True)[1], 20, atol=1e-9)


def test_estimate_says_why_its_poses_are_static(monkeypatch):
    res = estimate_depth(request(sfm=False))
    assert "sfm is off" in res.notes["poses"] and res.notes["trust"] == 0.0
    monkeypatch.setattr("scenes.depth.sfm.importlib.util.find_spec", lambda name: None)
    assert "pycolmap is not installed" in estimate_depth(request(sfm=True)).notes["poses"]


def test_sfm_is_used_only_when_its_reconstruction_is_sound():
    from scenes.depth.sfm import accept
    assert accept(picked=40, registered=40, points_seen=40 * 200, reprojection_px=0.5) is None
    assert "registered 10 of 40" in accept(40, 10, 10 * 200, 0.5)
    assert "reprojection error is 3.00 px" in accept(40, 40, 40 * 200, 3.0)
    assert "points per frame" in accept(40, 40, 40 * 5, 0.5)


def test_sfm_finds_the_sample_camera_motion_and_bends_the_prior():
    pytest.importorskip("pycolmap")
    truth = build_sample_scene(SampleConfig(frames=16), 416, 240)
    res = estimate_depth(request(n=16, width=416, height=240, source=(416, 240), frames=truth.frames, sfm=True))
    assert res.notes["poses"].startswith("sfm"), res.notes["poses"]
    assert 0 < res.notes["trust"] <= 1 and res.notes["sfm"]["scale_from"] == "the ground plane"
    planar = estimate_depth(request(n=16, width=416, height=240, source=(416, 240), sfm=False))
    assert not torch.equal(res.depth, planar.depth) and bool(torch.isfinite(res.depth).all())
    move, true_move = res.c2w[-1, :3, 3].numpy(), truth.c2w[-1, :3, 3].numpy()
    assert move @ true_move / np.linalg.norm(move) / np.linalg.norm(true_move) > 0.95
    def angle(R):
        return np.linalg.norm(Rotation.from_matrix(R).as_rotvec())
    truth_R = truth.c2w[-1, :3, :3].numpy()                                           # about 16 deg of yaw
    assert angle(res.c2w[-1, :3, :3].numpy() @ truth_R.T) < 0.5 * angle(truth_R)     # at least halves static's error
