"""3-axis rotary position embedding of the causal Wan DiT (wan/modules/causal_model.py `rope_params`,
`rope_apply_given_freqs`).

A head of Dh = 128 channels holds 64 complex numbers as adjacent pairs (2j real, 2j+1 imaginary),
split 22 / 21 / 21 between time, height and width. Each axis table is exp(i * p * 10000^(-2j/d)) for
positions p = 0..1023, built in float64. Spatial positions restart at 0 in every frame; the time
position is `offset + frame` (0 for context passes, 6 for denoising passes).

Tables are (cos, sin) pairs of real tensors; the rotation runs in the tables' dtype, so float64
tables reproduce the reference bit for bit and float32 tables are the faster option (about 5e-7 off
in float32, see tests/model/test_rope.py).
"""
import torch
from torch import Tensor

TABLE_LENGTH = 1024  # positions per axis; larger positions are not supported by the reference
THETA = 10000.0


def axis_split(head_dim: int) -> tuple[int, int, int]:
    """Complex pairs per axis (time, height, width): [22, 21, 21] for head_dim 128."""
    pairs = head_dim // 2
    return pairs - 2 * (pairs // 3), pairs // 3, pairs // 3


def _axis_table(length: int, dim: int, theta: float) -> Tensor:
    """`rope_params`: complex128 [length, dim / 2], exp(i * p * theta^(-2j/dim))."""
    inv_freq = 1.0 / torch.pow(theta, torch.arange(0, dim, 2, dtype=torch.float64).div(dim))  # [dim/2] float64
    angles = torch.outer(torch.arange(length), inv_freq)                       # [length, dim/2] f64
    return torch.polar(torch.ones_like(angles), angles)                                 # [length, dim/2] complex128


def base_table(head_dim: int, length: int = TABLE_LENGTH, theta: float = THETA) -> tuple[Tensor, Tensor]:
    """The full table, columns [time | height | width]: (cos, sin), float64 [length, head_dim / 2], CPU."""
    t, h, _ = axis_split(head_dim)
    table = torch.cat([_axis_table(length, 2 * t, theta),
                       _axis_table(length, 2 * h, theta),
                       _axis_table(length, 2 * h, theta)], dim=1)               # [length, 64] c128
    return table.real.contiguous(), table.imag.contiguous()


def token_table(base: tuple[Tensor, Tensor], frames: int, h: int, w: int, offset: int,
                *, device=None, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Per-token rotation for a frames x h x w patch grid, tokens frame-major, then row, then column.
    base: from `base_table`. -> (cos, sin), each [frames * h * w, head_dim / 2] in `dtype`."""
    if offset + frames > base[0].shape[0] or max(h, w) > base[0].shape[0]:
        raise ValueError(f"RoPE positions exceed the {base[0].shape[0]}-entry table: "
                         f"frames {offset}..{offset + frames - 1}, grid {h}x{w}")
    nt, nh, _ = axis_split(2 * base[0].shape[1])

    def per_token(table: Tensor) -> Tensor:
        time = table[offset:offset + frames, :nt][:, None, None].expand(frames, h, w, nt)  # [frames, h, w, nt]
        row = table[:h, nt:nt + nh][None, :, None].expand(frames, h, w, nh)             # [frames, h, w, nh]
        col = table[:w, nt + nh:][None, None, :].expand(frames, h, w, table.shape[1] - nt - nh)  # [frames, h, w, nw]
        return torch.cat([time, row, col], dim=-1).reshape(frames * h * w, -1)  # [L, 64]

    return tuple(per_token(t).to(device=device, dtype=dtype) for t in base)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate adjacent channel pairs (2j, 2j+1) of every head. x: [B, L, Nh, Dh]; cos, sin: [L, Dh / 2].
    Computed in cos.dtype (float64: bitwise the reference), rounded back to x.dtype.

    Written as x * (c, c) + swap(x) * (-s, s) with swap(x) = (x[2j+1], x[2j]): the products and sums
    of the complex rotation (re*c - im*s, re*s + im*c) exactly, in a form torch.compile fuses into
    the q/k RMSNorm kernel with fewer loads than a stack of the two halves (dit_bench --profile)."""
    xf = x.to(cos.dtype)                                                        # [B, L, Nh, Dh]
    swapped = xf.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)                    # [B, L, Nh, Dh]
    c = cos.repeat_interleave(2, dim=-1)[:, None]                               # [L, 1, Dh]
    s = torch.stack([-sin, sin], dim=-1).flatten(-2)[:, None]                   # [L, 1, Dh]
    return (xf * c + swapped * s).to(x.dtype)
