"""umT5-XXL text encoder and tokenizer (model-stack-spec §3), through transformers rather than
re-implemented: `UMT5EncoderModel` is the same network as the reference's wan/modules/t5.py encoder
(gated tanh-GELU feed-forward, a relative-position bias table in every layer, no 1/√d attention
scaling, RMSNorm eps 1e-6); model/checkpoint.py maps the reference's state-dict names onto it.

It runs once per scene, never in the interactive loop: prompt -> prompt_embeds [1, 512, 4096], which
the Scene caches. transformers is an optional extra, imported only when an encoder is built.
"""
from __future__ import annotations

import gc
import html
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from model import checkpoint


@dataclass(frozen=True)
class T5Config:
    vocab_size: int = 256384
    dim: int = 4096
    dim_attn: int = 4096          # num_heads × head dim
    dim_ffn: int = 10240
    num_heads: int = 64
    num_layers: int = 24
    num_buckets: int = 32         # relative-position buckets, bidirectional, separate table per layer
    max_dist: int = 128
    eps: float = 1e-6
    text_len: int = 512           # the tokenizer pads and truncates to this many tokens

    @classmethod
    def tiny(cls) -> "T5Config":
        """The parity fixture's encoder (t5_tiny.safetensors)."""
        return cls(vocab_size=256, dim=64, dim_attn=64, dim_ffn=128, num_heads=4, num_layers=2, text_len=160)


def _transformers():
    try:
        import transformers
    except ImportError as e:
        raise ImportError("the umT5 text encoder needs transformers: pip install transformers") from e
    return transformers


def umt5_config(cfg: T5Config):
    """The transformers UMT5Config of this encoder (dropout off: inference only)."""
    return _transformers().UMT5Config(
        vocab_size=cfg.vocab_size, d_model=cfg.dim, d_kv=cfg.dim_attn // cfg.num_heads, d_ff=cfg.dim_ffn,
        num_layers=cfg.num_layers, num_heads=cfg.num_heads, relative_attention_num_buckets=cfg.num_buckets,
        relative_attention_max_distance=cfg.max_dist, feed_forward_proj="gated-gelu", layer_norm_epsilon=cfg.eps,
        dropout_rate=0.0, tie_word_embeddings=False, use_cache=False)


def check_umt5_config(hf, cfg: T5Config) -> None:
    """Raise ValueError unless the transformers config computes the reference encoder."""
    want = {"vocab_size": cfg.vocab_size, "d_model": cfg.dim, "d_kv": cfg.dim_attn // cfg.num_heads,
            "d_ff": cfg.dim_ffn, "num_layers": cfg.num_layers, "num_heads": cfg.num_heads,
            "relative_attention_num_buckets": cfg.num_buckets, "relative_attention_max_distance": cfg.max_dist,
            "layer_norm_epsilon": cfg.eps, "is_gated_act": True, "dense_act_fn": "gelu_new",   # gelu_new = tanh GELU
            "is_decoder": False}
    wrong = [f"{k}={getattr(hf, k, None)!r} (want {v!r})" for k, v in want.items() if getattr(hf, k, None) != v]
    if wrong:
        raise ValueError(f"transformers UMT5 config does not match the reference umT5 encoder: {', '.join(wrong)}")


def build_umt5(cfg: T5Config, *, device=None, dtype: torch.dtype | None = None):
    """An unloaded UMT5EncoderModel in eval mode (device="meta" allocates nothing)."""
    hf = umt5_config(cfg)
    check_umt5_config(hf, cfg)
    with torch.device(device) if device is not None else nullcontext():
        model = _transformers().UMT5EncoderModel(hf)
    return model.to(dtype).eval() if dtype is not None else model.eval()


def clean_text(text: str) -> str:
    """The reference tokenizer's 'whitespace' cleaning: ftfy.fix_text when ftfy is installed, HTML
    unescape twice, collapse whitespace runs, strip."""
    try:
        import ftfy
        text = ftfy.fix_text(text)
    except ImportError:
        pass                                            # optional, as in the reference's environment
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


@torch.no_grad()
def encode_ids(model, ids: Tensor, mask: Tensor) -> Tensor:
    """ids, mask: [B, S] -> prompt_embeds [B, S, D]; rows at or after each sample's token count
    are zero (the reference wrapper zeroes them; the DiT's cross-attention still reads them)."""
    out = model(input_ids=ids, attention_mask=mask).last_hidden_state    # [B, S, D]
    keep = torch.arange(ids.shape[1], device=ids.device)[None] < mask.gt(0).sum(1, keepdim=True)
    return out * keep[..., None].to(out.dtype)


