"""Block-autoregressive sampling of the causal DiT (pipeline/causal_inference.py, spec §4).

Each block of 3 latent frames is one context pass and 4 denoising passes:
  context   [source latent of the block | previous block's x0] (16 channels + 20 zeros, t = 0,
            RoPE times 0..5) fills KV-cache rows [0, frames * tokens_per_frame); the first block
            after a reset has no previous x0 and uses the 3 source frames alone
  denoise   x_t with the block's mask and render latents (36 channels, RoPE times 6..8) attends to
            those rows and itself; x0 = x_t - sigma * flow; re-noised with fresh noise between steps
The cache is rewritten every block; it is a fixed window, not a growing history.
"""
from typing import Sequence

import torch
from torch import Tensor

from model.cuda_graphs import GraphCache
from model.dit import CausalWanModel
from model.kv_cache import KVCache
from model.rope import base_table, token_table
from model.scheduler import DENOISING_STEPS, FlowMatchSchedule, add_noise, flow_to_x0

FRAMES_PER_BLOCK = 3  # latent frames per block: 12 pixel frames (9 for a video's first block)
LATENT_CHANNELS = 16
COND_CHANNELS = 20    # mask latent 4 | render latent 16


class BlockSampler:
    """Streaming sampler: owns the KV cache, the per-prompt text K/V and static input buffers.
    Not thread-safe; one worker thread drives it block by block:

        sampler = BlockSampler(model, prompt_embeds, latent_hw=(60, 104), generator=g)
        for ref, cond20 in blocks:                  # [B, 3, 16, h, w], [B, 3, 20, h, w]
            x0 = sampler.generate_block(ref, cond20)  # [B, 3, 16, h, w] in the model's dtype
                                                    # = prefill(ref), then denoise(cond20)
        sampler.reset()                             # after a scrub or jump: no previous block

    noise: None draws from `generator`; a tensor [steps, B, 3, 16, h, w] injects it (index 0 is the
    initial x_T, index k the fresh noise that re-noises to step k's sigma), for parity and replay.
    rope_dtype float64 is the reference's arithmetic; float32 is faster and off by ~5e-7 before rounding.
    compile: torch.compile the transformer block with static shapes, once, shared by the 30 layers
    (4 graphs: context and denoising, first and steady block; quick to compile).
    The KV cache has room for the denoising tokens after the context rows (see SelfAttention).
    block_packages: a model.block_packages.BlockPackages of `model`: the block runs from its
    ahead-of-time packages where they exist, else from the compiled block (or the eager one without
    compile).
    cuda_graphs: replay each pass as a CUDA graph (model/cuda_graphs.py; CUDA only, 4 graphs), which
    is why the prompt, the timestep and the inputs live in static buffers.
    """

    def __init__(self, model: CausalWanModel, prompt_embeds: Tensor, *, latent_hw: tuple[int, int] = (60, 104),
                 steps: Sequence[int] = DENOISING_STEPS, generator: torch.Generator | None = None,
                 rope_dtype: torch.dtype = torch.float64, compile: bool = False, cuda_graphs: bool = False,
                 block_packages=None):
        weight = model.patch_embedding.weight
        if model.attention_is_stale():          # e.g. built on meta, then loaded onto the GPU
            model.set_attention()
        self.model, self.device, self.dtype, self.generator = model, weight.device, weight.dtype, generator
        self.batch, (self.h, self.w) = prompt_embeds.shape[0], latent_hw
        self.tokens_per_frame = model.cfg.tokens_per_frame(self.h, self.w)
        n, grid = FRAMES_PER_BLOCK, model.cfg.grid(self.h, self.w)
        self.cache = model.new_cache(self.batch, 3 * n * self.tokens_per_frame)   # context 2n | noisy n
        self.text_kv: KVCache | None = None
        self.set_prompt(prompt_embeds)

        schedule = FlowMatchSchedule.create()
        timesteps = schedule.warped_steps(tuple(steps)).tolist()      # [1000, 937.5, 833.33, 625]
        self._sigmas = [schedule.sigma(t) for t in timesteps]
        self._timesteps = [torch.full((self.batch,), t, dtype=torch.float32, device=self.device) for t in timesteps]  # [B] each
        self._t_context = torch.zeros(self.batch, dtype=torch.int64, device=self.device)  # [B]
        self._t = torch.zeros(self.batch, dtype=torch.float32, device=self.device)      # [B]: this step's timestep

        base = base_table(model.cfg.head_dim)
        self._rope_context = token_table(base, 2 * n, *grid, offset=0, device=self.device, dtype=rope_dtype)
        self._rope_noisy = token_table(base, n, *grid, offset=2 * n, device=self.device, dtype=rope_dtype)

        buf = dict(device=self.device, dtype=self.dtype)
        self._context = torch.zeros(self.batch, 2 * n, model.cfg.in_dim, self.h, self.w, **buf)  # [B, 6, 36, h, w]
        self._x = torch.zeros(self.batch, n, model.cfg.in_dim, self.h, self.w, **buf)            # [B, 3, 36, h, w]
        self._noise = torch.empty(len(timesteps), self.batch, n, LATENT_CHANNELS, self.h, self.w, **buf)  # [steps, B, 3, 16, h, w]
        self._has_previous = False
        self._prefilled_rows: int | None = None    # KV rows the current block's prefill wrote

        self._prefill, self._denoise, self._blocks = model.prefill, model.forward, None
        self.compiled, self.block_packages = compile, None
        if compile:
            self._blocks = [torch.compile(block, dynamic=False) for block in model.blocks]
        if block_packages is not None:
            self._blocks = block_packages.layers(fallback=self._blocks or list(model.blocks))
            self.block_packages = block_packages
        self._graphs = GraphCache(cuda_graphs and self.device.type == "cuda")

    @torch.no_grad()
    def set_prompt(self, prompt_embeds: Tensor) -> None:
        """prompt_embeds: [B, S, 4096] umT5 output. Text K/V are computed here, once per prompt."""
        if prompt_embeds.shape[0] != self.batch:
            raise ValueError(f"prompt batch {prompt_embeds.shape[0]} != sampler batch {self.batch}")
        text_kv = self.model.encode_text(prompt_embeds.to(self.device))
        if self.text_kv is None:
            self.text_kv = text_kv
        else:                                   # in place: captured CUDA graphs read these buffers
            self.text_kv.k.copy_(text_kv.k)
            self.text_kv.v.copy_(text_kv.v)

    def reset(self) -> None:
        """Discontinuity: the next block is conditioned on its source frames only. Cache rows past
        what the next context pass writes are never read, so the cache needs no clearing."""
        self._has_previous, self._prefilled_rows = False, None

    @torch.no_grad()
    def generate_block(self, ref_latent: Tensor, cond20: Tensor, noise: Tensor | None = None,
                       trace: dict | None = None) -> Tensor:
        """ref_latent: [B, 3, 16, h, w] source latents time-aligned with the block; cond20:
        [B, 3, 20, h, w] mask | render latents; noise: see the class doc. trace, if given, receives
        the context input and every step's xt, flow and x0 (debugging and parity only).
        -> x0 [B, 3, 16, h, w] in the model's dtype."""
        self.prefill(ref_latent, trace)
        return self.denoise(cond20, noise, trace)

    @torch.no_grad()
    def prefill(self, ref_latent: Tensor, trace: dict | None = None) -> None:
        """The block's context pass. It needs the block's source latents and the previous block's x0,
        but not the camera (the render), so a runtime can run it before the camera is known. Running
        it again with other source latents replaces the first run; denoise() uses the last one."""
        n, C = FRAMES_PER_BLOCK, LATENT_CHANNELS
        self._check(ref_latent, LATENT_CHANNELS, "ref_latent")
        frames = 2 * n if self._has_previous else n
        rows = frames * self.tokens_per_frame
        self._context[:, :n, :C].copy_(ref_latent)
        context = self._context[:, :frames]
        if trace is not None:
            trace["context"] = context.clone()
        self._graphs(("context", rows), self._prefill, context, self._t_context, self.text_kv, self.cache,
                     (self._rope_context[0][:rows], self._rope_context[1][:rows]), blocks=self._blocks)
        self._prefilled_rows = rows

    @torch.no_grad()
    def denoise(self, cond20: Tensor, noise: Tensor | None = None, trace: dict | None = None) -> Tensor:
        """The block's 4 denoising passes after its prefill(). cond20 [B, 3, 20, h, w]; noise: see the
        class doc. -> x0 [B, 3, 16, h, w] in the model's dtype."""
        n, C, rows = FRAMES_PER_BLOCK, LATENT_CHANNELS, self._prefilled_rows
        if rows is None:
            raise RuntimeError("BlockSampler.denoise: call prefill() for this block first")
        self._check(cond20, COND_CHANNELS, "cond20")
        noise = self._noise.normal_(generator=self.generator) if noise is None else noise.to(self.device, self.dtype)
        self._x[:, :, C:].copy_(cond20)
        x = noise[0]
        for k, (t, sigma) in enumerate(zip(self._timesteps, self._sigmas)):
            self._x[:, :, :C].copy_(x)
            self._t.copy_(t)
            flow = self._graphs(("denoise", rows), self._denoise, self._x, self._t, self.text_kv, self.cache, (0, rows),
                                self._rope_noisy, blocks=self._blocks)
            x0 = flow_to_x0(flow, x, sigma)
            if trace is not None:
                trace.update({f"s{k}.xt": x.clone(), f"s{k}.flow": flow.clone(), f"s{k}.x0": x0})
            if k + 1 < len(self._sigmas):
                x = add_noise(x0, noise[k + 1], self._sigmas[k + 1])
        self._context[:, n:, :C].copy_(x0)
        self._has_previous, self._prefilled_rows = True, None
        return x0

    def _check(self, t: Tensor, channels: int, name: str) -> None:
        want = (self.batch, FRAMES_PER_BLOCK, channels, self.h, self.w)
        if tuple(t.shape) != want:
            raise ValueError(f"{name}: shape {tuple(t.shape)}, expected {want} [B, F, C, h, w]")


