"""The Scene: source frames, depth, intrinsics, poses, fps, caption and prompt embedding, with its file
format and the content-addressed cache it lives in.

On disk a Scene is one folder with two files:

    scene.safetensors   frames uint8 [N, H, W, 3], depth float32 [N, H, W], K float32 [N, 3, 3],
                        c2w float32 [N, 4, 4] (OpenCV axes), optional prompt_embeds bf16 [S, D] or [1, S, D]
    scene.json          the sidecar: format, version, fps, caption, the shape and dtype of every tensor,
                        the sha256 of scene.safetensors, and `meta` (source path, build settings, ...)

Both are written under temporary names and renamed, the sidecar last, so a reader sees either the old
scene, the new one, or (after a crash between the renames) a hash mismatch that it reports as
SceneError. `SceneCache` turns that error into a rebuild.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from scenes.atomic import remove_stale_temporaries, temporary_path, writable_folder
from scenes.errors import SceneInputError
from scenes.memory import require_memory

FORMAT = "roam-scene"
VERSION = 1
TENSOR_FILE, SIDECAR_FILE = "scene.safetensors", "scene.json"
DTYPES = {"frames": torch.uint8, "depth": torch.float32, "K": torch.float32, "c2w": torch.float32,
          "prompt_embeds": torch.bfloat16}
DTYPE_NAMES = {torch.uint8: "uint8", torch.float32: "float32", torch.bfloat16: "bfloat16"}

log = logging.getLogger(__name__)


class SceneError(SceneInputError):
    """A Scene, scene file or cache entry that is malformed, corrupted or inconsistent."""


@dataclass
class Scene:
    """One source video with everything the engine needs to walk through it (all tensors on CPU).

    frames: uint8 [N, H, W, 3] RGB. depth: float32 [N, H, W], camera z (metres-ish), finite, >= 0.
    K: float32 [N, 3, 3] pixel intrinsics, pixel centres at integer coordinates (OpenCV).
    c2w: float32 [N, 4, 4] camera-to-world, OpenCV camera axes (+x right, +y down, +z forward).
    prompt_embeds: optional bf16 [S, D] or [1, S, D] umT5 output for `caption` (D = 4096).
    meta: JSON-serialisable; by convention `source` (input path) and `settings` (build settings).
    content_hash: sha256 of the stored tensor file ("" until the scene is saved or loaded)."""
    frames: torch.Tensor
    depth: torch.Tensor
    K: torch.Tensor
    c2w: torch.Tensor
    fps: float
    caption: str = ""
    prompt_embeds: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)
    content_hash: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors as stored in scene.safetensors."""
        out = {"frames": self.frames, "depth": self.depth, "K": self.K, "c2w": self.c2w}
        if self.prompt_embeds is not None:
            out["prompt_embeds"] = self.prompt_embeds
        return out

    def save(self, folder: Path | str) -> Path:
        return save_scene(self, folder)

    @classmethod
    def load(cls, folder: Path | str, verify_hash: bool = True) -> "Scene":
        return load_scene(folder, verify_hash=verify_hash)


# ---------------------------------------------------------------- validation

def _check_tensor(name: str, t, shape: tuple, where: str) -> None:
    """`shape` may hold None for a free dimension."""
    if not isinstance(t, torch.Tensor):
        raise SceneError(f"{where}: {name} must be a torch tensor, got {type(t).__name__}")
    if t.dtype != DTYPES[name]:
        raise SceneError(f"{where}: {name} must be {DTYPE_NAMES[DTYPES[name]]}, got {t.dtype}")
    if t.ndim != len(shape) or any(w is not None and w != s for w, s in zip(shape, t.shape)):
        want = "[" + ", ".join("*" if w is None else str(w) for w in shape) + "]"
        raise SceneError(f"{where}: {name} has shape {list(t.shape)}, expected {want}")


