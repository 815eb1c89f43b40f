"""DiTRefiner: the InSpatio-World model as a Refiner, streaming block by block.

Per block (3 latent frames): encode the source frames and the point-cloud render with the latent
codec (each through its own streaming encoder state; source latents of a block seen before with the
same history come from model/source_cache.py, exactly), turn the validity mask into the 4-channel mask
latent, run the DiT block (context pass + 4 denoising steps, model/sampler.py), and decode the block's
x0 with the streaming decoder.

The source encode and the context pass do not depend on the camera: `prepare` runs them for the
block the world clock predicts, while the GPU would otherwise wait for the next request, and
`refine` then skips them (a block with other source frames rewinds and runs them itself). This takes
them off the control-to-photon path.

Frame grouping follows the codec: the Wan VAE takes 9 frames for the first block and 12 after, the
TAE 12 always; the decoder yields 9 frames for the first block, 12 after.
The mask latent always uses the reference's (Wan VAE) grouping, latent i = mask frames 4i-3 .. 4i with
frame 0 repeated, so with the TAE the mask lags its block by 3 frames, as in the reference.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from model import checkpoint
from model.dit import CausalWanModel, DiTConfig
from model.latent_codec import LatentCodec, TAECodec, VAECodec, load_codec
from model.mask import mask_to_latent
from model.refiners import RefineInput, Refiner
from model.sampler import FRAMES_PER_BLOCK, BlockSampler
from model.source_cache import SourceLatentCache
from model.tae import TAEHV, TAEConfig
from model.vae import VAEConfig, WanVAE

log = logging.getLogger(__name__)
MASK_LAG = 3          # frames of the previous block the reference's mask grouping reaches back


class DiTRefiner(Refiner):
    name = "dit"
    latent_blocks = True
    prepares_ahead = True
    warm_up_note = "(the first start compiles for a minute or two; later starts reuse it)"

    def __init__(self, sampler: BlockSampler, codec: LatentCodec, source_cache_mb: float = 0,
                 compile_setup: Callable[[], object] = lambda: None, packages=None):
        """compile_setup: per-thread torch.compile settings; run here and again by warm_up() on the
        thread that compiles (play's generation thread). packages: the model.package_store.PackageStore
        the sampler and codec load ahead-of-time packages from, if any; warm_up() builds the missing ones."""
        self.sampler, self.codec, self.compile_setup, self.packages = sampler, codec, compile_setup, packages
        compile_setup()
        self.device, self.dtype = sampler.device, sampler.dtype
        self._source, self._render, self._decoder = codec.stream(), codec.stream(), codec.stream()
        # source latents of one scene's indices, bounded by memory (an entry is ~50 MB with the TAE, ~1.1 GB with the VAE)
        self.source_cache = SourceLatentCache(max_bytes=int(source_cache_mb * 2**20))
        self._mask_lag = MASK_LAG if isinstance(codec, TAECodec) else 0
        self.reset()

    def reset(self) -> None:
        self.sampler.reset()
        for stream in (self._source, self._render, self._decoder):
            stream.reset()
        self.source_cache.reset()
        self._mask_tail: torch.Tensor | None = None
        self._first = True
        self._prepared: Prepared | None = None

    def frames_for_block(self, first: bool) -> int:
        return self.codec.input_frames(FRAMES_PER_BLOCK, first)

    def warm_up(self, height: int, width: int, report=lambda msg: None) -> None:
        """Run a first and a steady block on blank frames so every shape is compiled (and every
        kernel chosen) before play starts; then forget them. Parts that ran on torch.compile for
        want of an ahead-of-time package get theirs built in the background, for the next start."""
        self.compile_setup()
        if self.packages is not None:
            self.packages.report = report
        doing = ", loading ahead-of-time packages or compiling" if self.packages is not None else \
            ", compiling" if self.sampler.compiled else ""
        for i, first in enumerate((True, False)):
            n = self.frames_for_block(first)
            blank = torch.zeros(n, height, width, 3, dtype=torch.uint8)                 # [n, H, W, 3]
            report(f"warm-up block {i + 1}/2 ({n} frames{doing})")
            marks = SyncedMarks(self.device)
            self.refine(RefineInput(render=blank, mask=torch.ones(n, height, width, dtype=torch.bool), source=blank,
                                    mark=marks))
            marks("decode")
            report(f"warm-up block {i + 1}/2 took {marks}")
        self.reset()
        if self.packages is not None:
            self.packages.build_missing()

    def cache_stats(self) -> dict:
        return self.source_cache.stats()

    def close(self) -> None:
        """Stop background work: a package build still running stops; the packages it finished are
        kept and the next start builds the rest."""
        if self.packages is not None:
            self.packages.builder.stop()

    @torch.no_grad()
    def prepare(self, source: torch.Tensor, source_indices: tuple[int, ...]) -> None:
        """Encode the next block's source frames (uint8 [T, H, W, 3], scene frames `source_indices`)
        and run its context pass now, before its camera is known. A block that starts a new context
        cannot be prepared (the call does nothing); a new call replaces an unused preparation."""
        if self._first:
            return
        self._rewind()
        rewind_to = (self._source.encoder_state(), self.source_cache.position())
        indices = tuple(int(i) for i in source_indices)
        ref_latent = self.source_cache.encode(self._source, to_signed(source, self.device), indices)
        self.sampler.prefill(ref_latent.to(self.dtype))
        self._prepared = Prepared(indices, *rewind_to)

    def is_prepared(self, source_indices: tuple[int, ...] | None) -> bool:
        """Whether the next refine() of a block with these source frames skips the prepared work."""
        return self._prepared is not None and source_indices is not None \
            and self._prepared.indices == tuple(int(i) for i in source_indices)

    def _rewind(self) -> None:
        """Undo an unused preparation: the source encoder state and the cache's history go back (the
        context pass needs no undo: the next prefill rewrites its rows)."""
        if self._prepared is not None:
            self._source.set_encoder_state(self._prepared.encoder_state)
            self.source_cache.rewind(self._prepared.cache_position)
            self._prepared = None

    @torch.no_grad()
    def refine(self, block: RefineInput) -> torch.Tensor:
        first, self._first = self._first, False
        prepared = self.is_prepared(block.source_indices)
        if prepared:
            self._prepared = None
        else:
            self._rewind()
            source = to_signed(block.source, self.device)                   # [1, T, 3, H, W]
            ref_latent = self.source_cache.encode(self._source, source, block.source_indices)   # [1, 3, 16, h, w]
        render = to_signed(block.render, self.device)                       # [1, T, 3, H, W]
        render_latent = self._render.encode(render)                         # [1, 3, 16, h, w]
        mask_latent = self._mask_latent(block.mask, first)                  # [1, 3, 4, h, w]
        block.mark("encode")
        cond = torch.cat([mask_latent.to(render_latent.dtype), render_latent], dim=2)   # [1, 3, 20, h, w]
        if not prepared:
            self.sampler.prefill(ref_latent.to(self.dtype))
        x0 = self.sampler.denoise(cond.to(self.dtype))                      # [1, 3, 16, h, w]
        block.mark("dit")
        video = self._decoder.decode(x0)                                    # [1, T', 3, H, W] in [0, 1]
        return (video[0] * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()   # [T', H, W, 3]

    def _mask_latent(self, mask: torch.Tensor, first: bool) -> torch.Tensor:
        """mask bool [T, H, W] -> [1, 3, 4, h, w] in {-1, +1} units, reference grouping."""
        signed = mask.to(self.device, torch.float32)[None] * 2 - 1             # [1, T, H, W]
        if not self._mask_lag:
            return mask_to_latent(signed, first_block=first)[:, :FRAMES_PER_BLOCK]
        tail = signed[:, :1].expand(-1, self._mask_lag, -1, -1) if first else self._mask_tail  # [1, 3, H, W]
        self._mask_tail = signed[:, -self._mask_lag:]
        seq = torch.cat([tail, signed], dim=1)[:, :4 * FRAMES_PER_BLOCK]       # [1, 12, H, W]
        return mask_to_latent(seq, first_block=False)


class SyncedMarks:
    """A RefineInput.mark for one-off runs: waits for the device at each mark and keeps the seconds
    each stage took (str: "encode 1.2 s, dit 3.4 s, decode 0.5 s")."""

    def __init__(self, device: torch.device):
        self.device, self.stages, self._t = device, {}, time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.stages[stage], self._t = now - self._t, now

    def __str__(self) -> str:
        return ", ".join(f"{stage} {s:.1f} s" for stage, s in self.stages.items())


@dataclass(frozen=True)
class Prepared:
    """A block prepared ahead: its source indices, and where to rewind the source stream if unused."""
    indices: tuple[int, ...]
    encoder_state: dict
    cache_position: tuple


def to_signed(frames_u8: torch.Tensor, device) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float32 [1, T, 3, H, W] in [-1, 1] (the reference's x/127.5 - 1)."""
    return frames_u8.to(device).permute(0, 3, 1, 2)[None].float() / 127.5 - 1           # [1, T, 3, H, W]


