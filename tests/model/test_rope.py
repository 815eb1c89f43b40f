"""RoPE tables and rotation against shared/parity/rope.*: bitwise in float64, 2e-6 for the float32 option."""
import pytest
import torch
from safetensors.torch import load_file

from model.rope import apply_rope, axis_split, base_table, token_table

GRID = (3, 4, 6)  # the fixture's frames, rows, columns


@pytest.fixture(scope="module")
def golden(parity_dir):
    return load_file(parity_dir / "rope.safetensors")


def test_split_is_22_21_21():
    assert axis_split(128) == (22, 21, 21)


def test_base_table_is_bitwise(golden):
    cos, sin = base_table(128)
    assert cos.dtype == torch.float64 and cos.shape == (1024, 64)
    assert torch.equal(cos, golden["freqs_real"]) and torch.equal(sin, golden["freqs_imag"])


@pytest.mark.parametrize("offset", [0, 6])
def test_token_tables_are_bitwise(golden, offset):
    cos, sin = token_table(base_table(128), *GRID, offset=offset)
    assert torch.equal(cos, golden[f"freqs_x_off{offset}_real"])
    assert torch.equal(sin, golden[f"freqs_x_off{offset}_imag"])


@pytest.mark.parametrize("offset", [0, 6])
def test_rotation_float64_is_bitwise(golden, offset):
    out = apply_rope(golden["q_f32"], *token_table(base_table(128), *GRID, offset=offset))
    assert out.dtype == torch.float32 and torch.equal(out, golden[f"q_rope_off{offset}_f32"])


def test_rotation_of_bf16_is_bitwise(golden):
    out = apply_rope(golden["q_bf16"], *token_table(base_table(128), *GRID, offset=6))
    assert out.dtype == torch.bfloat16 and torch.equal(out, golden["q_rope_off6_bf16"])


def test_float32_option_within_2e6(golden):
    table = token_table(base_table(128), *GRID, offset=6, dtype=torch.float32)
    err = (apply_rope(golden["q_f32"], *table) - golden["q_rope_off6_f32"]).abs().max().item()
    assert err <= 2e-6


def test_float32_option_at_full_size():
    """The faster path, measured against float64 on a 480x832 denoising block (3 x 30 x 52 tokens, 12 heads).
    float32 input: off by <= 4.8e-7 (one float32 ulp at |x| ~ 4). bf16 input: about 2e-5 of the elements
    round to the neighbouring bf16 value."""
    base = base_table(128)
    q = torch.randn(1, 3 * 30 * 52, 12, 128, generator=torch.Generator().manual_seed(0))
    t64, t32 = token_table(base, 3, 30, 52, offset=6), token_table(base, 3, 30, 52, offset=6, dtype=torch.float32)
    assert (apply_rope(q, *t64) - apply_rope(q, *t32)).abs().max().item() <= 1e-6
    a, b = apply_rope(q.bfloat16(), *t64), apply_rope(q.bfloat16(), *t32)
    assert (a != b).float().mean().item() < 1e-4
    a, b = a.float(), b.float()
    assert ((a - b).abs() <= torch.maximum(a.abs(), b.abs()) * 2 ** -7 + 1e-6).all()   # one bf16 ulp at most


def test_positions_beyond_the_table_are_rejected():
    with pytest.raises(ValueError, match="1024-entry table"):
        token_table(base_table(128), 3, 4, 6, offset=1022)
