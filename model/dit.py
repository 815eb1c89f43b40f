"""The causal Wan2.1 DiT of InSpatio-World (wan/modules/causal_model.py `CausalWanModel`, T2V,
36 input channels), written from reference/model-stack-spec.md §1.

Attribute names are Wan's upstream ones (`blocks.N.self_attn.q`, `ffn.0`, `head.head`, ...), so a
Wan2.1 / InSpatio state dict loads 1:1. Numerics follow the reference: the model runs in one dtype
(bf16 in production, no autocast), LayerNorm / RMSNorm statistics in float32, the timestep sinusoid
and RoPE in float64, rounded back to the activation dtype.

Latents cross the boundary as [B, F, C, h, w]; tokens are ordered frame, then row, then column.
"""
import logging
import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from model.attention import AttentionFn, select_attention
from model.kv_cache import KVCache
from model.rope import apply_rope

log = logging.getLogger(__name__)
Rope = tuple[Tensor, Tensor]  # (cos, sin), each [L, Dh / 2], from model.rope.token_table
# Linear layers of a block that run in FP8 with model.fp8. Measured per layer
# (benchmarks/kernel_bench.py, dit_bench --fp8-layers): only the up-projection pays; its input
# quantization fuses into the LayerNorm kernel, while the 1536-wide projections are slower in FP8 and
# quantizing the 8960-wide GELU output costs more than its matmul saves.
FP8_LAYERS = ("ffn.0",)


@dataclass(frozen=True)
class DiTConfig:
    """Architecture of Wan2.1-T2V-1.3B with InSpatio's input width. Checkpoint-fixed values."""
    dim: int = 1536
    ffn_dim: int = 8960
    num_heads: int = 12
    num_layers: int = 30
    freq_dim: int = 256                             # width of the timestep sinusoid
    text_len: int = 512                             # prompt rows (umT5 output, zero-padded)
    text_dim: int = 4096                            # umT5-XXL width
    in_dim: int = 36                                # latent 16 | mask 4 | render 16
    out_dim: int = 16                               # latent channels of the predicted flow
    patch_size: tuple[int, int, int] = (1, 2, 2)    # (frames, rows, columns) per token
    eps: float = 1e-6                               # LayerNorm and RMSNorm epsilon

    def __post_init__(self):
        if self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            raise ValueError(f"DiTConfig: dim {self.dim} must split into {self.num_heads} heads of even width")
        if self.patch_size[0] != 1:
            raise ValueError(f"DiTConfig: temporal patch size must be 1, got {self.patch_size}")

    @classmethod
    def tiny(cls) -> "DiTConfig":
        """The parity fixture's size (shared/parity/dit_tiny.*): head_dim stays 128."""
        return cls(dim=256, ffn_dim=512, num_heads=2, num_layers=2)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def grid(self, h: int, w: int) -> tuple[int, int]:
        """Patch rows and columns of an h x w latent: (30, 52) for 60 x 104."""
        if h % self.patch_size[1] or w % self.patch_size[2]:
            raise ValueError(f"latent grid {h}x{w} is not a multiple of the patch {self.patch_size[1:]}")
        return h // self.patch_size[1], w // self.patch_size[2]

    def tokens_per_frame(self, h: int, w: int) -> int:
        """Tokens of one latent frame: 1560 at 60 x 104 (480 x 832 pixels)."""
        gh, gw = self.grid(h, w)
        return gh * gw


def timestep_sinusoid(timestep: Tensor, dim: int) -> Tensor:
    """Wan's `sinusoidal_embedding_1d` in float64, cos half first. [B] -> [B, dim] float64"""
    half = dim // 2
    position = timestep.to(torch.float64)
    freqs = torch.pow(10000, -torch.arange(half, device=position.device, dtype=torch.float64).div(half))
    angles = torch.outer(position, freqs)                                       # [B, dim/2]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


