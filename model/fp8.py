"""Opt-in FP8 matmuls for the DiT's linear layers (config `model.fp8`).

Weights are stored once in float8_e4m3fn with one float32 scale per output row; activations are
quantized per token row at run time (scale = row amax / 448), and `torch._scaled_mm` multiplies the
two on the tensor cores with the scales applied to the float32 accumulator (rowwise scaling, Hopper
or newer). Elsewhere (CPU tests) the same quantized numbers are multiplied after dequantization, so
the numerics match up to summation order.

The cost: e4m3 keeps 3 mantissa bits, so each operand carries up to ~6% rounding per element; the
effect on a whole block is measured by `python3 -m benchmarks.dit_bench --fp8 --compare-eager`.
"""
import torch
import torch.nn as nn
from torch import Tensor

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max      # 448


def quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """x: [M, K] -> (float8 [M, K], float32 scale [M, 1]) with x ~ q * scale row by row."""
    scale = x.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX
    return (x.float() / scale).to(FP8), scale


class Fp8Linear(nn.Module):
    """A frozen nn.Linear whose matmul runs in FP8. x: [..., K] -> [..., N] in x's dtype."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight, scale = quantize_rows(linear.weight.detach())                  # [N, K], [N, 1]
        self.register_buffer("weight", weight)
        self.register_buffer("weight_scale", scale.t().contiguous())           # [1, N]
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features)                                  # [M, K]
        q, scale = quantize_rows(rows)
        if q.is_cuda:
            y = torch._scaled_mm(q, self.weight.t(), scale_a=scale, scale_b=self.weight_scale,
                                 bias=self.bias, out_dtype=x.dtype)             # [M, N]
        else:
            y = (q.float() * scale) @ (self.weight.float() * self.weight_scale.t()).t()
            y = (y if self.bias is None else y + self.bias.float()).to(x.dtype)
        return y.reshape(*x.shape[:-1], self.out_features)                              # [..., out_features]

    def _apply(self, fn, recurse=True):
        raise RuntimeError("Fp8Linear: FP8 weights cannot be moved or cast; convert to FP8 after the "
                           "model is loaded onto its device (CausalWanModel.prepare_for_inference)")


def check_fp8_support(device: torch.device) -> None:
    """Raise with the fix when `device` cannot run FP8 matmuls."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 9):
        name = torch.cuda.get_device_name(device)
        raise ValueError(f"model.fp8: {name} has no FP8 tensor cores (needs compute capability 8.9+, "
                         "e.g. Ada, Hopper); set model.fp8=false")


def to_fp8(module: nn.Module, names: tuple[str, ...]) -> None:
    """Replace the nn.Linear children of `module` at the dotted `names` by Fp8Linear, in place."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        linear = module.get_submodule(name)
        if isinstance(linear, Fp8Linear):
            continue
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"to_fp8: {name} is a {type(linear).__name__}, not nn.Linear")
        check_fp8_support(linear.weight.device)
        setattr(parent, child, Fp8Linear(linear))
