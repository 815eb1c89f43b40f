"""DA3's checkpoint folder, checkpoints/DA3 (config.json naming a depth-anything-3 preset, and
model.safetensors), checked against the preset's tensor manifest without the package installed.

The manifests (scenes/depth/manifests/<preset>.json) list what `DepthAnything3(preset).state_dict()`
holds in depth-anything-3 0.1.1, which is what its `from_pretrained` loads. That loader is not strict,
so a file with a missing tensor would run with random weights in its place; this check catches it.
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open

from scenes.tensor_shapes import shape_mismatch

DA3_DIR = "DA3"
DA3_REPO = "depth-anything/DA3NESTED-GIANT-LARGE"    # the reference's download (scripts/download.sh)
GET_DA3 = "get it with: python main.py download --only depth"
MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"


def da3_manifest(preset: str, manifest_dir: Path = MANIFEST_DIR) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape for a depth-anything-3 preset, e.g. da3nested-giant-large (1383 tensors)."""
    raw = json.loads((manifest_dir / f"{preset}.json").read_text())
    return {name: tuple(shape) for name, shape in raw["keys"].items()}


def known_presets(manifest_dir: Path = MANIFEST_DIR) -> list[str]:
    return sorted(p.stem for p in manifest_dir.glob("*.json"))


def check_da3_weights(model_dir: Path, manifest_dir: Path = MANIFEST_DIR) -> tuple[str, str]:
    """(status, detail) of a DA3 folder: missing | invalid | present (a preset without a manifest) |
    verified (every tensor of the preset, with its shape, and nothing else)."""
    config, weights = model_dir / "config.json", model_dir / "model.safetensors"
    if not config.is_file() and not weights.is_file():
        return "missing", f"no config.json or model.safetensors in {model_dir}"
    try:
        preset = json.loads(config.read_text())["model_name"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        return "invalid", f"config.json unreadable or without model_name ({type(e).__name__}); {GET_DA3}"
    if preset not in (presets := known_presets(manifest_dir)):
        return "present", f"preset {preset!r} (not verified: roam has manifests for {', '.join(presets)})"
    try:
        with safe_open(str(weights), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        return "invalid", f"model.safetensors unreadable ({e}); it may be truncated: {GET_DA3}"
    want = da3_manifest(preset, manifest_dir)
    if mismatch := shape_mismatch(want, shapes):
        return "invalid", f"model.safetensors is not the {preset} weights: {mismatch}; {GET_DA3}"
    return "verified", f"{preset}: all {len(want)} tensors with the expected shapes"
