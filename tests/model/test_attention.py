"""Attention backends: one signature, the same numbers, chosen once, never a silent fallback."""
import pytest
import torch

from model.attention import select_attention


def reference(q, k, v):
    logits = torch.einsum("bqhd,bkhd->bhqk", q.double(), k.double()) / q.shape[-1] ** 0.5
    return torch.einsum("bhqk,bkhd->bqhd", logits.softmax(-1), v.double())


def qkv(lq, lk, device="cpu", dtype=torch.float32):
    g = torch.Generator(device).manual_seed(0)
    return (torch.randn(1, n, 2, 128, generator=g, device=device).to(dtype) for n in (lq, lk, lk))


def test_cpu_auto_is_sdpa_and_exact():
    name, attend = select_attention("auto", device="cpu", dtype=torch.float32)
    q, k, v = qkv(40, 70)
    out = attend(q, k, v)
    assert name == "sdpa" and out.shape == (1, 40, 2, 128)
    assert (out.double() - reference(q, k, v)).abs().max().item() < 1e-5


@pytest.mark.parametrize("backend", ["fa3", "flash", "cudnn", "sdpa_flash"])
def test_gpu_backends_refuse_the_cpu(backend):
    with pytest.raises(ValueError, match=backend):
        select_attention(backend, device="cpu", dtype=torch.bfloat16)


def test_unknown_backend():
    with pytest.raises(ValueError, match="expected one of"):
        select_attention("sage")


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["auto", "cudnn", "sdpa_flash", "sdpa"])
def test_gpu_backends_agree(backend):
    name, attend = select_attention(backend, device="cuda", dtype=torch.bfloat16)
    q, k, v = qkv(4680, 9360, "cuda", torch.bfloat16)
    out = attend(q, k, v)
    assert out.shape == q.shape and out.dtype == torch.bfloat16
    assert (out.double() - reference(q, k, v)).abs().max().item() < 2e-2, name