def sample_video(model: CausalWanModel, prompt_embeds: Tensor, ref_latent: Tensor, mask_latent: Tensor,
                 render_latent: Tensor, *, noise: Sequence[Tensor] | None = None,
                 generator: torch.Generator | None = None, **sampler_kw) -> Tensor:
    """Offline generation of a whole clip, as the reference's `inference()`.
    ref_latent, render_latent: [B, F, 16, h, w]; mask_latent: [B, F, 4, h, w]; noise: one
    [steps, B, 3, 16, h, w] tensor per block (or None: draw from `generator`).
    -> [B, F - F % 3, 16, h, w]"""
    n = FRAMES_PER_BLOCK
    frames = ref_latent.shape[1] - ref_latent.shape[1] % n
    sampler = BlockSampler(model, prompt_embeds, latent_hw=tuple(ref_latent.shape[-2:]), generator=generator,
                           **sampler_kw)
    out = []
    for i, s in enumerate(range(0, frames, n)):
        cond20 = torch.cat([mask_latent[:, s:s + n], render_latent[:, s:s + n]], dim=2)   # [B, 3, 20, h, w]
        out.append(sampler.generate_block(ref_latent[:, s:s + n], cond20, None if noise is None else noise[i]))
    return torch.cat(out, dim=1)                                                        # [B, F - F % 3, 16, h, w]