def validate_scene(scene: Scene, where: str = "scene") -> None:
    """Raise SceneError naming the first problem: dtypes, shapes, N agreement, finite values, fps."""
    _check_tensor("frames", scene.frames, (None, None, None, 3), where)
    n, h, w = scene.frames.shape[:3]
    if n < 1 or h < 1 or w < 1:
        raise SceneError(f"{where}: frames must hold at least one non-empty frame, got {list(scene.frames.shape)}")
    _check_tensor("depth", scene.depth, (n, h, w), where)
    _check_tensor("K", scene.K, (n, 3, 3), where)
    _check_tensor("c2w", scene.c2w, (n, 4, 4), where)
    if not bool(torch.isfinite(scene.depth).all()):
        bad = int((~torch.isfinite(scene.depth)).sum())
        raise SceneError(f"{where}: depth holds {bad} non-finite values (NaN or inf); rebuild the scene")
    if bool((scene.depth < 0).any()):
        raise SceneError(f"{where}: depth holds negative values; depth is camera z and must be >= 0")
    for name in ("K", "c2w"):
        if not bool(torch.isfinite(getattr(scene, name)).all()):
            raise SceneError(f"{where}: {name} holds non-finite values")
    if not isinstance(scene.fps, (int, float)) or not math.isfinite(scene.fps) or scene.fps <= 0:
        raise SceneError(f"{where}: fps must be a positive number, got {scene.fps!r}")
    if not isinstance(scene.caption, str):
        raise SceneError(f"{where}: caption must be a string, got {type(scene.caption).__name__}")
    if scene.prompt_embeds is not None:
        pe = scene.prompt_embeds
        _check_tensor("prompt_embeds", pe, (None, None) if pe.ndim == 2 else (1, None, None), where)
    if not isinstance(scene.meta, dict):
        raise SceneError(f"{where}: meta must be a dict, got {type(scene.meta).__name__}")
    try:
        json.dumps(scene.meta)
    except (TypeError, ValueError) as err:
        raise SceneError(f"{where}: meta is not JSON-serialisable ({err})") from err


# ---------------------------------------------------------------- files

def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_content_hash(path: Path | str, chunk_bytes: int = 1 << 22) -> str:
    """sha256 of a file's bytes, streamed (for cache keys of input videos). -> 'sha256:<hex>'"""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def save_scene(scene: Scene, folder: Path | str) -> Path:
    """Validate and write `scene` into `folder` atomically (temp names, then rename; sidecar last).

    -> the folder. Raises SceneError if the scene is invalid; nothing half-written remains."""
    folder = Path(folder)
    validate_scene(scene, f"scene for {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in scene.tensors().items()}
    tmp_tensors, tmp_sidecar = temporary_path(folder / TENSOR_FILE), temporary_path(folder / SIDECAR_FILE)
    try:
        try:
            save_file(tensors, str(tmp_tensors), metadata={"format": FORMAT, "version": str(VERSION)})
        except SafetensorError as err:          # an I/O error from safetensors' Rust side: "... (os error 28)"
            code = re.search(r"os error (\d+)", str(err))
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(folder / TENSOR_FILE)) from None
        sidecar = {
            "format": FORMAT, "version": VERSION, "fps": float(scene.fps), "caption": scene.caption,
            "num_frames": scene.num_frames, "height": scene.height, "width": scene.width,
            "tensors": {k: {"shape": list(v.shape), "dtype": DTYPE_NAMES[v.dtype]} for k, v in tensors.items()},
            "content_hash": file_content_hash(tmp_tensors), "meta": scene.meta,
        }
        tmp_sidecar.write_text(json.dumps(sidecar, indent=2))
        os.replace(tmp_tensors, folder / TENSOR_FILE)
        os.replace(tmp_sidecar, folder / SIDECAR_FILE)
        scene.content_hash = sidecar["content_hash"]
    finally:
        for tmp in (tmp_tensors, tmp_sidecar):
            tmp.unlink(missing_ok=True)
    return folder


def _read_sidecar(folder: Path) -> dict:
    path = folder / SIDECAR_FILE
    if not path.is_file():
        raise SceneError(f"{folder}: not a scene folder ({SIDECAR_FILE} is missing); rebuild it with `main.py build`")
    try:
        sidecar = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SceneError(f"{path}: unreadable sidecar ({err}); rebuild the scene") from err
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise SceneError(f"{path}: not a {FORMAT} sidecar; rebuild the scene")
    if sidecar.get("version") != VERSION:
        raise SceneError(f"{path}: scene format version {sidecar.get('version')!r}, this roam reads {VERSION}; "
                         "rebuild the scene")
    for key in ("fps", "caption", "tensors", "content_hash", "meta"):
        if key not in sidecar:
            raise SceneError(f"{path}: sidecar lacks '{key}'; rebuild the scene")
    return sidecar


