"""Every cuDNN FP8 attention plan for the DiT's shapes, timed alone, per memory layout, to choose
the layout and plan model/fp8_attention.py uses (CUDA, nvidia-cudnn-frontend).

    python3 -m benchmarks.fp8_attention_plans [--iters 20]

Layouts ([B, H, L, D] as cuDNN sees them): "bshd" tokens-major like the DiT's q, k, v (no copy);
"bhsd" heads-major; "bhsd, v^T" heads-major with V stored transposed ([B, H, D, L]), the operand
order Hopper's FP8 tensor cores read for P @ V.
"""
import argparse

import torch

from benchmarks.kernel_bench import ATTENTION, HEAD_DIM, HEADS, median_ms
from model.fp8_attention import _CUDNN, FP8, fp8_attention_unavailable


def layouts(B: int, L: int, H: int, D: int) -> dict[str, tuple[list[int], list[int]]]:
    dims = [B, H, L, D]
    return {"bshd": (dims, [L * H * D, D, H * D, 1]), "bhsd": (dims, [H * L * D, L * D, D, 1]),
            "bhds": (dims, [H * L * D, L * D, 1, L])}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iters", type=int, default=20)
    args = p.parse_args(argv)
    device = torch.device("cuda")
    if reason := fp8_attention_unavailable(device):
        raise SystemExit(reason)
    handle = _CUDNN.handle(device)
    print(f"cuDNN FP8 attention plans on {torch.cuda.get_device_name()} | torch {torch.__version__}")
    for label, (lq, lk) in ATTENTION.items():
        flop = 4 * lq * lk * HEADS * HEAD_DIM
        q_layouts, kv_layouts = layouts(1, lq, HEADS, HEAD_DIM), layouts(1, lk, HEADS, HEAD_DIM)
        for name, v_name in (("bshd", "bshd"), ("bhsd", "bhsd"), ("bhsd", "bhds")):
            q8 = torch.randn(lq * HEADS * HEAD_DIM, device=device).to(FP8)
            k8, v8 = (torch.randn(lk * HEADS * HEAD_DIM, device=device).to(FP8) for _ in range(2))
            scales = [torch.full((1,), 0.01, device=device) for _ in range(3)]
            out = torch.empty_like(q8)
            try:
                graph = _CUDNN.build(handle, q_layouts[name], kv_layouts[name], kv_layouts[v_name], q_layouts[name],
                                     build_all=True)
            except RuntimeError as err:
                print(f"{label} q/k {name} v {v_name}: no plan ({str(err)[:300]})")
                continue
            buffers = _CUDNN.buffers(q8, k8, v8, *scales, out)
            uids = list(range(1, len(buffers) + 1))
            for index in range(graph.get_execution_plan_count()):
                workspace = torch.empty(max(graph.get_workspace_size_plan_at_index(index), 1), dtype=torch.uint8, device=device)
                try:
                    ms = median_ms(lambda: graph.execute_plan_at_index(buffers, workspace, index, handle=handle,
                                                                     tensor_uids=uids), args.iters)
                except Exception as err:
                    print(f"{label} q/k {name} v {v_name} plan {index}: failed ({str(err).splitlines()[0][:120]})")
                    continue
                print(f"{label} q/k {name} v {v_name} plan {index} {graph.get_plan_name_at_index(index)[:60]}: "
                      f"{ms:.3f} ms {flop / ms / 1e9:.0f} TFLOP/s")
    print("failures while building:", _CUDNN.failures, "| amax outputs bound:", _CUDNN.amax_outputs)


if __name__ == "__main__":
    main()
