"""The scene's prompt embedding: umT5's output for its caption, made once per caption and encoder and
stored beside the Scene (scenes/scene.py, prompt.safetensors), so the 11 GB encoder never runs while
a person plays. `build` makes it when the encoder is there; play and render make it the first time
the DiT needs it, for a scene built before the encoder was downloaded (its depth is not recomputed)
or one whose embedding another encoder made.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Callable

from model import checkpoint
from model.text import encode_prompt
from scenes.scene import save_prompt_embeds, weights_fingerprint

DOWNLOAD_DIT = "python main.py download --only dit"


def say_line(message: str) -> None:
    print(f"roam: {message}", file=sys.stderr, flush=True)


class EmbeddingUnavailable(RuntimeError):
    """The scene needs an embedding and this machine cannot make it: one line naming the file and the fix."""


def encoder_identity(checkpoint_dir: Path | str) -> str | None:
    """Names the encoder that turns captions into prompt_embeds here (its weight file and tokenizer
    files), or None when they are missing."""
    files = checkpoint.discover(checkpoint_dir)
    if files.t5 is None or files.tokenizer is None:
        return None
    return weights_fingerprint([files.t5, *(p for p in files.tokenizer.iterdir() if p.is_file())])


def needs_encoding(scene, identity: str | None) -> bool:
    """Whether the scene's embedding must be made: it has none, or another encoder than the one
    present made it. With no encoder present, the one the scene has is kept."""
    return scene.prompt_embeds is None or (identity is not None and scene.prompt_encoder != identity)


def why_cannot_encode(checkpoint_dir: Path | str) -> str | None:
    """None when umT5 can run here, else a line naming the missing file or package and the fix."""
    files = checkpoint.discover(checkpoint_dir)
    for have, rel in ((files.t5, checkpoint.T5_FILES[1]), (files.tokenizer, checkpoint.TOKENIZER_DIR)):
        if have is None:
            return f"{Path(checkpoint_dir) / rel} is missing (the umT5 text encoder); get it with `{DOWNLOAD_DIT}`"
    if importlib.util.find_spec("transformers") is None:
        return "the umT5 text encoder needs the transformers package: pip install transformers"
    return None


def ensure_prompt_embeds(checkpoint_dir: Path | str, scene, device, say: Callable[[str], None],
                         made: dict | None = None) -> bool:
    """Give `scene` the embedding of its caption by the encoder in `checkpoint_dir` unless it has it,
    and store it in scene.folder (when the scene has one). `made`, {(caption, encoder): embedding},
    lets one command encode a caption several scenes share once (render --prompt). -> whether it
    encoded now. Raises EmbeddingUnavailable when it must encode and cannot; CheckpointError for a
    broken encoder file."""
    identity = encoder_identity(checkpoint_dir)
    if not needs_encoding(scene, identity):
        return False
    made = {} if made is None else made
    encoded = (scene.caption, identity) not in made
    if encoded:
        if (reason := why_cannot_encode(checkpoint_dir)) is not None:
            raise EmbeddingUnavailable(reason)
        shown = f'"{scene.caption[:60]}{"..." if len(scene.caption) > 60 else ""}"' if scene.caption else "the empty caption"
        say(f"encoding {shown} with umT5 (once per caption; stored with the scene)")
        made[scene.caption, identity] = encode_prompt(checkpoint_dir, scene.caption, device=device, report=say)
    scene.prompt_embeds, scene.prompt_encoder = made[scene.caption, identity], identity
    if scene.folder is not None:
        save_prompt_embeds(scene, scene.folder)
    return encoded


def embed_built_scene(checkpoint_dir: Path | str, scene, device, say: Callable[[str], None] = say_line) -> None:
    """`build`'s last step: the caption's embedding when the encoder is here, else a line saying
    what is missing (play adds the embedding on demand once it is there)."""
    try:
        if not ensure_prompt_embeds(checkpoint_dir, scene, device, say):
            say(f"prompt embedding: stored with the scene (encoder {scene.prompt_encoder or 'unknown'})")
    except EmbeddingUnavailable as err:
        say(f"no prompt embedding yet (the DiT needs one; play makes it once the encoder is here): {err}")
    except checkpoint.CheckpointError as err:
        say(f"no prompt embedding yet (the DiT needs one): {err}; get it again with `{DOWNLOAD_DIT}`")