def load_dit_refiner(cfg, device, prompt_embeds: torch.Tensor, latent_hw: tuple[int, int]) -> DiTRefiner:
    """The DiT and the codec from cfg.checkpoint_dir, verified strictly. prompt_embeds: [1, S, text_dim]
    (umT5-XXL: [1, 512, 4096]). Raises CheckpointError naming the file at fault."""
    root = Path(cfg.checkpoint_dir)
    files = checkpoint.discover(root)
    if files.wan_config is None:
        raise checkpoint.CheckpointError(f"{root / checkpoint.WAN_CONFIG}: not found; {checkpoint.GET_WAN}")
    dit_cfg = DiTConfig(**checkpoint.wan_dit_size(files.wan_config))
    if prompt_embeds.shape[-1] != dit_cfg.text_dim:
        raise checkpoint.CheckpointError(
            f"{root / checkpoint.WAN_CONFIG}: the DiT takes {dit_cfg.text_dim}-wide text embeddings but the scene's "
            f"prompt embedding is {prompt_embeds.shape[-1]} wide (made by another text encoder); {checkpoint.GET_WAN}")
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" and cfg.dtype == "bfloat16" else torch.float32
    model = CausalWanModel(dit_cfg, device="meta", dtype=dtype)
    checkpoint.load_dit(model, list(files.dit_base), files.dit_inspatio, device=device)
    return _assemble(cfg, model.eval(), load_codec(cfg, device=device, latent_dtype=dtype), prompt_embeds, latent_hw)


