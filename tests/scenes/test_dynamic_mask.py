"""The dynamic mask's cleaning: specks dropped, the rest dilated, exactly as the pooling definition."""
import torch
import torch.nn.functional as F

from scenes.dynamic_mask import _clean


def pooled_clean(dynamic: torch.Tensor, dilate_px: int) -> torch.Tensor:
    """The rule written with pooling: the mean of each 3x3 window (border windows over the pixels
    they have) times 9, less the pixel itself, is its dynamic-neighbour count; then a max pool."""
    d = dynamic.unsqueeze(1).double()                                               # [B, 1, H, W]
    neighbours = F.avg_pool2d(d, 3, stride=1, padding=1, count_include_pad=False) * 9 - d
    d = d * (neighbours >= 2 - 1e-9)
    if dilate_px > 0:
        d = F.max_pool2d(d, 2 * dilate_px + 1, stride=1, padding=dilate_px)
    return d[:, 0] > 0


def test_cleaning_matches_the_pooling_definition_on_random_masks():
    generator = torch.Generator().manual_seed(0)
    for density in (0.02, 0.1, 0.3, 0.7):
        for dilate_px in (0, 1, 3, 9, 20, 60):                         # 60: wider than the image
            mask = torch.rand(2, 41, 57, generator=generator) < density
            assert torch.equal(_clean(mask, dilate_px), pooled_clean(mask, dilate_px)), (density, dilate_px)


def test_a_speck_goes_and_a_blob_grows_by_the_dilation():
    mask = torch.zeros(1, 20, 20, dtype=torch.bool)
    mask[0, 3, 3] = True                                   # alone: dropped
    mask[0, 10:12, 10:12] = True                           # 2 x 2: every pixel has 3 neighbours
    cleaned = _clean(mask, 2)
    assert not cleaned[0, :7, :7].any()
    assert cleaned[0, 8:14, 8:14].all() and int(cleaned.sum()) == 36
