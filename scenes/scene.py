"""The Scene: source frames, depth, intrinsics, poses, fps, caption and prompt embedding, with its file
format and the content-addressed cache it lives in.

On disk a Scene is one folder:

    frames.mkv          frames uint8 [N, H, W, 3] as H.264: lossless RGB (exact, for `render`) or 4:4:4 at
                        CRF 12 (compact: about 1/20 of the lossless size and 10x faster to decode)
    depth.zlib          depth [N, H, W], zlib-compressed little-endian float16 when every value is one
                        (`compact_depth` rounds it so where the reference's depth codec is no better), else
                        float32
    scene.safetensors   K float32 [N, 3, 3], c2w float32 [N, 4, 4] (OpenCV axes), optional prompt_embeds
                        bf16 [S, D] or [1, S, D]
    scene.json          the sidecar: format, version, fps, caption, the shape and dtype of every tensor,
                        the sha256 of every file, and `meta` (source path, build settings, ...)

All are written under temporary names and renamed, the sidecar last, so a reader sees either the old
scene, the new one, or (after a crash between the renames) a hash mismatch that it reports as
SceneError. `SceneCache` turns that error into a rebuild. Loading a scene marks it used (the
sidecar's modification time), so `main.py cache` can clean what was not used for a while.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from fractions import Fraction
from typing import Callable

import av
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from scenes.errors import SceneInputError

FORMAT = "roam-scene"
VERSION = 2
TENSOR_FILE, SIDECAR_FILE = "scene.safetensors", "scene.json"
FRAMES_FILE, DEPTH_FILE = "frames.mkv", "depth.zlib"
FILES = (FRAMES_FILE, DEPTH_FILE, TENSOR_FILE)
DEPTH_ZLIB_LEVEL = 1               # fast; depth maps are smooth, so the level barely changes the size
FRAME_CODECS = {                   # (codec, pixel format, options) of frames.mkv
    "exact": ("libx264rgb", "rgb24", {"qp": "0", "preset": "veryfast"}),
    "compact": ("libx264", "yuv444p", {"crf": "12", "preset": "veryfast"}),
}
HALF_RELATIVE_ERROR = 2.0 ** -11   # float16's largest rounding error relative to the value (normal range)
UINT16_CODES = 65535               # the reference's lossy depth codec: uint16 over the video's min..max
DTYPES = {"frames": torch.uint8, "depth": torch.float32, "K": torch.float32, "c2w": torch.float32,
          "prompt_embeds": torch.bfloat16}
DTYPE_NAMES = {torch.uint8: "uint8", torch.float16: "float16", torch.float32: "float32", torch.bfloat16: "bfloat16"}

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
    content_hash: the stored files' combined sha256 ("" until the scene is saved or loaded);
    folder: where it was loaded from (None until then), for what is stored beside it (the fused world)."""
    frames: torch.Tensor
    depth: torch.Tensor
    K: torch.Tensor
    c2w: torch.Tensor
    fps: float
    caption: str = ""
    prompt_embeds: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)
    content_hash: str = ""
    folder: Path | None = None

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

    def save(self, folder: Path | str, storage: str = "exact") -> Path:
        return save_scene(self, folder, storage)

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


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def compact_depth(depth: torch.Tensor) -> torch.Tensor:
    """Depth rounded to float16 when float16's relative error is within that of the reference's uint16
    depth codec on this depth (pipeline-spec 2.2: (max - min) / 65535 steps, at worst one step at the
    nearest depth), else unchanged. float32 [N, H, W] -> float32 [N, H, W]"""
    near, far = float(depth.min()), float(depth.max())
    if near <= 0 or far >= 65504 or (far - near) / UINT16_CODES / near < HALF_RELATIVE_ERROR:
        return depth
    return depth.to(torch.float16).to(torch.float32)


def for_storage(scene: Scene, storage: str) -> Scene:
    """`scene` as it will be stored: compact storage rounds its depth (compact_depth)."""
    if storage == "compact":
        scene.depth = compact_depth(scene.depth)
    return scene


