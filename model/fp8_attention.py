"""FP8 self-attention for the opt-in FP8 mode (`model.fp8`): cuDNN's FP8 SDPA kernel (Hopper or
newer) through the `nvidia-cudnn-frontend` package, as the attention function
`fp8_attention(q, k, v)` with the signature of model/attention.py.

PyTorch's SDPA has no FP8 kernel, so the graph is built with the cuDNN frontend's Python API and
run as a PyTorch custom op (`torch.ops.roam.fp8_sdpa`), which torch.compile keeps opaque and CUDA
graphs capture like any other kernel.

Numerics, per call:
  q, k, v are quantized to float8_e4m3fn with one scale per tensor (amax / 448, computed on the
  GPU, so nothing is known in advance and nothing overflows); the kernel multiplies the descales
  back in float32, quantizes the softmax probabilities P (in [0, 1]) with the fixed scale 448, and
  writes O in e4m3 with V's scale (cuDNN 9.19 has no bf16 O for FP8 inputs on Hopper), which
  `fp8_attention` converts back. `emulate_fp8_sdpa` does the same arithmetic in float32 and is the
  op's CPU kernel, so tests run here; it is close to the kernel, not bitwise (the kernel scales P
  against the running maximum of its key tiles).
"""
import atexit
import math
import threading

import torch
from torch import Tensor

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max          # 448
P_SCALE = FP8_MAX                       # softmax probabilities in [0, 1] use the whole e4m3 range


def quantize_per_tensor(x: Tensor) -> tuple[Tensor, Tensor]:
    """x: any shape -> (float8 like x, float32 descale [1]) with x ~ x8 * descale."""
    descale = (x.abs().amax().float() / FP8_MAX).clamp(min=1e-12).reshape(1)            # [1]
    return (x.float() / descale).to(FP8), descale


def emulate_fp8_sdpa(q8: Tensor, k8: Tensor, v8: Tensor, descale_q: Tensor, descale_k: Tensor,
                     descale_v: Tensor) -> Tensor:
    """The FP8 kernel's arithmetic in float32. q8: [B, Lq, Nh, Dh], k8, v8: [B, Lk, Nh, Dh] float8
    -> O / descale_v [B, Lq, Nh, Dh] float8. The row sum of the softmax uses unquantized
    probabilities, the P @ V product quantized ones, as flash-style FP8 kernels do."""
    q, k, v = q8.float() * descale_q, k8.float() * descale_k, v8.float() * descale_v
    scores = torch.einsum("blhd,bmhd->bhlm", q, k) / math.sqrt(q.shape[-1])   # [B, Nh, Lq, Lk]
    p = torch.exp(scores - scores.amax(dim=-1, keepdim=True))                 # [B, Nh, Lq, Lk] in [0, 1]
    p8 = (p * P_SCALE).to(FP8).float() / P_SCALE
    out = torch.einsum("bhlm,bmhd->blhd", p8, v) / p.sum(dim=-1).transpose(1, 2)[..., None]  # [B, Lq, Nh, Dh]
    return (out / descale_v).to(FP8).contiguous()                              # |O| <= amax |V|: no overflow


@torch.library.custom_op("roam::fp8_sdpa", mutates_args=())
def fp8_sdpa(q8: Tensor, k8: Tensor, v8: Tensor, descale_q: Tensor, descale_k: Tensor, descale_v: Tensor) -> Tensor:
    """Softmax attention (scale 1/sqrt(Dh), no mask) on float8 q8: [B, Lq, Nh, Dh], k8, v8:
    [B, Lk, Nh, Dh] with float32 descales [1] -> O / descale_v, float8 [B, Lq, Nh, Dh]."""
    return emulate_fp8_sdpa(q8, k8, v8, descale_q, descale_k, descale_v)


@fp8_sdpa.register_fake
def _(q8, k8, v8, descale_q, descale_k, descale_v):
    return torch.empty_like(q8)                                                         # [B, Lq, Nh, Dh]