def random_dit_refiner(cfg, device, latent_hw: tuple[int, int], seed: int = 0,
                       dit_cfg: DiTConfig = DiTConfig(), vae_cfg: VAEConfig = VAEConfig()) -> DiTRefiner:
    """Full-size DiT and codec with random weights (benchmarks: cost does not depend on weights;
    the output is noise); tests pass smaller configs (dit_cfg, vae_cfg)."""
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    g = torch.Generator(device).manual_seed(seed)
    model = CausalWanModel(dit_cfg, device=device, dtype=dtype)
    net = TAEHV(TAEConfig(), device=device, dtype=torch.float16 if dtype == torch.bfloat16 else dtype) if cfg.use_tae \
        else WanVAE(vae_cfg, device=device, dtype=dtype)
    with torch.no_grad():
        for module in (model, net):
            for name, p in module.named_parameters():
                p.normal_(1.0 if "norm" in name or "gamma" in name else 0.0, 0.02, generator=g)
    codec = TAECodec(net.eval(), dtype) if cfg.use_tae else VAECodec(net.eval(), dtype)
    prompt = torch.randn(1, dit_cfg.text_len, dit_cfg.text_dim, generator=g, device=device).to(dtype)  # [1, text_len, text_dim]
    return _assemble(cfg, model.eval(), codec, prompt, latent_hw)


