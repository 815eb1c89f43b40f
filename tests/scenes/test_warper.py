"""The default forward-splatting renderer against parity/geometry section 4: the direct case,
the three end-to-end runs from the synthetic depth-stage folder, and CPU vs CUDA."""

import numpy as np
import pytest
import torch

from scenes import trajectory as tj
from scenes import warper as wp
from scenes.depth.formats import read_depth_stage_dir
from scenes.frames import freeze_indices
from scenes.render import reference_K, render_views, video_log_depth_max

DIRECT_INPUTS = ("in/frames", "in/depth", "in/src_w2c", "in/tgt_w2c", "in/K")
E2E_CASES = {   # case -> (trajectory, flags), parity/geometry/warper.json "e2e"
    "yaw_sweep_default": ("synth_yaw_sweep", {}),
    "circle_rts_rot_freeze": ("x_y_circle_cycle", dict(relative_to_source=True, rotation_only=True,
                                                       freeze_repeat=2, freeze_frame=1)),
    "zoom_default": ("zoom_out_in", {}),
}


def direct(golden, *names):
    return [golden["direct/" + n] for n in names]


def assert_render_close(render, mask, ref_render, ref_mask, *, atol=1e-4, outliers=0, worst=1e-4):
    """Masks exact, holes exactly -1, valid pixels within atol except `outliers` pixels <= worst."""
    assert torch.equal(mask, ref_mask)
    valid = ref_mask.bool().expand_as(render)
    assert bool((render[~valid] == -1).all())
    err = (render - ref_render).abs().amax(dim=1, keepdim=True)[ref_mask.bool()]   # per pixel
    assert int((err > atol).sum()) <= outliers and float(err.max()) <= worst, float(err.max())


def assert_u8_close(got, ref):
    assert got.dtype == torch.uint8 and got.shape == ref.shape
    assert int((got.int() - ref.int()).abs().max()) <= 1       # truncation at code boundaries


def test_projection_matches_the_reference(warper_golden, warper_meta):
    depth, src, tgt, K = direct(warper_golden, *DIRECT_INPUTS[1:])
    u, v, z = wp.project(depth, src, tgt, K)
    B, _, H, W = depth.shape
    uv = warper_golden["direct/debug/target_uv"].reshape(B, H * W, 2)
    assert float((u - uv[..., 0]).abs().max()) < 1e-3 and float((v - uv[..., 1]).abs().max()) < 1e-3
    assert float((z - warper_golden["direct/debug/target_z"].reshape(B, -1)).abs().max()) < 1e-5
    assert (z < 0).sum(dim=1).tolist() == warper_meta["direct"]["behind_camera_source_pixels_per_frame"]


def test_direct_case(warper_golden):
    render, mask = wp.forward_warp(*direct(warper_golden, *DIRECT_INPUTS))
    assert_render_close(render, mask, *direct(warper_golden, "out/render", "out/mask"))
    assert_render_close(render, mask, *direct(warper_golden, "out_f64/render", "out_f64/mask"))
    assert_u8_close(wp.to_encoder_u8(render), warper_golden["direct/out/render_u8_rgb24"])
    assert torch.equal(wp.mask_to_u8(mask), warper_golden["direct/out/mask_u8_rgb24"])


def test_normaliser_is_batch_global_and_can_be_passed_in(warper_golden):
    inputs = direct(warper_golden, *DIRECT_INPUTS)
    single = [wp.forward_warp(*(x[i:i + 1] for x in inputs)) for i in range(4)]
    assert_render_close(torch.cat([r for r, _ in single]), torch.cat([m for _, m in single]),
                        *direct(warper_golden, "out_single_frame_batches/render", "out_single_frame_batches/mask"))
    # frame-by-frame blocks with the whole batch's normaliser reproduce the one-batch render
    l_max = wp.max_log_depth(*inputs[1:])
    blocks = [wp.forward_warp(*(x[i:i + 1] for x in inputs), log_depth_max=l_max) for i in range(4)]
    assert_render_close(torch.cat([r for r, _ in blocks]), torch.cat([m for _, m in blocks]),
                        *direct(warper_golden, "out/render", "out/mask"))


