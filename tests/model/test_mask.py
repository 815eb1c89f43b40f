"""convert_mask_video: bitwise parity with the reference, and block-by-block conversion."""
import pytest
import torch
from safetensors.torch import load_file

from model.mask import convert_mask_video, mask_to_latent


@pytest.fixture(scope="module")
def mask_io(parity_dir):
    return load_file(parity_dir / "mask.safetensors")


@pytest.mark.parametrize("T", [13, 14])
def test_matches_reference_bitwise_in_float32_and_bf16(mask_io, T):
    video, want = mask_io[f"in_T{T}"], mask_io[f"out_T{T}"]
    assert torch.equal(convert_mask_video(video), want)
    out_bf16 = convert_mask_video(video.bfloat16())
    assert out_bf16.dtype == torch.bfloat16 and torch.equal(out_bf16.float(), want)


def test_latent_count_and_first_latent(mask_io):
    out = convert_mask_video(mask_io["in_T13"])
    assert out.shape[1] == 1 + (13 - 1) // 4
    assert torch.equal(out[:, 0, 0], out[:, 0, 3])                      # latent 0 = frame 0 four times


def test_blocks_of_a_stream_equal_the_whole_video(mask_io):
    mask = mask_io["in_T13"][:, 0]                                        # [B, T, H, W]
    blocks = torch.cat([mask_to_latent(mask[:, :9]), mask_to_latent(mask[:, 9:13], first_block=False)], 1)
    assert torch.equal(blocks, mask_to_latent(mask))