def _assemble(cfg, model, codec, prompt_embeds, latent_hw) -> DiTRefiner:
    model.prepare_for_inference(fp8=cfg.fp8, fp8_attention=cfg.fp8_attention)
    sampler, compile_setup, store = block_sampler(cfg, model, prompt_embeds, latent_hw)
    if sampler.compiled and cfg.compile_codec and isinstance(codec, TAECodec):
        codec.compile_streams(store)
    return DiTRefiner(sampler, codec, source_cache_mb=cfg.source_latent_cache_mb, compile_setup=compile_setup,
                      packages=store)


def block_sampler(cfg, model, prompt_embeds, latent_hw):
    """The BlockSampler of a prepared `model` with the settings of `cfg` (the config's model section):
    compiled where it can be, with the row reductions and ahead-of-time packages that go with it,
    CUDA graphs, RoPE arithmetic and seed. -> (sampler, the per-thread compile set-up to run on the
    thread that compiles, the PackageStore or None)."""
    device = model.patch_embedding.weight.device
    compile = cfg.compile and can_compile(device)
    compile_setup: Callable[[], object] = lambda: None
    if compile:
        use_compile_cache(cfg.compile_cache_dir)
        from model.inductor_choices import persistent_row_reductions
        compile_setup = functools.partial(persistent_row_reductions, cfg.compile_row_limit)
    prompt = prompt_embeds.reshape(1, -1, prompt_embeds.shape[-1]).to(device, model.patch_embedding.weight.dtype)  # [1, S, text_dim]
    store = None
    if compile and cfg.aot_packages:
        from model.package_store import PackageStore
        store = PackageStore(Path(cfg.compile_cache_dir) / "packages", device, row_limit=cfg.compile_row_limit)
    sampler = BlockSampler(model, prompt, latent_hw=latent_hw, compile=compile, cuda_graphs=cfg.cuda_graphs,
                           block_packages=block_packages(model, cfg, store),
                           rope_dtype=torch.float64 if cfg.rope == "float64" else torch.float32,
                           generator=torch.Generator(device).manual_seed(cfg.seed))
    return sampler, compile_setup, store


def block_packages(model, cfg, store):
    """The DiT block's ahead-of-time packages (model/block_packages.py) in `store` when this model
    can use them, else None (torch.compile alone)."""
    if store is None:
        return None
    from model.block_packages import BlockPackages, PackageUnavailable
    try:
        return BlockPackages(model, store)
    except PackageUnavailable as e:
        log.info("DiT block packages not used: %s", e)
        return None


def can_compile(device: torch.device) -> bool:
    """torch.compile runs on a CUDA device with Triton (missing e.g. on Windows builds); without it
    the DiT runs eager, with a warning, instead of failing at warm-up."""
    if device.type != "cuda":
        return False
    from torch.utils._triton import has_triton
    if not has_triton():
        log.warning("model.compile: Triton is not installed, so the DiT runs eager (slower); "
                    "pip install triton, or set model.compile=false to silence this")
        return False
    return True


def use_compile_cache(path: str) -> None:
    """Point torch.compile's on-disk kernel cache at `path` (kept across runs and reboots, unlike its
    /tmp default) unless the user set TORCHINDUCTOR_CACHE_DIR to somewhere else. Importing
    torch._inductor writes its default into that variable, so a default found there is replaced.
    Cheap: it never imports torch._inductor itself (play calls it before preloading that)."""
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    torch_dirs = sys.modules.get("torch._inductor.runtime.cache_dir_utils")
    torch_default = torch_dirs is not None and current is not None and \
        os.path.abspath(current) == os.path.abspath(torch_dirs.default_cache_dir())
    if current is None or torch_default:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(path).resolve())