@pytest.mark.parametrize("case", sorted(E2E_CASES))
def test_end_to_end_from_the_depth_stage_folder(case, geometry_dir, warper_golden, warper_meta, traj_fixture):
    """Folder -> freeze -> K -> targets -> warp, checking every intermediate the reference handed on."""
    traj, flags = E2E_CASES[case]
    assert warper_meta["e2e"][case]["trajectory"] == traj and warper_meta["e2e"][case]["flags"] == flags
    ref = {k.split("/")[-1]: v for k, v in warper_golden.items() if k.startswith(f"e2e/{case}/")}
    stage = read_depth_stage_dir(geometry_dir / "warper_e2e" / "input")
    np.testing.assert_array_equal(stage.frames_u8, warper_golden["e2e/in/frames_u8"].numpy())
    np.testing.assert_array_equal(stage.depth, warper_golden["e2e/in/depth"].numpy())
    N, H, W, _ = stage.frames_u8.shape
    idx = freeze_indices(N, flags.get("freeze_repeat", 0), flags.get("freeze_frame"))
    assert len(idx) == warper_meta["e2e"][case]["frames_rendered"]
    K = reference_K(torch.from_numpy(stage.K[0].astype(np.float32)), W, H)
    assert torch.allclose(K.expand(len(idx), 3, 3), ref["K_render"], rtol=0, atol=1e-5)
    src = tj.source_c2w(stage.w2c)[idx]
    tgt = tj.target_c2w(tj.TrajectoryKeys(**traj_fixture[traj]["keys"]), src,
                        relative_to_source=flags.get("relative_to_source", False),
                        rotation_only=flags.get("rotation_only", False))
    src_w2c, tgt_w2c = torch.linalg.inv(src), torch.linalg.inv(tgt)
    assert float((src_w2c - ref["src_w2c"]).abs().max()) <= 2e-6
    assert float((tgt_w2c - ref["tgt_w2c"]).abs().max()) <= 2e-6
    frames, depth = torch.from_numpy(stage.frames_u8[idx]), torch.from_numpy(stage.depth[idx])
    colour, clipped = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0, depth.clamp(1e-4, 1e4)[:, None]
    assert torch.equal(colour, ref["frames_after_freeze"]) and torch.equal(clipped, ref["depth_after_freeze"])

    render, mask = wp.forward_warp(colour, clipped, src_w2c, tgt_w2c, K.expand(len(idx), 3, 3))
    assert_render_close(render, mask, ref["render"], ref["mask"], outliers=4, worst=1e-2)
    render_u8, valid = render_views(frames, depth, K, src, tgt)
    assert_u8_close(render_u8, ref["render_u8_rgb24"])
    assert torch.equal(valid, ref["mask_u8_rgb24"][..., 0] == 255)
    assert torch.equal(wp.mask_to_u8(mask), ref["mask_u8_rgb24"])


def test_render_views_rejects_wrong_shapes():
    frames = torch.zeros(2, 4, 5, 3, dtype=torch.uint8)
    eye = torch.eye(4).expand(2, 4, 4)
    K = torch.tensor([[5.0, 0, 2.5], [0, 5.0, 2.0], [0, 0, 1]])
    with pytest.raises(ValueError, match="frames must be uint8"):
        render_views(frames.float(), torch.ones(2, 4, 5), K, eye, eye)
    with pytest.raises(ValueError, match=r"depth must be \[2, 4, 5\]"):
        render_views(frames, torch.ones(2, 5, 4), K, eye, eye)
    with pytest.raises(ValueError, match="K must be"):
        render_views(frames, torch.ones(2, 4, 5), K[:2], eye, eye)
    render, mask = render_views(frames, torch.ones(2, 4, 5), K, eye, eye)
    assert render.shape == (2, 4, 5, 3) and mask.shape == (2, 4, 5) and mask.dtype == torch.bool