def stored_depth(depth: torch.Tensor) -> torch.Tensor:
    """The dtype depth is stored in: float16 when that holds every value exactly, else float32."""
    half = depth.to(torch.float16)
    return half if torch.equal(half.to(torch.float32), depth) else depth


def _write_frames(frames: torch.Tensor, path: Path, fps: float, storage: str) -> None:
    """frames uint8 [N, H, W, 3] -> H.264 in Matroska, FRAME_CODECS[storage]."""
    codec, pix_fmt, options = FRAME_CODECS[storage]
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.options = dict(options)
        for frame in frames.numpy():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def save_scene(scene: Scene, folder: Path | str, storage: str = "exact") -> Path:
    """Validate and write `scene` into `folder` atomically (temp names, then rename; sidecar last).
    storage: exact (frames lossless) | compact (frames as high-quality video; load it back to use
    what was stored). -> the folder. Raises SceneError if the scene is invalid; nothing half-written remains."""
    folder = Path(folder)
    if storage not in FRAME_CODECS:
        raise SceneError(f"scene storage {storage!r}: expected one of {', '.join(FRAME_CODECS)}")
    validate_scene(scene, f"scene for {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    small = {k: v.detach().contiguous() for k, v in scene.tensors().items() if k not in ("frames", "depth")}
    depth = stored_depth(scene.depth.detach().contiguous())
    tmp = {name: _tmp_name(folder / name) for name in (*FILES, SIDECAR_FILE)}
    try:
        _write_frames(scene.frames, tmp[FRAMES_FILE], scene.fps, storage)
        little = depth.numpy().astype(depth.numpy().dtype.newbyteorder("<"), copy=False)
        tmp[DEPTH_FILE].write_bytes(zlib.compress(little.tobytes(), DEPTH_ZLIB_LEVEL))
        tmp[TENSOR_FILE].write_bytes(save_safetensors(small, metadata={"format": FORMAT, "version": str(VERSION)}))
        shapes = {"frames": scene.frames, "depth": depth, **small}
        files = {name: file_content_hash(tmp[name]) for name in FILES}
        sidecar = {
            "format": FORMAT, "version": VERSION, "fps": float(scene.fps), "caption": scene.caption,
            "num_frames": scene.num_frames, "height": scene.height, "width": scene.width, "storage": storage,
            "tensors": {k: {"shape": list(v.shape), "dtype": DTYPE_NAMES[v.dtype]} for k, v in shapes.items()},
            "files": files, "content_hash": sha256_bytes(json.dumps(files, sort_keys=True).encode()), "meta": scene.meta,
        }
        tmp[SIDECAR_FILE].write_text(json.dumps(sidecar, indent=2))
        for name in (*FILES, SIDECAR_FILE):
            os.replace(tmp[name], folder / name)
        scene.content_hash = sidecar["content_hash"]
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
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
    for key in ("fps", "caption", "tensors", "files", "content_hash", "meta"):
        if key not in sidecar:
            raise SceneError(f"{path}: sidecar lacks '{key}'; rebuild the scene")
    return sidecar


def _check_against_sidecar(tensors: dict, sidecar: dict, where: str) -> None:
    declared = sidecar["tensors"]
    if not isinstance(declared, dict) or set(declared) != set(tensors):
        listed = sorted(declared) if isinstance(declared, dict) else declared
        raise SceneError(f"{where}: the sidecar lists tensors {listed} but the files hold {sorted(tensors)}")
    for name, t in tensors.items():
        want, dtype = declared[name], DTYPE_NAMES.get(t.dtype)
        if not isinstance(want, dict) or want.get("shape") != list(t.shape) or want.get("dtype") != dtype:
            raise SceneError(f"{where}: {name} is {DTYPE_NAMES.get(t.dtype, t.dtype)} {list(t.shape)} in the files "
                             f"but the sidecar says {want}")


def _read_frames(path: Path) -> torch.Tensor:
    """frames.mkv -> uint8 [N, H, W, 3]."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return torch.from_numpy(np.stack(frames)) if frames else torch.zeros(0, 0, 0, 3, dtype=torch.uint8)


def _read_depth(data: bytes, declared, frames: torch.Tensor) -> torch.Tensor:
    """depth.zlib's bytes, the sidecar's entry for depth (its dtype) and the frames [N, H, W, 3]
    -> depth [N, H, W] in the stored dtype."""
    dtype = {"float16": "<f2", "float32": "<f4"}.get(declared.get("dtype") if isinstance(declared, dict) else None)
    if dtype is None:
        raise ValueError(f"depth dtype {declared} is not float16 or float32")
    values = np.frombuffer(zlib.decompress(data), dtype=dtype).astype(dtype[1:])
    return torch.from_numpy(values.reshape(frames.shape[:3]))


def load_scene(folder: Path | str, verify_hash: bool = True) -> Scene:
    """Read and check a scene folder: content hashes, sidecar agreement, dtypes, shapes, finite depth.
    Marks the scene used. Raises SceneError with the file and the problem when anything is off."""
    folder = Path(folder)
    sidecar = _read_sidecar(folder)
    data = {}
    for name in FILES:
        try:
            data[name] = (folder / name).read_bytes()
        except OSError as err:
            raise SceneError(f"{folder / name}: cannot read ({err.strerror}); rebuild the scene") from err
        if verify_hash and sha256_bytes(data[name]) != sidecar["files"].get(name):
            raise SceneError(f"{folder / name}: content hash does not match {SIDECAR_FILE} (corrupted or half-written); "
                             "rebuild the scene")
    try:
        tensors = load_safetensors(data[TENSOR_FILE])
        tensors["frames"] = _read_frames(folder / FRAMES_FILE)
        tensors["depth"] = _read_depth(data[DEPTH_FILE], sidecar["tensors"].get("depth"), tensors["frames"])
    except (SafetensorError, ValueError, RuntimeError, zlib.error, OSError) as err:
        raise SceneError(f"{folder}: unreadable scene files ({err}); rebuild the scene") from err
    del data
    _check_against_sidecar(tensors, sidecar, str(folder))
    scene = Scene(frames=tensors["frames"], depth=tensors["depth"].to(torch.float32), K=tensors["K"], c2w=tensors["c2w"],
                  fps=sidecar["fps"], caption=sidecar["caption"], prompt_embeds=tensors.get("prompt_embeds"),
                  meta=sidecar["meta"], content_hash=sidecar["content_hash"], folder=folder)
    validate_scene(scene, str(folder))
    try:
        os.utime(folder / SIDECAR_FILE)                 # last used, for `main.py cache clean --older-than`
    except OSError:
        pass                                            # a read-only scene folder loads all the same
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
    """Built Scenes under `root/<key>/`, where the key comes from `scene_cache_key`, stored as
    `storage` says (save_scene)."""

    def __init__(self, root: Path | str, storage: str = "compact"):
        self.root, self.storage = Path(root), storage

    def path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise SceneError(f"bad scene cache key {key!r}")
        return self.root / key

    def get(self, key: str) -> Scene | None:
        """The cached Scene, or None when there is none. Raises SceneError for a broken entry."""
        folder = self.path(key)
        return load_scene(folder) if (folder / SIDECAR_FILE).is_file() else None

    def get_or_build(self, key: str, builder: Callable[[], Scene]) -> Scene:
        """Load the entry for `key`; build, store and return it when absent, stale or corrupt. A compact
        entry is loaded back after the build, so every use of it sees the same frames."""
        folder = self.path(key)
        if folder.exists():
            try:
                return load_scene(folder)
            except SceneError as err:
                log.warning("scene cache entry %s is stale or corrupt (%s); rebuilding it", folder, err)
                shutil.rmtree(folder, ignore_errors=True)
        scene = builder()
        staging = self.root / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            save_scene(scene, staging, self.storage)
            try:
                os.replace(staging, folder)       # atomic; fails if another process filled `folder` first
            except OSError:
                if not (folder / SIDECAR_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if self.storage == "exact":
            scene.folder = folder
            return scene
        return load_scene(folder)

    def remove(self, key: str) -> None:
        shutil.rmtree(self.path(key), ignore_errors=True)
