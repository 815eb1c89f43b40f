"""The kernels of one DiT block at 480x832, timed alone: attention per SDPA backend and the linear
layers in bf16 and FP8, so the per-block floor can be summed from measured numbers (CUDA only).

    python3 -m benchmarks.kernel_bench [--iters 20] [--json OUT.json]

Shapes: 12 heads of 128; denoising passes attend 4680 queries to 14040 keys, the context pass 9360
to 9360, the cross-attention 4680 or 9360 queries to the 512 text rows; linear layers multiply 4680 (denoising) or 9360 (context) tokens. FP8 rows time
`torch._scaled_mm` with rowwise scales on pre-quantized operands ("mm") and with the activation
quantization included ("+quant", eager; torch.compile fuses it into the preceding op). The
"cudnn fp8" attention rows time cuDNN's FP8 kernel (model/fp8_attention.py) on pre-quantized
operands and, "+quant", with the per-tensor quantization of q, k and v (eager).
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from model.fp8 import quantize_rows
from model.fp8_attention import fp8_attention, fp8_attention_unavailable, quantize_per_tensor

HEADS, HEAD_DIM, DIM, FFN = 12, 128, 1536, 8960
ATTENTION = {"denoise q4680 k14040": (4680, 14040), "context q9360 k9360": (9360, 9360)}
CROSS_ATTENTION = {"cross q4680 k512": (4680, 512), "cross q9360 k512": (9360, 512)}   # 512 text rows
LINEARS = {"qkv": (DIM, 3 * DIM), "o / cross q / cross o": (DIM, DIM), "ffn up": (DIM, FFN), "ffn down": (FFN, DIM)}
BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}


def host_ms(fn, repeats: int = 1) -> float:
    """Median host ms of fn over `repeats` calls, the device idle before and after each: it includes
    Python's launch time (median_ms times the GPU alone). Runs on the CPU too."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def median_ms(fn, iters: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def attention_rows(iters: int) -> list[dict]:
    rows = []
    for label, (lq, lk) in {**ATTENTION, **CROSS_ATTENTION}.items():
        q = torch.randn(1, lq, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16).transpose(1, 2)  # [B, Nh, L, Dh] view
        k, v = (torch.randn(1, lk, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16).transpose(1, 2) for _ in range(2))
        flop = 4 * lq * lk * HEADS * HEAD_DIM
        for name, backend in BACKENDS.items():
            with sdpa_kernel([backend]):
                try:
                    ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v), iters)
                except RuntimeError as err:
                    rows.append({"kernel": f"attention {label} {name}", "error": str(err).splitlines()[0][:80]})
                    continue
            rows.append({"kernel": f"attention {label} {name}", "ms": ms, "tflops": flop / ms / 1e9})
        if label in ATTENTION:
            rows += fp8_attention_rows(label, q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), flop, iters)
    return rows


def fp8_attention_rows(label: str, q, k, v, flop: float, iters: int) -> list[dict]:
    """q, k, v: [B, L, Nh, Dh] bf16."""
    if reason := fp8_attention_unavailable(q.device):
        return [{"kernel": f"attention {label} cudnn fp8", "error": reason}]
    (q8, dq), (k8, dk), (v8, dv) = (quantize_per_tensor(t) for t in (q, k, v))
    runs = {"cudnn fp8": lambda: torch.ops.roam.fp8_sdpa(q8, k8, v8, dq, dk, dv),
            "cudnn fp8 +quant": lambda: fp8_attention(q, k, v)}
    exact = F.scaled_dot_product_attention(*(t.transpose(1, 2).float() for t in (q, k, v))).transpose(1, 2)
    err = ((fp8_attention(q, k, v).float() - exact).norm() / exact.norm()).item()
    bf16 = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v))).transpose(1, 2)
    err_bf16 = ((bf16.float() - exact).norm() / exact.norm()).item()
    rows = []
    for name, fn in runs.items():
        try:
            ms = median_ms(fn, iters)
        except RuntimeError as error:
            rows.append({"kernel": f"attention {label} {name}", "error": str(error).splitlines()[0][:200]})
            continue
        rows.append({"kernel": f"attention {label} {name}", "ms": ms, "tflops": flop / ms / 1e9,
                     "rel_err_vs_fp32": err, "bf16_rel_err_vs_fp32": err_bf16})
    return rows


def linear_rows(iters: int) -> list[dict]:
    rows = []
    for m in (4680, 9360):
        for label, (k, n) in LINEARS.items():
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
            bias = torch.zeros(n, device="cuda", dtype=torch.bfloat16)
            xq, xs = quantize_rows(x)
            wq, ws = quantize_rows(w)
            ws = ws.t().contiguous()
            flop = 2 * m * k * n
            def fp8(q, s, fast=False):
                return torch._scaled_mm(q, wq.t(), scale_a=s, scale_b=ws, bias=bias, out_dtype=torch.bfloat16,
                                        use_fast_accum=fast)
            runs = {"bf16": lambda: F.linear(x, w, bias), "fp8 mm": lambda: fp8(xq, xs),
                    "fp8 mm fast-accum": lambda: fp8(xq, xs, True), "fp8 +quant": lambda: fp8(*quantize_rows(x))}
            for name, fn in runs.items():
                ms = median_ms(fn, iters)
                rows.append({"kernel": f"linear M{m} {label} {k}->{n} {name}", "ms": ms, "tflops": flop / ms / 1e9})
    return rows


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("kernel_bench needs a CUDA GPU")
    rows = attention_rows(args.iters) + linear_rows(args.iters)
    print(f"\nkernels on {torch.cuda.get_device_name()} | torch {torch.__version__} | median of {args.iters}")
    for r in rows:
        cost = f"{r['ms']:8.3f} ms {r['tflops']:7.0f} TFLOP/s" if "ms" in r else f"unavailable: {r['error']}"
        if "rel_err_vs_fp32" in r:
            cost += f"  rel. error vs fp32 {r['rel_err_vs_fp32']:.2e} (bf16 kernel {r['bf16_rel_err_vs_fp32']:.2e})"
        print(f"{r['kernel']:<52} {cost}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