@fp8_sdpa.register_kernel("cuda")
def _(q8, k8, v8, descale_q, descale_k, descale_v):
    return _CUDNN.run(q8, k8, v8, descale_q, descale_k, descale_v)


def fp8_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """q: [B, Lq, Nh, Dh], k, v: [B, Lk, Nh, Dh] -> [B, Lq, Nh, Dh] in q's dtype, computed in FP8.
    Under torch.compile the quantization fuses into the producers and the dequantization into
    one element-wise kernel."""
    (q8, dq), (k8, dk), (v8, dv) = (quantize_per_tensor(t) for t in (q, k, v))
    return (torch.ops.roam.fp8_sdpa(q8, k8, v8, dq, dk, dv).float() * dv).to(q.dtype)


def fp8_attention_unavailable(device: torch.device) -> str | None:
    """Why FP8 attention cannot run on `device`, or None when it can."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return f"FP8 attention needs a CUDA GPU, not {device}"
    if torch.cuda.get_device_capability(device) < (9, 0):
        return f"{torch.cuda.get_device_name(device)} has no FP8 attention kernel (cuDNN's needs Hopper or newer)"
    try:
        import cudnn  # noqa: F401  (nvidia-cudnn-frontend)
    except ImportError:
        return "FP8 attention needs the cuDNN frontend: python3 -m pip install --no-deps -r requirements-fp8.txt"
    return None


def token_strides(B: int, L: int, H: int, D: int) -> tuple[list[int], list[int]]:
    """cuDNN's [B, H, L, D] dims and strides of a [B, L, H, D] token-major tensor."""
    return [B, H, L, D], [L * H * D, D, H * D, 1]


