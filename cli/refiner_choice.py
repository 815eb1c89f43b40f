"""Which refiner play and render run, and why, in one line (`runtime.refiner`: auto | geometry | dit).

`auto` runs the DiT when everything it needs is here: the checkpoint files (loaded strictly, so a
truncated or foreign file is caught), the scene's prompt embedding (made now when the scene has
none and the umT5 encoder is there), frames the DiT's latent grid can take, and for `play` a CUDA GPU
(on a CPU the DiT is far from real time). Otherwise it runs the geometry refiner, and its line names
what is at fault and the fix. `dit` refuses with the same line instead, except for the missing GPU.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from model import checkpoint
from model.refiners import GeometryRefiner
from cli.errors import UserError
from cli.prompt_embedding import DOWNLOAD_DIT, EmbeddingUnavailable, ensure_prompt_embeds, say_line

CHOICES = ("auto", "geometry", "dit")
DOWNLOAD_TAE = "python main.py download --only tae"


class DiTUnavailable(RuntimeError):
    """One line: what stops the DiT here and the command that fixes it."""


def missing_files(model_cfg) -> list[tuple[Path, str]]:
    """(path, command that gets it) of each file the DiT and the configured codec need that is not there."""
    root = Path(model_cfg.checkpoint_dir)
    files = checkpoint.discover(root)
    needed = [(files.wan_config, checkpoint.WAN_CONFIG, DOWNLOAD_DIT),
              (files.dit_base or None, f"{checkpoint.WAN_DIR}/diffusion_pytorch_model.safetensors", DOWNLOAD_DIT),
              (files.dit_inspatio, checkpoint.INSPATIO_FILE, DOWNLOAD_DIT),
              (files.tae, checkpoint.TAE_FILE, DOWNLOAD_TAE) if model_cfg.use_tae else
              (files.vae, checkpoint.VAE_FILE, DOWNLOAD_DIT)]
    return [(root / rel, fix) for have, rel, fix in needed if have is None]


def weight_files(model_cfg) -> dict[str, list[int]]:
    """The files the DiT path reads, as {path: [size, mtime_ns]}: outputs made before a file was
    downloaded, replaced or deleted are not taken for the DiT's (render reuses outputs only while
    this stays the same)."""
    files = checkpoint.discover(model_cfg.checkpoint_dir)
    paths = [files.wan_config, *files.dit_base, files.dit_inspatio, files.t5, files.tokenizer, files.vae, files.tae]
    return {str(p): [(st := p.stat()).st_size, st.st_mtime_ns] for p in paths if p is not None}


def check_frame_size(scene) -> None:
    """DiTUnavailable unless the scene's frames make a latent grid the DiT's 2x2 patches tile (multiples of 16)."""
    if scene.width % 16 or scene.height % 16:
        raise DiTUnavailable(f"the scene's frames are {scene.width}x{scene.height} and the DiT needs both sides "
                             f"multiples of 16; build it again with --set scenes.width=... --set scenes.height=... "
                             f"(832 and 480 by default)")


def load_dit(cfg, device, scene, say: Callable[[str], None], made: dict | None = None):
    """The DiT refiner for `scene`, or DiTUnavailable naming the file at fault and its fix (`made`:
    see ensure_prompt_embeds)."""
    from model.dit_refiner import load_dit_refiner
    check_frame_size(scene)
    if missing := missing_files(cfg.model):
        path, fix = missing[0]
        more = f" (and {len(missing) - 1} more: `python main.py doctor` lists them)" if len(missing) > 1 else ""
        raise DiTUnavailable(f"{path} is missing{more}; get it with `{fix}`")
    try:
        ensure_prompt_embeds(cfg.model.checkpoint_dir, scene, device, say, made)
    except EmbeddingUnavailable as err:
        raise DiTUnavailable(f"the scene has no prompt embedding and {err}") from None
    except checkpoint.CheckpointError as err:
        raise DiTUnavailable(f"{err}; get it again with `{DOWNLOAD_DIT}`") from None
    try:
        return load_dit_refiner(cfg.model, device, scene.prompt_embeds, (scene.height // 8, scene.width // 8))
    except checkpoint.CheckpointError as err:
        fix = DOWNLOAD_TAE if checkpoint.TAE_FILE in str(err) else DOWNLOAD_DIT
        raise DiTUnavailable(f"{err}; get it again with `{fix}`") from None


def make_refiner(cfg, device, scene, random_dit=None, say: Callable[[str], None] = say_line,
                 made: dict | None = None, real_time: bool = False):
    """The refiner `cfg.runtime.refiner` asks for, with one line saying which and why (`made`: prompt
    embeddings this command already made, see ensure_prompt_embeds). random_dit (bench --play): a
    DiTConfig; the DiT and codec then get random weights, no checkpoints. real_time (play): `auto`
    takes the DiT only on a CUDA GPU."""
    choice = cfg.runtime.refiner
    if choice not in CHOICES:
        raise UserError(f"runtime.refiner={choice!r}: expected auto, geometry or dit")
    if choice == "geometry":
        say("refiner: geometry (runtime.refiner=geometry)")
        return GeometryRefiner()
    if choice == "auto" and real_time and device.type != "cuda" and random_dit is None:
        say("refiner: geometry, not the DiT: this machine has no CUDA GPU, and on a CPU the DiT is far from "
            "real time (runtime.refiner=dit runs it anyway)")
        return GeometryRefiner()
    from model.fp8 import check_fp8_support
    if cfg.model.fp8:
        try:
            check_fp8_support(device)
        except ValueError as err:
            raise UserError(str(err)) from None
    if random_dit is not None:
        from model.dit_refiner import random_dit_refiner
        try:
            check_frame_size(scene)
        except DiTUnavailable as err:
            raise UserError(f"bench --play: {err}") from None
        say("refiner: dit with random weights (bench --play; the frames are noise)")
        return random_dit_refiner(cfg.model, device, (scene.height // 8, scene.width // 8), cfg.model.seed,
                                  dit_cfg=random_dit)
    try:
        refiner = load_dit(cfg, device, scene, say, made)
    except DiTUnavailable as err:
        if choice == "dit":
            raise UserError(f"runtime.refiner=dit: {err}") from None
        say(f"refiner: geometry, not the DiT: {err}")
        return GeometryRefiner()
    codec = "TAE" if cfg.model.use_tae else "Wan VAE"
    say(f"refiner: dit ({choice}: the InSpatio-World checkpoints in {cfg.model.checkpoint_dir} load, {codec} codec, "
        f"the scene's caption embedded by umT5)")
    return refiner
