"""FP8 self-attention (model/fp8_attention.py): per-tensor quantization, the kernel's arithmetic
emulated on the CPU, the custom op under torch.compile, and how the FP8 mode picks it. The cuDNN
kernel itself runs in the GPU tests (compared against the emulation) and in benchmarks.dit_bench."""
import logging

import pytest
import torch
import torch.nn.functional as F

from model.attention import select_attention
from model.dit import CausalWanModel, DiTConfig
from model.rope import base_table, token_table
from model.fp8_attention import (FP8, FP8_MAX, emulate_fp8_sdpa, fp8_attention, fp8_attention_unavailable,
                                 quantize_per_tensor)


def rel(a, b) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def exact(q, k, v):
    """float64 softmax attention. [B, L, Nh, Dh] in and out."""
    return F.scaled_dot_product_attention(*(t.double().transpose(1, 2) for t in (q, k, v))).transpose(1, 2)


def qkv(lq, lk, device="cpu", dtype=torch.float32, heads=2):
    g = torch.Generator(device).manual_seed(0)
    return [torch.randn(1, n, heads, 128, generator=g, device=device).to(dtype) for n in (lq, lk, lk)]


def test_per_tensor_quantization_uses_the_whole_e4m3_range_once():
    x = torch.randn(3, 50, 7) * 1e-3
    x8, descale = quantize_per_tensor(x)
    assert x8.dtype == FP8 and x8.shape == x.shape and descale.shape == (1,)
    assert x8.float().abs().max() == FP8_MAX                                   # the largest element maps to 448
    back = x8.float() * descale
    assert (back - x).abs().max() <= x.abs().max() / 16                        # 3 mantissa bits at the top
    assert quantize_per_tensor(torch.zeros(4))[0].float().abs().max() == 0     # no division by zero


def test_emulation_is_fp8_close_to_exact_attention_and_quantizes_the_probabilities():
    q, k, v = qkv(64, 300)
    q8, dq = quantize_per_tensor(q)
    k8, dk = quantize_per_tensor(k)
    v8, dv = quantize_per_tensor(v)
    out = emulate_fp8_sdpa(q8, k8, v8, dq, dk, dv).float() * dv
    assert out.shape == q.shape and out.is_contiguous()
    assert 1e-3 < rel(out, exact(q, k, v)) < 0.1
    # the same dequantized inputs with unquantized probabilities: the P rounding is part of the kernel
    unquantized_p = exact(q8.float() * dq, k8.float() * dk, v8.float() * dv)
    assert 1e-4 < rel(out, unquantized_p) < 0.05


def test_uniform_attention_returns_the_mean_of_v():
    """Equal scores: every probability is 1 before normalization, exactly representable in e4m3."""
    k = torch.ones(1, 256, 1, 128)
    v = torch.randn(1, 256, 1, 128, generator=torch.Generator().manual_seed(0))
    q = torch.zeros(1, 8, 1, 128)
    out = fp8_attention(q, k, v)
    v8, dv = quantize_per_tensor(v)
    mean = (v8.float() * dv).mean(dim=1, keepdim=True).expand_as(out)
    # O leaves the kernel in e4m3: within half a step (2^-4 relative, 2^-10 * dv below the normals)
    assert ((out - mean).abs() <= mean.abs() / 16 + dv / 1024).all()
    assert (out != mean).any()


def test_the_custom_op_compiles_to_the_same_numbers():
    q, k, v = qkv(40, 90)
    eager = fp8_attention(q, k, v)
    compiled = torch.compile(fp8_attention, fullgraph=True)(q, k, v)
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)


def test_cpu_is_told_why_there_is_no_kernel():
    assert "CUDA" in fp8_attention_unavailable(torch.device("cpu"))
    name, attend = select_attention("cudnn_fp8", device="cpu", dtype=torch.float32)
    assert name == "cudnn_fp8" and attend is fp8_attention                    # the emulation, for tests


def tiny_model():
    torch.manual_seed(0)
    model = CausalWanModel(DiTConfig.tiny(), attn_backend="sdpa", dtype=torch.float32).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model


def forward(model):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 36, 8, 12, generator=g)
    text_kv = model.encode_text(torch.randn(1, 16, model.cfg.text_dim, generator=g))
    cache = model.new_cache(1, 3 * 24)
    rope = token_table(base_table(model.cfg.head_dim), 3, 4, 6, offset=0)
    with torch.no_grad():
        return model(x, torch.full((1,), 500.0), text_kv, cache, (0, -1), rope)


def test_fp8_self_attention_in_the_model_keeps_cross_attention_exact():
    model = tiny_model()
    reference = forward(model)
    model.set_attention("cudnn_fp8")
    assert model._attend is fp8_attention and model._attend_text is not fp8_attention
    out = forward(model)
    assert 1e-4 < rel(out, reference) < 0.1


def test_fp8_mode_keeps_bf16_attention_where_no_kernel_exists(caplog):
    model = tiny_model()
    model.set_attention("auto")
    with caplog.at_level(logging.WARNING, logger="model.dit"):
        model.prepare_for_inference(fp8=True)
    assert model.attn_backend == "sdpa" and "attention stays" in caplog.text and "CUDA" in caplog.text


@pytest.mark.gpu
def test_cudnn_kernel_matches_its_emulation_and_replays_in_a_cuda_graph():
    reason = fp8_attention_unavailable(torch.device("cuda"))
    if reason:
        pytest.skip(reason)
    q, k, v = qkv(1560, 4680, "cuda", torch.bfloat16, heads=12)
    out = fp8_attention(q, k, v)
    assert out.dtype == torch.bfloat16 and out.shape == q.shape
    q8, dq = quantize_per_tensor(q)
    k8, dk = quantize_per_tensor(k)
    v8, dv = quantize_per_tensor(v)
    emulated = emulate_fp8_sdpa(q8, k8, v8, dq, dk, dv).float() * dv
    # not bitwise: the kernel quantizes P against the running maximum of its key tiles, the
    # emulation against the row's maximum, and O leaves both in e4m3 (measured 3.8e-2 on the H100)
    assert rel(out, emulated) < 0.06
    assert rel(out, exact(q, k, v)) < 0.1
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = fp8_attention(q, k, v)
    q.mul_(0.5)
    graph.replay()
    torch.testing.assert_close(captured, fp8_attention(q, k, v), rtol=0, atol=0)
