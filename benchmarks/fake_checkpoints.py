"""A complete checkpoint tree in the official layout, from seeded random weights:

    python -m benchmarks.fake_checkpoints DIR --size tiny|full [--seed 0] [--device auto|cpu|cuda]

Every file roam and the reference read is written under its real name, in its real format (safetensors
or a torch.save'd .pth state dict) with the real tensor names and dtypes, beside the config.json and
tokenizer files they come with (layout in checkpoints/README.md; the DiT, umT5, VAE and TAE names are
the reference's, model/manifests/; DA3's are depth-anything-3's, scenes/depth/manifests/):

    InSpatio-World-1.3B/InSpatio-World-1.3B.safetensors       DiT, `model.`-prefixed, float32
    Wan2.1-T2V-1.3B/config.json                                 WanModel's config (text_dim added when tiny)
    Wan2.1-T2V-1.3B/diffusion_pytorch_model.safetensors         base DiT, 16-channel patch embedding, float32
    Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth             umT5 encoder, bfloat16
    Wan2.1-T2V-1.3B/google/umt5-xxl/                            tokenizer (trained here, tokenizers library)
    Wan2.1-T2V-1.3B/Wan2.1_VAE.pth                              Wan VAE, float32
    taehv/taew2_1.pth                                           TAEHV, float16
    DA3/{config.json, model.safetensors}                        depth-anything-3, float32
    Florence-2-large/                                           transformers' Florence-2, float16

`full` has the official shapes (about 31 GB; umT5-XXL alone is 11.4 GB): meant for the GPU machine,
where tensors are drawn on the GPU and streamed to disk one at a time. `tiny` (about 200 MB, seconds
on a CPU) has small widths and depths: a 2-layer DiT of width 256, a 64-wide umT5 on a 300-token
vocabulary, a width-16 VAE, the full-size TAE (11 M parameters), DA3's smallest preset (da3-small)
and a one-layer Florence-2. Loading code reads every size from the tree itself (config.json, tensor
shapes), as it does for the official files. Not written: READMEs, licences, example images, and the
sentencepiece model (spiece.model) beside umT5's tokenizer.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from model import checkpoint as ck
from model.checkpoint import expected_tensors
from model.dit import CausalWanModel, DiTConfig
from model.tae import TAEConfig, TAEHV
from model.text import T5Config
from model.vae import VAEConfig, WanVAE
from scenes.depth.da3_weights import DA3_DIR, da3_manifest

FLORENCE_DIR = "Florence-2-large"

Entry = tuple[str, tuple[int, ...], torch.dtype]          # tensor name, shape, dtype in the file
ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


@dataclass(frozen=True)
class TreeSize:
    dit: DiTConfig
    t5: T5Config
    tokenizer_vocab: int
    vae: VAEConfig
    da3_preset: str
    florence: str                                        # tiny | full


SIZES = {
    "tiny": TreeSize(dit=DiTConfig(dim=256, ffn_dim=512, num_heads=2, num_layers=2, text_dim=64),
                     t5=T5Config(vocab_size=384, dim=64, dim_attn=64, dim_ffn=128, num_heads=4, num_layers=2),
                     tokenizer_vocab=300, vae=VAEConfig.tiny(), da3_preset="da3-small", florence="tiny"),
    "full": TreeSize(dit=DiTConfig(), t5=T5Config(), tokenizer_vocab=300, vae=VAEConfig(),
                     da3_preset="da3nested-giant-large", florence="full"),
}


# --- tensors ------------------------------------------------------------------------------------

def is_scale(name: str) -> bool:
    """Norm weights and per-channel gains, which start near 1 rather than near 0."""
    parts = name.split(".")
    return parts[-1] == "gamma" or (parts[-1] == "weight" and len(parts) > 1 and "norm" in parts[-2])


def random_tensor(name: str, shape: tuple[int, ...], dtype: torch.dtype, seed: int, device: str) -> torch.Tensor:
    """N(0, 0.02), or 1 + N(0, 0.02) for scales; seeded by (seed, name), so a file does not depend on
    the order it is written in. -> CPU tensor of `dtype`"""
    g = torch.Generator(device).manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    x = torch.randn(shape, generator=g, device=device, dtype=torch.float32).mul_(0.02)
    return (x.add_(1.0) if is_scale(name) else x).to(dtype).cpu()


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; rename it over `path` only if the block completes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_safetensors(path: Path, entries: list[Entry], make: Callable[[str, tuple, torch.dtype], torch.Tensor],
                      metadata: dict[str, str] | None = None) -> None:
    """A safetensors file written tensor by tensor: the header (names, dtypes, shapes, offsets) first,
    then each tensor's bytes as it is made, so only one tensor is in memory at a time."""
    header, offset = {}, 0
    for name, shape, dtype in entries:
        size = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": ST_DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)                                    # the data starts 8-byte aligned
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for name, shape, dtype in entries:
            f.write(make(name, shape, dtype).contiguous().view(torch.uint8).numpy().data)


