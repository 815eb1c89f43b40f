"""Every cuDNN attention plan for the DiT's self-attention shapes, timed alone: bf16 (the plans
PyTorch's SDPA chooses among) and FP8 (model/fp8_attention.py), per memory layout, against
PyTorch's own cuDNN SDPA. CUDA and nvidia-cudnn-frontend.

    python3 -m benchmarks.attention_plans [--dtype bf16|fp8|both] [--iters 20]

Layouts ([B, H, L, D] as cuDNN sees them): "bshd" tokens-major like the DiT's q, k, v (no copy);
"bhsd" heads-major; "bhds" heads-major with V stored transposed ([B, H, D, L]; FP8 only: the
operand order Hopper's FP8 tensor cores read for P @ V). bf16 graphs are tried with each of
cuDNN's attention implementations (AUTO, COMPOSITE, UNIFIED); a plan that is faster than
PyTorch's pick here is worth running through the frontend in the model.
"""
import argparse
import math

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchmarks.kernel_bench import ATTENTION, HEAD_DIM, HEADS, median_ms
from model.fp8_attention import _CUDNN, FP8, fp8_attention_unavailable


def layouts(B: int, L: int, H: int, D: int) -> dict[str, tuple[list[int], list[int]]]:
    dims = [B, H, L, D]
    return {"bshd": (dims, [L * H * D, D, H * D, 1]), "bhsd": (dims, [H * L * D, L * D, D, 1]),
            "bhds": (dims, [H * L * D, L * D, 1, L])}


def time_plans(graph, buffers, uids, handle, device, label: str, flop: int, iters: int) -> None:
    """Time every built plan of `graph` and print one line per plan."""
    for index in range(graph.get_execution_plan_count()):
        workspace = torch.empty(max(graph.get_workspace_size_plan_at_index(index), 1), dtype=torch.uint8, device=device)
        try:
            ms = median_ms(lambda: graph.execute_plan_at_index(buffers, workspace, index, handle=handle,
                                                             tensor_uids=uids), iters)
        except Exception as err:
            print(f"{label} plan {index}: failed ({str(err).splitlines()[0][:120]})")
            continue
        print(f"{label} plan {index} {graph.get_plan_name_at_index(index)[:70]}: {ms:.3f} ms {flop / ms / 1e9:.0f} TFLOP/s")


def bf16_graph(handle, q_layout, kv_layout, implementation):
    """A bf16 SDPA graph (no mask, scale 1/sqrt(D), no stats) with every plan built."""
    import cudnn
    bf16, f32 = cudnn.data_type.BFLOAT16, cudnn.data_type.FLOAT
    g = cudnn.pygraph(handle=handle, io_data_type=bf16, intermediate_data_type=f32, compute_data_type=f32,
                      is_cuda_graph_replay_expected=True)
    q, k, v = (g.tensor(name=name, dim=dims, stride=strides, data_type=bf16, uid=uid)
               for uid, (name, (dims, strides)) in enumerate(zip("qkv", (q_layout, kv_layout, kv_layout)), start=1))
    kwargs = {} if implementation is None else {"implementation": implementation}
    o, _ = g.sdpa(q, k, v, generate_stats=False, attn_scale=1 / math.sqrt(q_layout[0][3]), name="sdpa", **kwargs)
    o.set_uid(4).set_output(True).set_dim(q_layout[0]).set_stride(q_layout[1]).set_data_type(bf16)
    g.validate()
    g.build_operation_graph()
    g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.B, cudnn.heur_mode.FALLBACK])
    g.check_support()
    g.build_plans(cudnn.build_plan_policy.ALL)
    return g


def bf16_plans(handle, device, iters: int) -> None:
    import cudnn
    implementations = {"default": None, **{name: getattr(cudnn.attention_implementation, name)
                                           for name in ("AUTO", "COMPOSITE", "UNIFIED")
                                           if hasattr(cudnn, "attention_implementation")}}
    for label, (lq, lk) in ATTENTION.items():
        flop = 4 * lq * lk * HEADS * HEAD_DIM
        q = torch.randn(1, lq, HEADS, HEAD_DIM, device=device, dtype=torch.bfloat16)          # [B, L, Nh, Dh]
        k, v = (torch.randn(1, lk, HEADS, HEAD_DIM, device=device, dtype=torch.bfloat16) for _ in range(2))
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            ms = median_ms(lambda: F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                                  v.transpose(1, 2)), iters)
        print(f"bf16 {label} torch SDPA cudnn (bshd): {ms:.3f} ms {flop / ms / 1e9:.0f} TFLOP/s")
        for layout in ("bshd", "bhsd"):
            q_layout, kv_layout = layouts(1, lq, HEADS, HEAD_DIM)[layout], layouts(1, lk, HEADS, HEAD_DIM)[layout]
            out = torch.empty_like(q)
            for impl_name, implementation in implementations.items():
                name = f"bf16 {label} {layout} {impl_name}"
                try:
                    graph = bf16_graph(handle, q_layout, kv_layout, implementation)
                except Exception as err:
                    print(f"{name}: no plan ({str(err).splitlines()[0][:200]})")
                    continue
                time_plans(graph, [q, k, v, out], [1, 2, 3, 4], handle, device, name, flop, iters)


def fp8_plans(handle, device, iters: int) -> None:
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
                print(f"fp8 {label} q/k {name} v {v_name}: no plan ({str(err)[:300]})")
                continue
            buffers = _CUDNN.buffers(q8, k8, v8, *scales, out)
            time_plans(graph, buffers, list(range(1, len(buffers) + 1)), handle, device,
                       f"fp8 {label} q/k {name} v {v_name}", flop, iters)
    print("FP8 failures while building:", _CUDNN.failures, "| amax outputs bound:", _CUDNN.amax_outputs)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dtype", choices=("bf16", "fp8", "both"), default="both")
    p.add_argument("--iters", type=int, default=20)
    args = p.parse_args(argv)
    device = torch.device("cuda")
    if reason := fp8_attention_unavailable(device):
        raise SystemExit(reason)
    import cudnn
    handle = _CUDNN.handle(device)
    print(f"cuDNN attention plans on {torch.cuda.get_device_name()} | torch {torch.__version__} | "
          f"cuDNN {torch.backends.cudnn.version()} | frontend {cudnn.__version__}")
    if args.dtype in ("bf16", "both"):
        bf16_plans(handle, device, args.iters)
    if args.dtype in ("fp8", "both"):
        fp8_plans(handle, device, args.iters)


if __name__ == "__main__":
    main()
