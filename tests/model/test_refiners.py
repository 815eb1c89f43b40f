"""The geometry refiner keeps valid pixels and fills holes from their surroundings."""
import torch

from model.refiners import GeometryRefiner, RefineInput, push_pull_fill


def test_push_pull_keeps_valid_pixels_and_fills_holes_smoothly():
    torch.manual_seed(0)
    H, W = 48, 80
    x = torch.linspace(0, 1, W).expand(H, W)
    image = torch.stack([x * 200, x * 0 + 50, 255 - x * 200])[None]        # [1, 3, H, W] horizontal ramp
    valid = torch.ones(1, 1, H, W)
    valid[..., 10:30, 20:40] = 0                                             # a hole in the middle
    filled = push_pull_fill(image, valid)
    assert torch.equal(filled[valid.expand_as(filled) > 0], image[valid.expand_as(image) > 0])
    hole = (valid[0, 0] == 0)
    err = (filled[0, :, hole] - image[0, :, hole]).abs().mean()
    assert err < 20, f"hole fill far from the surrounding ramp: mean error {err:.1f}"


def test_geometry_refiner_returns_uint8_frames_without_holes():
    T, H, W = 3, 32, 48
    render = torch.full((T, H, W, 3), 120, dtype=torch.uint8)
    mask = torch.ones(T, H, W, dtype=torch.bool)
    mask[:, 8:16, 8:16] = False
    render[~mask] = 0
    out = GeometryRefiner().refine(RefineInput(render=render, mask=mask, source=render))
    assert out.dtype == torch.uint8 and out.shape == (T, H, W, 3)
    assert (out[~mask] == 120).all(), "holes surrounded by one colour must take that colour"
