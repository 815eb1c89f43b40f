"""Dense, non-causal softmax attention (scale 1/sqrt(Dh), no mask) behind one signature,
`attention(q, k, v)` with q: [B, Lq, Nh, Dh], k, v: [B, Lk, Nh, Dh] -> [B, Lq, Nh, Dh].

The kernel is chosen once, by `select_attention`, when a model is built (never per call):
  fa3         FlashAttention-3 (`flash_attn_interface`, Hopper), as the reference prefers
  flash       FlashAttention-2 (`flash_attn`)
  cudnn       PyTorch SDPA restricted to its cuDNN kernel
  sdpa_flash  PyTorch SDPA restricted to its flash kernel
  sdpa        PyTorch SDPA with its own dispatch (CPU, meta, float32 reference runs)
  cudnn_fp8   cuDNN's FP8 kernel (model/fp8_attention.py; Hopper, nvidia-cudnn-frontend), for the
              FP8 mode's self-attention; its own CPU emulation off the GPU (tests)
  auto        fa3, else flash, else SDPA preferring cuDNN (faster than SDPA's flash kernel at the
              DiT's shapes: benchmarks/kernel_bench.py) on CUDA; sdpa elsewhere.
"""
import importlib
import logging
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

log = logging.getLogger(__name__)

AttentionFn = Callable[[Tensor, Tensor, Tensor], Tensor]
BACKENDS = ("auto", "fa3", "flash", "cudnn", "sdpa_flash", "sdpa", "cudnn_fp8")
_SDPA_PRIORITY = {
    "cudnn": [SDPBackend.CUDNN_ATTENTION],
    "sdpa_flash": [SDPBackend.FLASH_ATTENTION],
    "auto": [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION,
             SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
}


def _sdpa(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)                                                  # [B, Lq, Nh, Dh]


def _sdpa_with(backends: list[SDPBackend]) -> AttentionFn:
    def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        with sdpa_kernel(backends, set_priority=True):
            return _sdpa(q, k, v)
    return attention


def _flash(module_name: str) -> AttentionFn | None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None

    def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out = module.flash_attn_func(q, k, v)
        return out[0] if isinstance(out, tuple) else out    # some FA3 builds also return the LSE
    return attention


def _auto(on_cuda: bool, half: bool, device: torch.device) -> tuple[str, AttentionFn]:
    if on_cuda and half:
        if torch.cuda.get_device_capability(device)[0] >= 9 and (fn := _flash("flash_attn_interface")):
            return "fa3", fn
        if fn := _flash("flash_attn"):
            return "flash", fn
    if on_cuda:
        return "sdpa(cudnn first)", _sdpa_with(_SDPA_PRIORITY["auto"])
    return "sdpa", _sdpa


def select_attention(backend: str = "auto", *, device=None, dtype: torch.dtype | None = None
                     ) -> tuple[str, AttentionFn]:
    """Resolve `backend` for a model on `device` with activations in `dtype`; logs the choice.
    An explicitly named backend that cannot run here is an error, never a silent fallback."""
    if backend not in BACKENDS:
        raise ValueError(f"attention backend {backend!r}: expected one of {BACKENDS}")
    device = torch.device(device if device is not None else "cpu")
    on_cuda = device.type == "cuda" and torch.cuda.is_available()
    half = dtype in (torch.bfloat16, torch.float16)
    if backend == "auto":
        name, fn = _auto(on_cuda, half, device)
    elif backend in ("fa3", "flash"):
        name, fn = backend, _flash("flash_attn_interface" if backend == "fa3" else "flash_attn")
        if fn is None or not (on_cuda and half):
            raise ValueError(f"attention backend {backend!r} needs its package, a CUDA device and "
                             f"bf16/fp16 activations (device {device}, dtype {dtype})")
    elif backend in ("cudnn", "sdpa_flash"):
        if not on_cuda:
            raise ValueError(f"attention backend {backend!r} needs a CUDA device, not {device}")
        name, fn = backend, _sdpa_with(_SDPA_PRIORITY[backend])
    elif backend == "cudnn_fp8":
        from model.fp8_attention import fp8_attention, fp8_attention_unavailable
        if on_cuda and (reason := fp8_attention_unavailable(device)):
            raise ValueError(f"attention backend 'cudnn_fp8': {reason}")
        name, fn = backend, fp8_attention
    else:
        name, fn = "sdpa", _sdpa
    log.info("attention backend: %s (device %s, dtype %s)", name, device, dtype)
    return name, fn
