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

from scenes.caption_weights import GET_FLORENCE
from scenes.scene import weights_fingerprint

TASK = "<MORE_DETAILED_CAPTION>"
MAX_NEW_TOKENS = 1024


class CaptionError(RuntimeError):
    """Florence-2 is present but could not caption (broken download, incompatible transformers)."""


def florence_missing(model_dir: Path) -> str | None:
    """Why Florence-2 cannot run here, or None when it can be tried."""
    if importlib.util.find_spec("transformers") is None:
        return "the transformers package is not installed (pip install transformers)"
    if not (Path(model_dir) / "config.json").is_file():
        return f"no Florence-2 weights in {model_dir}; {GET_FLORENCE} (or pass --prompt TEXT)"
    return None


def florence_identity(model_dir: Path) -> str:
    """Names the Florence-2 weights and processor files in `model_dir` (part of a Scene's cache key:
    other weights write another caption)."""
    return weights_fingerprint([p for p in Path(model_dir).rglob("*") if p.is_file() and not p.name.startswith(".")])


def load_florence(model_dir: Path, device: str = "cpu"):
    """(model, processor) through transformers' own Florence-2 classes, from the folder layout of
    florence-community/Florence-2-large (what `download --only captions` fetches). fp16 on CUDA, else
    fp32, eager attention, as the reference loads it. CaptionError names the folder and the fix."""
    import torch
    import transformers
    dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
    try:
        if "auto_map" in json.loads((Path(model_dir) / "config.json").read_text()):
            raise CaptionError(f"{model_dir}: microsoft's original Florence-2, whose own code does not load with "
                               f"transformers 5; replace it with transformers' copy: {GET_FLORENCE}")
        model = transformers.AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=dtype,
                                                                         attn_implementation="eager")
        processor = transformers.AutoProcessor.from_pretrained(str(model_dir))
    except CaptionError:
        raise
    except (OSError, ValueError, ImportError, AttributeError, TypeError, RuntimeError, KeyError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise CaptionError(f"{model_dir}: cannot load Florence-2 ({type(err).__name__}: {first}); {GET_FLORENCE}") from None
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
    text = processor.batch_decode(ids, skip_special_tokens=False)[0]
    # the processor's post-processing of this pure-text task: the sentence and padding tokens removed
    # (its own post_process_generation cannot be called: transformers 5.25 lists no "pure_text" parser)
    return text.replace("<pad>", "").replace("<s>", "").replace("</s>", "").strip()
