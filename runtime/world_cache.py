"""The fused world state of a scene, built once (by `main.py build`, or by the first play of a scene
without one) and stored in the Scene's folder as world-<key>.safetensors, keyed by the scene's
content and the fusion settings; a scene that was never stored keeps it in cache_dir/fused/. On disk
and in memory it is a plain set of tensors: xyz float32 [P, 3], rgb uint8 [P, 3], weight float32 [P],
dynamic_bits uint8 [N, bytes] (scenes/fusion.FusedWorld)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from scenes.atomic import remove_stale_temporaries, write_atomic
from scenes.fusion import FusedWorld, build_world


def world_key(scene, fusion_cfg) -> str:
    """The scene's stored content hash (computed when it was saved or loaded) and the fusion settings;
    a scene that was never stored is hashed here."""
    h = hashlib.sha256()
    if scene.content_hash:
        h.update(scene.content_hash.encode())
    else:
        for t in (scene.frames, scene.depth, scene.K, scene.c2w):
            h.update(t.contiguous().numpy().tobytes())
    h.update(json.dumps(dataclasses.asdict(fusion_cfg), sort_keys=True).encode())
    return h.hexdigest()[:32]


def world_path(scene, fusion_cfg, cache_dir: Path | str) -> Path:
    """Where the fused world of `scene` under `fusion_cfg` is stored."""
    name = f"world-{world_key(scene, fusion_cfg)}.safetensors"
    return scene.folder / name if scene.folder is not None else Path(cache_dir) / "fused" / name


def load_or_build_world(scene, fusion_cfg, cache_dir: Path | str, device, progress: bool = True) -> FusedWorld:
    """The stored fused world of `scene`, or build it (with a progress bar) and store it."""
    path = world_path(scene, fusion_cfg, cache_dir)
    if path.is_file():
        try:
            with safe_open(str(path), "pt") as f:
                meta = json.loads(f.metadata()["world"])
                tensors = {name: f.get_tensor(name) for name in ("xyz", "rgb", "weight", "dynamic_bits")}
            return FusedWorld(**tensors, voxel_shift=meta["voxel_shift"], frames=meta["frames"],
                              mask_hw=tuple(meta["mask_hw"]), cfg=fusion_cfg)
        except (SafetensorError, OSError, KeyError, TypeError, ValueError, json.JSONDecodeError):
            print(f"roam: fused world cache {path} is unreadable; rebuilding it", file=sys.stderr)
    remove_stale_temporaries(path.parent)         # files of saves that were killed
    t0 = time.perf_counter()
    world = build_world(scene.frames.to(device), scene.depth, scene.K, scene.c2w, fusion_cfg, progress=progress)
    print(f"roam: fused {scene.num_frames} frames into {world.points} points in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    try:
        _save(world, path)
    except OSError as err:                      # e.g. a read-only scene folder: play on without storing it
        print(f"roam: could not store the fused world in {path} ({err.strerror}); it is rebuilt next time",
              file=sys.stderr)
    return world


def _save(world: FusedWorld, path: Path) -> None:
    meta = json.dumps({"voxel_shift": world.voxel_shift, "frames": world.frames, "mask_hw": list(world.mask_hw)})
    tensors = {"xyz": world.xyz, "rgb": world.rgb, "weight": world.weight, "dynamic_bits": world.dynamic_bits}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata={"world": meta}))