def store(cache: tuple[Tensor, Tensor], start: int, k: Tensor, v: Tensor) -> None:
    """Write k, v [B, L, Nh, Dh] into cache rows [start, start + L) of one layer."""
    cache[0][:, start:start + k.shape[1]].copy_(k)
    cache[1][:, start:start + v.shape[1]].copy_(v)


def feed_forward(ffn: nn.Sequential, x: Tensor) -> Tensor:
    """ffn(x) = down(gelu_tanh(up(x))). On CUDA the bias and the tanh GELU run in the up matmul's
    cuBLASLt epilogue (one kernel, one rounding instead of two); elsewhere, and for FP8 layers, as
    written (the CPU's `_addmm_activation` uses the erf GELU, not Wan's tanh one)."""
    up, _, down = ffn
    if not (x.is_cuda and type(up) is nn.Linear):
        return ffn(x)
    h = torch._addmm_activation(up.bias, x.reshape(-1, x.shape[-1]), up.weight.t(), use_gelu=True)
    return down(h.view(*x.shape[:-1], -1))


class RMSNorm(nn.Module):
    """WanRMSNorm: statistics in float32 over the whole width, rounded, then scaled."""
    def __init__(self, dim: int, eps: float, **kw):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, **kw))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class SelfAttention(nn.Module):
    """Self-attention over the current tokens and, optionally, cached context rows.

    kv_size = (a, b), the reference's contract:
      b < 0  write keys/values of the current L tokens into cache rows [a, a + L); attend to them only
      b = 0  attend to the current tokens only; the cache is untouched
      b > 0  attend to cache rows [a, a + b) followed by the current tokens; rows [a, a + b) are
             untouched. When the cache has room, the current keys/values are written to rows
             [a + b, a + b + L) so attention reads one contiguous span instead of a concatenation.
    """
    def __init__(self, cfg: DiTConfig, **kw):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(cfg.dim, cfg.dim, **kw) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(cfg.dim, cfg.eps, **kw), RMSNorm(cfg.dim, cfg.eps, **kw)

    def fuse_qkv(self) -> None:
        """Replace q, k, v by one projection `qkv` ([3D, D] weight, one matmul instead of three).
        For inference after the weights are loaded; the state dict then has `qkv.*` keys instead."""
        if hasattr(self, "qkv"):
            return
        q, k, v = self.q, self.k, self.v
        fused = nn.Linear(q.in_features, 3 * q.out_features, device=q.weight.device, dtype=q.weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([q.weight, k.weight, v.weight]))
            fused.bias.copy_(torch.cat([q.bias, k.bias, v.bias]))
        del self.q, self.k, self.v
        self.qkv = fused

    def project(self, x: Tensor, rope: Rope) -> tuple[Tensor, Tensor, Tensor]:
        """x: [B, L, D] -> q, k, v [B, L, Nh, Dh], q and k normed and rotated."""
        heads = (self.num_heads, -1)
        if hasattr(self, "qkv"):
            q, k, v = self.qkv(x).chunk(3, dim=-1)                              # [B, L, D] each
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        q = apply_rope(self.norm_q(q).unflatten(2, heads), *rope)               # [B, L, Nh, Dh]
        k = apply_rope(self.norm_k(k).unflatten(2, heads), *rope)               # [B, L, Nh, Dh]
        return q, k, v.unflatten(2, heads)

    def forward(self, x: Tensor, cache: tuple[Tensor, Tensor], kv_size: tuple[int, int], rope: Rope,
                attend: AttentionFn) -> Tensor:
        q, k, v = self.project(x, rope)
        (cache_k, cache_v), (a, b), L = cache, kv_size, x.shape[1]
        if b < 0:
            store(cache, a, k, v)
        elif b > 0 and cache_k.shape[1] >= a + b + L:
            store(cache, a + b, k, v)
            k, v = cache_k[:, a:a + b + L], cache_v[:, a:a + b + L]             # [B, b + L, Nh, Dh]
        elif b > 0:
            k = torch.cat([cache_k[:, a:a + b], k], dim=1)                      # [B, b + L, Nh, Dh]
            v = torch.cat([cache_v[:, a:a + b], v], dim=1)
        return self.o(attend(q, k, v).flatten(2))