def test_reference_K_centres_the_principal_point():
    K = reference_K(torch.tensor([[70.3, 0, 40.4], [0, 63.7, 23.8], [0, 0, 1]]), 80, 48)
    expected = torch.tensor([[70.3 * 80 / 80.8, 0, 40], [0, 63.7 * 48 / 47.6, 24], [0, 0, 1]])
    assert K.dtype == torch.float32 and torch.allclose(K, expected, rtol=1e-6, atol=0)


@pytest.mark.gpu
def test_cuda_matches_cpu(warper_golden):
    inputs = direct(warper_golden, *DIRECT_INPUTS)
    render, mask = wp.forward_warp(*(x.cuda() for x in inputs))
    assert render.is_cuda
    assert_render_close(render.cpu(), mask.cpu(), *direct(warper_golden, "out/render", "out/mask"))
    # A full-size block with generic motion. Float rounding differs between the devices, so a
    # splat landing within rounding of an integer pixel coordinate can move a near-zero weight to
    # a neighbour (parity README, section 4): allow a few such pixels, not more.
    g = torch.Generator().manual_seed(0)
    T, H, W = 12, 480, 832
    frames = torch.randint(0, 256, (T, H, W, 3), dtype=torch.uint8, generator=g)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    depth = (3 + 0.002 * xs + 0.001 * ys).expand(T, H, W).clone()
    K = torch.tensor([[500.0, 0, 416], [0, 500.0, 240], [0, 0, 1]])
    src = torch.eye(4).expand(T, 4, 4).clone()
    a = torch.linspace(0.01, 0.05, T)                       # yaw (rad) and a little motion in x, y, z
    tgt = src.clone()
    tgt[:, 0, 0], tgt[:, 0, 2], tgt[:, 2, 0], tgt[:, 2, 2] = a.cos(), a.sin(), -a.sin(), a.cos()
    tgt[:, 0, 3], tgt[:, 1, 3], tgt[:, 2, 3] = torch.linspace(0.013, 0.21, T), torch.linspace(-0.007, 0.03, T), 0.011
    r_cpu, m_cpu = render_views(frames, depth, K, src, tgt)
    r_gpu, m_gpu = render_views(frames.cuda(), depth.cuda(), K.cuda(), src.cuda(), tgt.cuda())
    assert r_gpu.is_cuda and m_gpu.is_cuda
    assert float((m_cpu != m_gpu.cpu()).float().mean()) < 1e-5            # observed 4e-7
    diff = (r_cpu.int() - r_gpu.cpu().int()).abs()[m_cpu & m_gpu.cpu()]
    assert float((diff > 1).float().mean()) < 1e-3                          # observed 6e-5


def test_blocks_with_the_video_normaliser_equal_one_batch(geometry_dir, traj_fixture):
    """A video rendered in blocks with video_log_depth_max gives the whole-video render exactly."""
    stage = read_depth_stage_dir(geometry_dir / "warper_e2e" / "input")
    N, H, W, _ = stage.frames_u8.shape
    K = reference_K(torch.from_numpy(stage.K[0].astype(np.float32)), W, H)
    src = tj.source_c2w(stage.w2c)
    tgt = tj.target_c2w(tj.TrajectoryKeys(**traj_fixture["x_y_circle_cycle"]["keys"]), src)
    frames, depth = torch.from_numpy(stage.frames_u8), torch.from_numpy(stage.depth)
    whole = render_views(frames, depth, K, src, tgt)
    l_max = video_log_depth_max(depth, K, src, tgt, chunk=2)
    parts = [render_views(frames[i:i + 2], depth[i:i + 2], K, src[i:i + 2], tgt[i:i + 2], log_depth_max=l_max)
             for i in range(0, N, 2)]
    assert torch.equal(torch.cat([r for r, _ in parts]), whole[0])
    assert torch.equal(torch.cat([m for _, m in parts]), whole[1])
    alone = render_views(frames[:2], depth[:2], K, src[:2], tgt[:2])      # its own, smaller normaliser
    assert not torch.equal(alone[0], whole[0][:2])