def write_pth(path: Path, entries: list[Entry], make: Callable[[str, tuple, torch.dtype], torch.Tensor]) -> None:
    """A plain state dict saved with torch.save (zip format), as the official .pth files are."""
    state = {name: make(name, shape, dtype) for name, shape, dtype in entries}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def module_entries(module: torch.nn.Module, dtype: torch.dtype, prefix: str = "") -> list[Entry]:
    return [(prefix + n, tuple(t.shape), dtype) for n, t in expected_tensors(module).items()]


# --- the tree -----------------------------------------------------------------------------------

def wan_config(dit: DiTConfig) -> dict:
    """Wan2.1-T2V-1.3B's config.json; a width other than umT5-XXL's names its text_dim."""
    cfg = {"_class_name": "WanModel", "_diffusers_version": "0.30.0", "dim": dit.dim, "eps": dit.eps,
           "ffn_dim": dit.ffn_dim, "freq_dim": dit.freq_dim, "in_dim": 16, "model_type": "t2v",
           "num_heads": dit.num_heads, "num_layers": dit.num_layers, "out_dim": dit.out_dim, "text_len": dit.text_len}
    return cfg if dit.text_dim == DiTConfig().text_dim else {**cfg, "text_dim": dit.text_dim}


@dataclass(frozen=True)
class TensorFile:
    path: str                                            # relative to the tree's root
    entries: list[Entry]
    metadata: dict[str, str] | None = None               # safetensors only


def tensor_files(size: TreeSize) -> list[TensorFile]:
    """Every weight file of the tree with its tensors, in writing order (nothing is allocated)."""
    dit = module_entries(CausalWanModel(size.dit, device="meta"), torch.float32)
    base = [(n, (s[0], 16, *s[2:]) if n == "patch_embedding.weight" else s, d) for n, s, d in dit]
    return [
        TensorFile(f"{ck.WAN_DIR}/diffusion_pytorch_model.safetensors", base),
        TensorFile(ck.INSPATIO_FILE, [("model." + n, s, torch.float32) for n, s, _ in dit], {"format": "pt"}),
        TensorFile(ck.T5_FILES[1], [(n, s, torch.bfloat16) for n, s in ck.umt5_reference_shapes(size.t5).items()]),
        TensorFile(ck.VAE_FILE, module_entries(WanVAE(size.vae, device="meta"), torch.float32)),
        TensorFile(ck.TAE_FILE, module_entries(TAEHV(TAEConfig(), device="meta"), torch.float16)),
        TensorFile(f"{DA3_DIR}/model.safetensors",
                   [(n, s, torch.float32) for n, s in da3_manifest(size.da3_preset).items()], {"format": "pt"}),
    ]


def write_tree(root: Path, size: TreeSize, seed: int, device: str, log=print) -> None:
    make = lambda name, shape, dtype: random_tensor(name, shape, dtype, seed, device)

    def step(what: str, write: Callable[[], None]) -> None:
        start = time.perf_counter()
        write()
        log(f"  {what} ({time.perf_counter() - start:.1f} s)")

    step(ck.WAN_CONFIG, lambda: _write_json(root / ck.WAN_CONFIG, wan_config(size.dit)))
    step(f"{DA3_DIR}/config.json", lambda: _write_json(root / DA3_DIR / "config.json", {"model_name": size.da3_preset}))
    for f in tensor_files(size):
        writer = write_safetensors if f.path.endswith(".safetensors") else write_pth
        step(f.path, lambda: writer(root / f.path, f.entries, make, *([f.metadata] if f.metadata else [])))
    step(ck.TOKENIZER_DIR, lambda: _write_umt5_tokenizer(root / ck.TOKENIZER_DIR, seed, size.tokenizer_vocab))
    step(FLORENCE_DIR, lambda: _write_florence(root / FLORENCE_DIR, size.florence, seed, device))


def _write_json(path: Path, value: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2) + "\n")


def _write_umt5_tokenizer(folder: Path, seed: int, vocab: int) -> None:
    from benchmarks.fake_text_models import write_umt5_tokenizer
    _write_folder(folder, lambda tmp: write_umt5_tokenizer(tmp, seed, vocab))


def _write_florence(folder: Path, size: str, seed: int, device: str) -> None:
    from benchmarks.fake_text_models import write_florence
    _write_folder(folder, lambda tmp: write_florence(tmp, size, seed, device))


def _write_folder(folder: Path, write: Callable[[Path], None]) -> None:
    """Write a library's folder into a temporary one, then swap it in whole."""
    import shutil
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fake_checkpoints", description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path, help="checkpoint folder to write (e.g. checkpoints)")
    p.add_argument("--size", choices=sorted(SIZES), required=True, help="tiny: seconds on a CPU; full: official shapes")
    p.add_argument("--seed", type=int, default=0, help="same seed and device, same files")
    p.add_argument("--device", default="auto", help="where tensors are drawn: auto (cuda when there is one) | cpu | cuda")
    args = p.parse_args(None if argv is None else list(argv))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()                    # no progress bars or backend notices from save_pretrained
    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    print(f"fake checkpoints ({args.size}, seed {args.seed}, drawn on {device}) -> {args.dir}")
    write_tree(args.dir, SIZES[args.size], args.seed, device)
    print(f"done: {tree_bytes(args.dir) / 1e9:.2f} GB in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