class _CudnnFp8Sdpa:
    """Built cuDNN FP8 SDPA plans, one per (device, shapes), and one cuDNN handle per thread and
    device (handles are not thread-safe). Plans are immutable once built, so all threads share
    them; builds are serialized. O comes out in float8 with the scale 1 / descale_v (cuDNN 9.19
    has no FP8 attention with a bf16 O on Hopper)."""

    def __init__(self):
        self._plans: dict[tuple, tuple] = {}
        self._constants: dict[int, tuple[Tensor, Tensor]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self.amax_outputs: bool | None = None           # whether this cuDNN wants the amax outputs bound
        self.failures: list[str] = []

    def clear(self) -> None:
        """Drop the plans and this thread's handles (at exit: the cuDNN bindings report objects
        still alive when the interpreter shuts down as leaks)."""
        self._plans.clear()
        self._local.__dict__.pop("handles", None)

    def handle(self, device: torch.device):
        """This thread's handle for `device`, bound to the current stream."""
        import cudnn
        handles = self._local.__dict__.setdefault("handles", {})
        if device.index not in handles:
            with torch.cuda.device(device):
                handles[device.index] = cudnn.create_handle()
        handle = handles[device.index]
        cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream(device).cuda_stream)
        return handle

    def _p_scales(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """(scale_s, descale_s) as float32 [1] device tensors, fixed per device."""
        if device.index not in self._constants:
            self._constants[device.index] = (torch.full((1,), P_SCALE, device=device),
                                             torch.full((1,), 1 / P_SCALE, device=device))  # [1] each
        return self._constants[device.index]

    def buffers(self, q8, k8, v8, descale_q, descale_k, descale_v, out) -> list[Tensor]:
        """The graph's operands in uid order."""
        scale_s, descale_s = self._p_scales(q8.device)
        buffers = [q8, k8, v8, descale_q, descale_k, descale_v, descale_s, scale_s, 1 / descale_v, out]
        if self.amax_outputs:
            buffers += [torch.empty(1, device=q8.device), torch.empty(1, device=q8.device)]   # [1] each: amax S, amax O
        return buffers

    def run(self, q8, k8, v8, descale_q, descale_k, descale_v) -> Tensor:
        q8, k8, v8 = q8.contiguous(), k8.contiguous(), v8.contiguous()
        (B, Lq, H, D), Lk, device = q8.shape, k8.shape[1], q8.device
        handle = self.handle(device)
        key = (device.index, B, Lq, Lk, H, D)
        if key not in self._plans:
            with self._lock:
                if key not in self._plans:
                    graph = self.build(handle, token_strides(B, Lq, H, D), token_strides(B, Lk, H, D),
                                       token_strides(B, Lk, H, D), token_strides(B, Lq, H, D))
                    self._plans[key] = graph, graph.get_workspace_size()
        graph, workspace_size = self._plans[key]
        out = torch.empty_like(q8)                                                      # [B, Lq, Nh, Dh]
        workspace = torch.empty(max(workspace_size, 1), dtype=torch.uint8, device=device)  # [workspace_size] bytes
        buffers = self.buffers(q8, k8, v8, descale_q, descale_k, descale_v, out)
        graph.execute(buffers, workspace, handle=handle, tensor_uids=list(range(1, len(buffers) + 1)))
        return out

    def build(self, handle, q_layout, k_layout, v_layout, o_layout, build_all: bool = False):
        """A built graph for the given ([B, H, L, D] dims, strides) of q, k, v and O. The first
        build learns whether this cuDNN wants the amax outputs bound."""
        for amax in (self.amax_outputs,) if self.amax_outputs is not None else (False, True):
            try:
                graph = self._graph(handle, q_layout, k_layout, v_layout, o_layout, amax, build_all)
            except Exception as err:                    # cuDNN reports an unsupported graph by raising
                self.failures.append(f"amax outputs {amax}: {str(err).splitlines()[0][:200]}")
                continue
            self.amax_outputs = amax
            return graph
        raise RuntimeError(f"cuDNN has no FP8 attention plan for q {q_layout[0]}, k {k_layout[0]} "
                           f"({'; '.join(self.failures)}); set model.fp8_attention=false")

    @staticmethod
    def _graph(handle, q_layout, k_layout, v_layout, o_layout, amax: bool, build_all: bool):
        import cudnn
        f8, f32 = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT
        g = cudnn.pygraph(handle=handle, io_data_type=f8, intermediate_data_type=f32, compute_data_type=f32,
                          is_cuda_graph_replay_expected=True)

        def scalar(name: str, uid: int):
            return g.tensor(name=name, dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=f32, uid=uid)

        q, k, v = (g.tensor(name=name, dim=dims, stride=strides, data_type=f8, uid=uid)
                   for uid, (name, (dims, strides)) in enumerate(zip("qkv", (q_layout, k_layout, v_layout)), start=1))
        scales = [scalar(name, uid) for uid, name in enumerate(
            ("descale_q", "descale_k", "descale_v", "descale_s", "scale_s", "scale_o"), start=4)]
        o, _, amax_s, amax_o = g.sdpa_fp8(q, k, v, *scales, generate_stats=False,
                                          attn_scale=1 / math.sqrt(q_layout[0][3]), name="fp8_attention")
        o.set_uid(10).set_output(True).set_dim(o_layout[0]).set_stride(o_layout[1]).set_data_type(f8)
        if amax:
            for uid, t in ((11, amax_s), (12, amax_o)):
                t.set_uid(uid).set_output(True).set_dim([1, 1, 1, 1]).set_stride([1, 1, 1, 1]).set_data_type(f32)
        g.validate()
        g.build_operation_graph()
        g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.B, cudnn.heur_mode.FALLBACK] if build_all
                                 else [cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        g.check_support()
        g.build_plans(cudnn.build_plan_policy.ALL) if build_all else g.build_plans()
        return g


# The op's CUDA kernel reaches its plans here: a cache of immutable cuDNN plans, like PyTorch's own.
_CUDNN = _CudnnFp8Sdpa()
atexit.register(_CUDNN.clear)
