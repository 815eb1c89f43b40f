"""FP8 linear layers (model/fp8.py): quantization error bounds and in-place conversion (CPU path;
the CUDA `_scaled_mm` path is timed and compared on the device by benchmarks.dit_bench --fp8)."""
import pytest
import torch
import torch.nn as nn

from model.dit import CausalWanModel, DiTConfig
from model.fp8 import FP8, Fp8Linear, quantize_rows, to_fp8


def rel(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_rowwise_quantization_keeps_each_row_within_e4m3_precision():
    x = torch.randn(64, 256) * torch.logspace(-3, 3, 64)[:, None]              # rows of very different size
    q, scale = quantize_rows(x)
    assert q.dtype == FP8 and scale.shape == (64, 1)
    back = q.float() * scale
    assert (back - x).abs().max(dim=1).values.le(x.abs().max(dim=1).values / 16 + 1e-12).all()   # 3 mantissa bits
    assert q.float().abs().max() <= 448


def test_fp8_linear_is_close_to_the_bf16_linear_but_not_identical():
    torch.manual_seed(0)
    linear = nn.Linear(256, 128).to(torch.bfloat16)
    x = torch.randn(4, 10, 256, dtype=torch.bfloat16)
    ref, out = linear(x), Fp8Linear(linear)(x)
    assert out.shape == ref.shape and out.dtype == torch.bfloat16
    assert 1e-4 < rel(out, ref) < 5e-2


def test_to_fp8_replaces_the_named_layers_and_refuses_to_move():
    model = CausalWanModel(DiTConfig.tiny(), dtype=torch.float32)
    model.prepare_for_inference(fp8=True, fp8_layers=("ffn.0", "self_attn.qkv"))
    block = model.blocks[0]
    assert isinstance(block.ffn[0], Fp8Linear) and isinstance(block.self_attn.qkv, Fp8Linear)
    assert isinstance(block.ffn[2], nn.Linear) and isinstance(block.cross_attn.k, nn.Linear)
    with pytest.raises(RuntimeError, match="cannot be moved"):
        model.to(torch.bfloat16)
    with pytest.raises(TypeError, match="not nn.Linear"):
        to_fp8(block, names=("norm3",))