class TextEncoder:
    """Tokenizer + umT5 encoder. encoder(prompt) -> prompt_embeds [1, text_len, dim]."""

    def __init__(self, model, tokenizer, cfg: T5Config):
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg

    def tokenize(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """-> ids, mask [B, text_len] (EOS appended, padded with id 0, truncated)."""
        tok = self.tokenizer([clean_text(p) for p in prompts], padding="max_length", truncation=True,
                             max_length=self.cfg.text_len, add_special_tokens=True, return_tensors="pt")
        return tok.input_ids, tok.attention_mask

    def __call__(self, prompt: str) -> Tensor:
        if self.model is None:
            raise RuntimeError("the text encoder was freed")
        ids, mask = self.tokenize([prompt])
        device = next(self.model.parameters()).device
        return encode_ids(self.model, ids.to(device), mask.to(device))

    def free(self) -> None:
        """Release the encoder's ~11 GB (bf16) once the scene's embedding is cached."""
        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def load_text_encoder(checkpoint_dir: Path | str, *, device, dtype: torch.dtype = torch.bfloat16) -> TextEncoder:
    """Tokenizer from Wan2.1-T2V-1.3B/google/umt5-xxl, encoder weights from
    models_t5_umt5-xxl-enc-bf16.{safetensors,pth}, loaded strictly onto `device` in `dtype`. The
    encoder's size is read off the file (umT5-XXL for the official one)."""
    files = checkpoint.discover(checkpoint_dir)
    if files.t5 is None or files.tokenizer is None:
        missing = checkpoint.T5_FILES[0] if files.t5 is None else checkpoint.TOKENIZER_DIR
        raise checkpoint.CheckpointError(f"{Path(checkpoint_dir) / missing}: not found; {checkpoint.GET_WAN}")
    cfg = T5Config(**checkpoint.umt5_size(checkpoint.TensorFile(files.t5, checkpoint.GET_WAN)))
    try:
        tokenizer = _transformers().AutoTokenizer.from_pretrained(str(files.tokenizer))
    except (OSError, ValueError) as e:
        raise checkpoint.CheckpointError(f"{files.tokenizer}: unreadable tokenizer ({e}); {checkpoint.GET_WAN}") from None
    if len(tokenizer) > cfg.vocab_size:
        raise checkpoint.CheckpointError(f"{files.tokenizer}: {len(tokenizer)} tokens, more than the encoder's "
                                         f"{cfg.vocab_size} rows in {files.t5}; {checkpoint.GET_WAN}")
    model = build_umt5(cfg, device="meta", dtype=dtype)
    checkpoint.load_umt5(model, files.t5, device=device)
    return TextEncoder(model, tokenizer, cfg)


def encode_prompt(checkpoint_dir: Path | str, caption: str, *, device, report=lambda msg: None) -> Tensor:
    """The caption's prompt_embeds, bf16 [1, text_len, dim] on the CPU: umT5 is loaded onto `device`,
    runs once and is freed before this returns. A GPU without room for it falls back to the CPU.
    `report(line)` hears where it runs, how long the encoding will take on the CPU (timed on its
    first layer) and how long loading and encoding took."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return _encode_once(checkpoint_dir, caption, device, report)
        except torch.cuda.OutOfMemoryError:
            gc.collect()
            torch.cuda.empty_cache()
            report(f"umT5 does not fit in the free memory of {device}; encoding on the CPU instead")
    files = checkpoint.discover(checkpoint_dir)
    size = files.t5.stat().st_size if files.t5 is not None else 0
    report(f"umT5 runs on the CPU (no GPU): reading {size / 2**30:.2f} GiB of weights, then encoding once; "
           "the time it takes follows")
    return _encode_once(checkpoint_dir, caption, torch.device("cpu"), report)


def _encode_once(checkpoint_dir, caption: str, device: torch.device, report) -> Tensor:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    encoder = load_text_encoder(checkpoint_dir, device=device)
    t1 = time.perf_counter()
    report(f"umT5 loaded in {t1 - t0:.1f} s")
    if device.type == "cpu":
        layers = len(encoder.model.encoder.block)

        def first_layer_done(module, args, output):
            hook.remove()
            report(f"umT5 encoding on the CPU: about {(time.perf_counter() - t1) * (layers - 1):.0f} s more "
                   f"({layers} layers)")
        hook = encoder.model.encoder.block[0].register_forward_hook(first_layer_done)
    try:
        embeds = encoder(caption).to("cpu", torch.bfloat16)                   # [1, text_len, dim]
    finally:
        encoder.free()
    t2 = time.perf_counter()
    peak = f", peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if device.type == "cuda" else ""
    report(f"caption encoded by umT5 on {device.type} in {t2 - t0:.1f} s (load {t1 - t0:.1f} s, "
           f"encode {t2 - t1:.1f} s{peak}); the encoder is freed")
    return embeds
