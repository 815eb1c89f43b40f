"""Florence-2's checkpoint folder, checkpoints/Florence-2-large, checked the way transformers will load
it: the architecture its config.json names, built on the meta device, against model.safetensors'
header (names and shapes; weights that transformers ties, such as the LM head, are stored once).

transformers 5 reads Florence-2 natively (Florence2ForConditionalGeneration), in the format of
transformers' own conversion, florence-community/Florence-2-large. microsoft/Florence-2-large, which
the reference downloads, ships its own modelling code instead (config.json `auto_map`), and that code
does not load with transformers 5; such a folder is reported with the command that replaces it.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from safetensors import SafetensorError, safe_open

from scenes.tensor_shapes import shape_mismatch

FLORENCE_DIR = "Florence-2-large"
FLORENCE_REPO = "florence-community/Florence-2-large"
GET_FLORENCE = "get it with: python main.py download --only captions"


def check_florence_weights(model_dir: Path) -> tuple[str, str]:
    """(status, detail): missing | invalid | present (transformers not installed) | verified."""
    config, weights = model_dir / "config.json", model_dir / "model.safetensors"
    if not config.is_file():
        return "missing", f"no config.json in {model_dir}"
    try:
        raw = json.loads(config.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return "invalid", f"config.json unreadable ({e}); {GET_FLORENCE}"
    if "auto_map" in raw:
        return "invalid", ("microsoft's original Florence-2, whose own code does not load with transformers 5; "
                           f"replace it with transformers' copy: {GET_FLORENCE}")
    if importlib.util.find_spec("transformers") is None:
        return "present", "not verified: transformers is not installed (pip install transformers)"
    try:
        expected = florence_tensors(model_dir)
    except (ValueError, KeyError, TypeError, OSError) as e:
        return "invalid", f"config.json is not one transformers can build ({type(e).__name__}: {e}); {GET_FLORENCE}"
    try:
        with safe_open(str(weights), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        return "invalid", f"model.safetensors unreadable ({e}); it may be truncated: {GET_FLORENCE}"
    if mismatch := shape_mismatch(expected, shapes):
        return "invalid", f"model.safetensors: {mismatch}; {GET_FLORENCE}"
    return "verified", f"all {len(expected)} tensors of the architecture config.json describes"


def florence_tensors(model_dir: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of what transformers stores for the folder's config (tied weights once)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText
    cfg = AutoConfig.from_pretrained(str(model_dir))
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(cfg)
    persistent = model.state_dict(keep_vars=True)
    tensors = {n: tuple(p.shape) for n, p in model.named_parameters()}
    tensors.update((n, tuple(b.shape)) for n, b in model.named_buffers() if n in persistent)
    return tensors