def _check_against_sidecar(tensors: dict, sidecar: dict, where: str) -> None:
    declared = sidecar["tensors"]
    if not isinstance(declared, dict) or set(declared) != set(tensors):
        listed = sorted(declared) if isinstance(declared, dict) else declared
        raise SceneError(f"{where}: the sidecar lists tensors {listed} but the file holds {sorted(tensors)}")
    for name, t in tensors.items():
        want, dtype = declared[name], DTYPE_NAMES.get(t.dtype)
        if not isinstance(want, dict) or want.get("shape") != list(t.shape) or want.get("dtype") != dtype:
            raise SceneError(f"{where}: {name} is {DTYPE_NAMES.get(t.dtype, t.dtype)} {list(t.shape)} in the file "
                             f"but the sidecar says {want}")


def load_scene(folder: Path | str, verify_hash: bool = True) -> Scene:
    """Read and check a scene folder: content hash, sidecar agreement, dtypes, shapes, finite depth.

    Raises SceneError with the file and the problem when anything is off."""
    folder = Path(folder)
    sidecar = _read_sidecar(folder)
    path = folder / TENSOR_FILE
    try:
        require_memory(2 * path.stat().st_size, f"{path}: the scene's tensors (read, then unpacked)",
                       "close other programs, or rebuild the scene with a lower scenes.width/height")
        data = path.read_bytes()
    except OSError as err:
        raise SceneError(f"{path}: cannot read ({err.strerror}); rebuild the scene") from err
    if verify_hash and sha256_bytes(data) != sidecar["content_hash"]:
        raise SceneError(f"{path}: content hash does not match {SIDECAR_FILE} (corrupted or half-written); "
                         "rebuild the scene")
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise SceneError(f"{path}: not a readable safetensors file ({err}); rebuild the scene") from err
    del data
    _check_against_sidecar(tensors, sidecar, str(path))
    missing = {"frames", "depth", "K", "c2w"} - tensors.keys()
    if missing:
        raise SceneError(f"{path}: missing tensors {sorted(missing)}")
    scene = Scene(frames=tensors["frames"], depth=tensors["depth"], K=tensors["K"], c2w=tensors["c2w"],
                  fps=sidecar["fps"], caption=sidecar["caption"], prompt_embeds=tensors.get("prompt_embeds"),
                  meta=sidecar["meta"], content_hash=sidecar["content_hash"])
    validate_scene(scene, str(path))
    return scene


# ---------------------------------------------------------------- cache

def scene_cache_key(input_bytes_hash: str, settings: dict) -> str:
    """Cache key of a Scene built from an input with content hash `input_bytes_hash` under build
    `settings` (JSON-serialisable). The format version is part of the key. -> 24 hex characters"""
    try:
        blob = json.dumps({"format": FORMAT, "version": VERSION, "input": input_bytes_hash, "settings": settings},
                          sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise SceneError(f"scene build settings are not JSON-serialisable ({err})") from err
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class SceneCache:
    """Built Scenes under `root/<key>/`, where the key comes from `scene_cache_key`."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise SceneError(f"bad scene cache key {key!r}")
        return self.root / key

    def get(self, key: str) -> Scene | None:
        """The cached Scene, or None when there is none. Raises SceneError for a broken entry."""
        folder = self.path(key)
        return load_scene(folder) if (folder / SIDECAR_FILE).is_file() else None

    def get_or_build(self, key: str, builder: Callable[[], Scene]) -> Scene:
        """Load the entry for `key`; build, store and return it when absent, stale or corrupt."""
        folder = self.path(key)
        if folder.exists():
            try:
                return load_scene(folder)
            except SceneError as err:
                log.warning("scene cache entry %s is stale or corrupt (%s); rebuilding it", folder, err)
                shutil.rmtree(folder, ignore_errors=True)
        writable_folder(self.root)                # a read-only or full cache fails now, not after the build
        remove_stale_temporaries(self.root)       # staging folders of builds that were killed
        scene = builder()
        staging = temporary_path(folder)
        try:
            save_scene(scene, staging)
            try:
                os.replace(staging, folder)       # atomic; fails if another process filled `folder` first
            except OSError:
                if not (folder / SIDECAR_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return scene

    def remove(self, key: str) -> None:
        shutil.rmtree(self.path(key), ignore_errors=True)
