"""Captions: Florence-2-large on one frame, as the reference's Step 1 (pipeline-spec 3.1), an optional extra.

Differences from the reference: the frame is the middle DECODED frame (index N // 2 of what decoded,
not the container's count) and it is the working-size (stretched) frame; Florence's processor
stretches every image to its own square input, so the model sees nearly the same pixels.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from scenes.scene import weights_fingerprint

FLORENCE_DIR = "Florence-2-large"          # under the checkpoint root
TASK = "<MORE_DETAILED_CAPTION>"
MAX_NEW_TOKENS = 1024


class CaptionError(RuntimeError):
    """Florence-2 is present but could not caption (broken download, incompatible transformers)."""


def florence_missing(model_dir: Path) -> str | None:
    """Why Florence-2 cannot run here, or None when it can be tried."""
    if importlib.util.find_spec("transformers") is None:
        return "the transformers package is not installed (pip install transformers)"
    if not (Path(model_dir) / "config.json").is_file():
        return (f"no Florence-2 weights in {model_dir}; download them with `huggingface-cli download "
                f"microsoft/Florence-2-large --local-dir {model_dir}`, or pass --prompt TEXT")
    return None


def florence_identity(model_dir: Path) -> str:
    """Names the Florence-2 weights and processor files in `model_dir` (part of a Scene's cache key:
    other weights write another caption)."""
    return weights_fingerprint([p for p in Path(model_dir).rglob("*") if p.is_file() and not p.name.startswith(".")])


def load_florence(model_dir: Path, device: str = "cpu"):
    """(model, processor) from `model_dir` in either published format: transformers' own Florence-2
    classes (config.json without `auto_map`, e.g. florence-community/Florence-2-large) or the
    original repository's remote code (microsoft/Florence-2-large, trust_remote_code). fp16 on CUDA,
    else fp32, eager attention, as the reference loads it."""
    import torch
    import transformers
    dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
    try:
        remote = "auto_map" in json.loads((Path(model_dir) / "config.json").read_text())
        auto = transformers.AutoModelForCausalLM if remote else transformers.AutoModelForImageTextToText
        model = auto.from_pretrained(str(model_dir), trust_remote_code=remote, dtype=dtype, attn_implementation="eager")
        processor = transformers.AutoProcessor.from_pretrained(str(model_dir), trust_remote_code=remote)
    except (OSError, ValueError, ImportError, AttributeError, TypeError, RuntimeError, KeyError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise CaptionError(f"{model_dir}: cannot load Florence-2 ({type(err).__name__}: {first})") from None
    return model.to(device).eval(), processor


def caption_frame(frame: np.ndarray, model_dir: Path, device: str = "cpu") -> str:
    """Caption one uint8 [H, W, 3] RGB frame with the reference's settings: task <MORE_DETAILED_CAPTION>,
    greedy, max_new_tokens 1024, use_cache False, fp16 on CUDA else fp32. -> the caption text"""
    import torch
    from PIL import Image
    model, processor = load_florence(model_dir, device)
    image = Image.fromarray(np.ascontiguousarray(frame))
    inputs = processor(text=[TASK], images=[image], return_tensors="pt").to(device)
    with torch.inference_mode():
        ids = model.generate(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"].to(model.dtype),
                             max_new_tokens=MAX_NEW_TOKENS, do_sample=False, num_beams=1, use_cache=False)
    text = processor.batch_decode(ids, skip_special_tokens=False)[0].replace("<pad>", "")
    try:
        parsed = processor.post_process_generation(text, task=TASK, image_size=image.size)
        return str(parsed[TASK]).strip()
    except (KeyError, ValueError, TypeError, AttributeError):
        # transformers' own Florence-2 processor parses no pure-text task; the original one's parse of
        # this task drops the sentence tokens
        return text.replace("<s>", "").replace("</s>", "").strip()
