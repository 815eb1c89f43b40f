"""The `ply` point-cloud renderer against parity/geometry section 5 (exact uint8)."""
import torch

from scenes.pointcloud import downsample_2x, render_points, splat_points_hi


def test_colours_are_the_ply_codes_over_255(ply_golden):
    assert torch.equal(ply_golden["in/colors"], (ply_golden["in/colors_u8"].double() / 255).float())


def test_every_pose_renders_exactly(ply_golden):
    points, colors, K = ply_golden["in/points"], ply_golden["in/colors"], ply_golden["in/K"]
    for j in range(3):
        rgb, mask = render_points(points, colors, ply_golden[f"pose{j}/c2w"], K, 64, 48)
        assert torch.equal(rgb, ply_golden[f"pose{j}/rgb"]), j
        assert torch.equal(mask, ply_golden[f"pose{j}/mask"]), j


def test_supersampled_canvases_and_downsample_separately(ply_golden):
    points, colors, K = ply_golden["in/points"], ply_golden["in/colors"], ply_golden["in/K"]
    for j in (0, 1):
        canvas, mask_hi = splat_points_hi(points, colors, ply_golden[f"pose{j}/c2w"], K, 64, 48)
        assert torch.equal(canvas, ply_golden[f"pose{j}/canvas_hi_rgb"])
        assert torch.equal(mask_hi, ply_golden[f"pose{j}/mask_hi"])
        rgb, mask = downsample_2x(ply_golden[f"pose{j}/canvas_hi_rgb"], ply_golden[f"pose{j}/mask_hi"])
        assert torch.equal(rgb, ply_golden[f"pose{j}/rgb"]) and torch.equal(mask, ply_golden[f"pose{j}/mask"])


def test_all_points_behind_the_camera_give_black_without_rasterising(ply_golden):
    args = (ply_golden["in/points"], ply_golden["in/colors"], ply_golden["pose2/c2w"], ply_golden["in/K"], 64, 48)
    assert splat_points_hi(*args) is None
    rgb, mask = render_points(*args)
    assert not rgb.any() and not mask.any() and rgb.shape == (48, 64, 3)


def test_near_plane_and_square_footprint():
    """One point: z = 0.09 is dropped; z = 0.11 makes a 5x5 square at 2x, i.e. 3x3 covered pixels."""
    K = torch.tensor([[10.0, 0, 8], [0, 10.0, 8], [0, 0, 1]])
    color = torch.tensor([[1.0, 0.5, 0.0]])
    _, mask = render_points(torch.tensor([[0.0, 0.0, 0.09]]), color, torch.eye(4), K, 16, 16)
    assert not mask.any()
    canvas, mask_hi = splat_points_hi(torch.tensor([[0.0, 0.0, 0.11]]), color, torch.eye(4), K, 16, 16)
    assert int((mask_hi == 255).sum()) == 25
    assert canvas[16, 16].tolist() == [255, 127, 0]                 # x255 then truncation
    rgb, mask = downsample_2x(canvas, mask_hi)
    assert rgb[8, 8].tolist() == [255, 127, 0] and int((mask == 255).sum()) == 9
    assert rgb[9, 9].tolist() == [64, 32, 0]                        # 1 of 4 samples: (255 + 2) // 4
    assert rgb[7, 9].tolist() == [128, 64, 0]                       # 2 of 4: edges blend with black