class CrossAttention(nn.Module):
    """WanT2VCrossAttention: every token attends to all text rows, padding included (no mask)."""
    def __init__(self, cfg: DiTConfig, **kw):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(cfg.dim, cfg.dim, **kw) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(cfg.dim, cfg.eps, **kw), RMSNorm(cfg.dim, cfg.eps, **kw)

    def text_kv(self, ctx: Tensor) -> tuple[Tensor, Tensor]:
        """ctx: [B, S, D] embedded text -> k, v [B, S, Nh, Dh]; fixed per prompt, so computed once."""
        return (self.norm_k(self.k(ctx)).unflatten(2, (self.num_heads, -1)),
                self.v(ctx).unflatten(2, (self.num_heads, -1)))

    def forward(self, x: Tensor, text_kv: tuple[Tensor, Tensor], attend: AttentionFn) -> Tensor:
        q = self.norm_q(self.q(x)).unflatten(2, (self.num_heads, -1))          # [B, L, Nh, Dh]
        return self.o(attend(q, *text_kv).flatten(2))


class Block(nn.Module):
    """CausalWanAttentionBlock: modulated self-attention, plain cross-attention, modulated FFN."""
    def __init__(self, cfg: DiTConfig, **kw):
        super().__init__()
        self.modulation = nn.Parameter(torch.randn(1, 6, cfg.dim, **kw) / cfg.dim ** 0.5)
        self.norm1 = nn.LayerNorm(cfg.dim, cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(cfg, **kw)
        self.norm3 = nn.LayerNorm(cfg.dim, cfg.eps, **kw)
        self.cross_attn = CrossAttention(cfg, **kw)
        self.norm2 = nn.LayerNorm(cfg.dim, cfg.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(cfg.dim, cfg.ffn_dim, **kw), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.ffn_dim, cfg.dim, **kw))

    def forward(self, x: Tensor, e0: Tensor, text_kv: tuple[Tensor, Tensor], cache: tuple[Tensor, Tensor],
                kv_size: tuple[int, int], rope: Rope, attend: AttentionFn, attend_text: AttentionFn) -> Tensor:
        """x: [B, L, D]; e0: [B, 6, D] projected time embedding -> [B, L, D]. attend: the
        self-attention kernel; attend_text: the cross-attention one (never FP8: 512 keys)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation + e0).chunk(6, dim=1)  # [B, 1, D]
        y = self.self_attn(self.norm1(x) * (1 + scale1) + shift1, cache, kv_size, rope, attend)
        x = x + y * gate1
        x = x + self.cross_attn(self.norm3(x), text_kv, attend_text)
        y = feed_forward(self.ffn, self.norm2(x) * (1 + scale2) + shift2)
        return x + y * gate2

    def write_kv(self, x: Tensor, e0: Tensor, cache: tuple[Tensor, Tensor], rope: Rope) -> None:
        """Only the cache write of `forward` with kv_size (0, -1): rows [0, L)."""
        shift1, scale1 = (self.modulation + e0)[:, :2].chunk(2, dim=1)
        _, k, v = self.self_attn.project(self.norm1(x) * (1 + scale1) + shift1, rope)
        store(cache, 0, k, v)


class Head(nn.Module):
    """Modulated output projection to one patch of flow per token (64 = 1 * 2 * 2 * 16)."""
    def __init__(self, cfg: DiTConfig, **kw):
        super().__init__()
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim, **kw) / cfg.dim ** 0.5)
        self.norm = nn.LayerNorm(cfg.dim, cfg.eps, elementwise_affine=False)
        self.head = nn.Linear(cfg.dim, math.prod(cfg.patch_size) * cfg.out_dim, **kw)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        """x: [B, L, D]; e: [B, D] time embedding -> [B, L, 64]"""
        shift, scale = (self.modulation + e[:, None]).chunk(2, dim=1)          # [B, 1, D] each
        return self.head(self.norm(x) * (1 + scale) + shift)


class CausalWanModel(nn.Module):
    """Flow prediction for one block of latent frames against a static KV cache.

    Typical use (see model/sampler.py): `text_kv = encode_text(prompt)` once per prompt, then per
    block one `prefill` (context frames, t = 0, RoPE offset 0) and denoising `forward` passes
    (noisy frames, RoPE offset 6, kv_size (0, rows written by the prefill)).
    """
    def __init__(self, cfg: DiTConfig = DiTConfig(), *, attn_backend: str = "auto", device=None,
                 dtype: torch.dtype | None = None):
        super().__init__()
        self.cfg, kw, D = cfg, dict(device=device, dtype=dtype), cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_dim, D, cfg.patch_size, cfg.patch_size, **kw)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, D, **kw), nn.GELU(approximate="tanh"),
                                            nn.Linear(D, D, **kw))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, D, **kw), nn.SiLU(), nn.Linear(D, D, **kw))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D, **kw))
        self.blocks = nn.ModuleList(Block(cfg, **kw) for _ in range(cfg.num_layers))
        self.head = Head(cfg, **kw)
        self.set_attention(attn_backend)

    def set_attention(self, backend: str | None = None) -> None:
        """(Re)choose the attention kernel for the parameters' current device and dtype.
        backend None keeps the one asked for before (at construction, or by the last call)."""
        weight = self.patch_embedding.weight
        self.attn_request = backend or self.attn_request
        self.attn_backend, self._attend = select_attention(self.attn_request, device=weight.device, dtype=weight.dtype)
        self._attend_text = self._attend if self.attn_request != "cudnn_fp8" else \
            select_attention("auto", device=weight.device, dtype=weight.dtype)[1]
        self._attend_for = (weight.device, weight.dtype)

    def attention_is_stale(self) -> bool:
        """True after the weights moved (e.g. built on meta, loaded onto a GPU) since the kernel was chosen."""
        weight = self.patch_embedding.weight
        return self._attend_for != (weight.device, weight.dtype)

    def prepare_for_inference(self, *, fp8: bool = False, fp8_layers: Sequence[str] = FP8_LAYERS,
                              fp8_attention: bool = True) -> None:
        """One-way speed-ups after the weights are loaded and placed: fused q/k/v projections, and
        with fp8 the blocks' `fp8_layers` as FP8 matmuls (model/fp8.py; Ada, Hopper or newer) and,
        with fp8_attention, self-attention in FP8 where its kernel exists (model/fp8_attention.py;
        an explicitly chosen attention backend is kept)."""
        for block in self.blocks:
            block.self_attn.fuse_qkv()
        if fp8:
            from model.fp8 import to_fp8
            for block in self.blocks:
                to_fp8(block, names=tuple(fp8_layers))
        if fp8 and fp8_attention and self.attn_request == "auto":
            from model.fp8_attention import fp8_attention_unavailable
            reason = fp8_attention_unavailable(self.patch_embedding.weight.device)
            if reason:
                log.warning("FP8 mode: attention stays in %s: %s", self.attn_backend, reason)
            else:
                self.set_attention("cudnn_fp8")

    def new_cache(self, batch: int, rows: int) -> KVCache:
        """A zeroed self-attention cache of `rows` tokens per layer, on the parameters' device and dtype."""
        w, cfg = self.patch_embedding.weight, self.cfg
        return KVCache.zeros(cfg.num_layers, batch, rows, cfg.num_heads, cfg.head_dim, device=w.device, dtype=w.dtype)

    def encode_text(self, prompt_embeds: Tensor) -> KVCache:
        """prompt_embeds: [B, S <= text_len, text_dim] umT5 output -> per-layer text K/V [layers, B, text_len, Nh, Dh].
        The reference recomputes this in every forward; it depends only on the prompt."""
        B, S, _ = prompt_embeds.shape
        if S > self.cfg.text_len:
            raise ValueError(f"prompt has {S} rows, more than text_len {self.cfg.text_len}")
        padded = F.pad(prompt_embeds.to(self.patch_embedding.weight.dtype), (0, 0, 0, self.cfg.text_len - S))
        ctx = self.text_embedding(padded)                                       # [B, text_len, D]
        ks, vs = zip(*(block.cross_attn.text_kv(ctx) for block in self.blocks))
        return KVCache(torch.stack(ks), torch.stack(vs))

    def embed(self, x: Tensor) -> Tensor:
        """x: [B, F, in_dim, h, w] -> tokens [B, F * h/2 * w/2, D]. The (1, 2, 2) Conv3d as a 2-D conv per frame."""
        B, Fr, C, h, w = x.shape
        assert C == self.cfg.in_dim, f"DiT input has {C} channels, expected {self.cfg.in_dim}"
        conv = self.patch_embedding
        y = F.conv2d(x.reshape(B * Fr, C, h, w), conv.weight[:, :, 0], conv.bias, stride=conv.stride[1:])
        return y.view(B, Fr, self.cfg.dim, -1).transpose(2, 3).reshape(B, -1, self.cfg.dim)

    def embed_time(self, timestep: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """timestep: [B] in [0, 1000] -> e [B, D], e0 [B, 6, D]."""
        e = self.time_embedding(timestep_sinusoid(timestep, self.cfg.freq_dim).to(dtype))
        return e, self.time_projection(e).unflatten(1, (6, self.cfg.dim))

    def unpatchify(self, y: Tensor, h: int, w: int) -> Tensor:
        """y: [B, L, 64] -> [B, F, out_dim, h, w]; feature (q * 2 + r) * 16 + c lands at (c, 2i + q, 2j + r)."""
        (_, ph, pw), (gh, gw) = self.cfg.patch_size, self.cfg.grid(h, w)
        B = y.shape[0]
        y = y.view(B, -1, gh, gw, ph, pw, self.cfg.out_dim)                    # [B, F, gh, gw, ph, pw, C]
        return y.permute(0, 1, 6, 2, 4, 3, 5).reshape(B, -1, self.cfg.out_dim, h, w)

    def forward(self, x: Tensor, timestep: Tensor, text_kv: KVCache, cache: KVCache,
                kv_size: tuple[int, int], rope: Rope, blocks: Sequence[nn.Module] | None = None) -> Tensor:
        """One DiT pass. x: [B, F, 36, h, w] (latent | mask | render; context frames carry zeros in
        16..35); timestep: [B] (0 for context); text_kv: `encode_text`; kv_size: see SelfAttention;
        rope: token table at this pass's offset; blocks: stand-ins for self.blocks (compiled ones)
        -> flow [B, F, 16, h, w]"""
        tokens = self.embed(x)                                                  # [B, L, D]
        e, e0 = self.embed_time(timestep, tokens.dtype)
        for i, block in enumerate(blocks or self.blocks):
            tokens = block(tokens, e0, text_kv.layer(i), cache.layer(i), kv_size, rope, self._attend, self._attend_text)
        return self.unpatchify(self.head(tokens, e), *x.shape[-2:])

    def prefill(self, x: Tensor, timestep: Tensor, text_kv: KVCache, cache: KVCache, rope: Rope,
                blocks: Sequence[nn.Module] | None = None) -> None:
        """The context pass, forward(..., kv_size=(0, -1)), minus the work whose output the pipeline
        discards (the last block's attention, cross-attention and FFN, and the head): writes the same
        cache rows [0, L) of every layer and returns nothing."""
        tokens = self.embed(x)
        _, e0 = self.embed_time(timestep, tokens.dtype)
        for i, block in enumerate((blocks or self.blocks)[:-1]):
            tokens = block(tokens, e0, text_kv.layer(i), cache.layer(i), (0, -1), rope, self._attend, self._attend_text)
        self.blocks[-1].write_kv(tokens, e0, cache.layer(len(self.blocks) - 1), rope)
