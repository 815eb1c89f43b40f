"""The Scene: source frames, depth, intrinsics, poses, fps, caption and prompt embedding, with its file
format and the content-addressed cache it lives in.

On disk a Scene is one folder:

    frames.mkv          frames uint8 [N, H, W, 3] as H.264: lossless RGB (exact, for `render`) or 4:4:4 at
                        CRF 12 (compact: about 1/20 of the lossless size and 10x faster to decode)
    depth.zlib          depth [N, H, W], zlib-compressed little-endian float16 when every value is one
                        (`compact_depth` rounds it so where the reference's depth codec is no better), else
                        float32
    scene.safetensors   K float32 [N, 3, 3], c2w float32 [N, 4, 4] (OpenCV axes)
    scene.json          the sidecar: format, version, fps, caption, the shape and dtype of every tensor,
                        the sha256 of every file, and `meta` (source path, build settings, ...)
    prompt.safetensors  (once the caption is encoded) prompt_embeds bf16 [S, D] or [1, S, D], the text
                        encoder's output for the caption; its metadata names the caption (sha256) and the
                        encoder. It is added or replaced later (the encoder downloaded after the build)
                        without touching the other files; one that no longer matches the caption is ignored.

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
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from fractions import Fraction
from typing import Callable

import av
import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from scenes.atomic import remove_stale_temporaries, temporary_path, writable_folder, write_atomic
from scenes.errors import SceneInputError
from scenes.memory import require_memory

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

PROMPT_FILE = "prompt.safetensors"
GEOMETRY = ("frames", "depth", "K", "c2w")

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
    prompt_encoder: names the text encoder that made prompt_embeds ("" where unknown).
    meta: JSON-serialisable; by convention `source` (input path) and `settings` (build settings).
    content_hash: the stored files' combined sha256 ("" until the scene is saved or loaded).
    folder: the folder it was loaded from or saved to (None until then), for what is stored beside it
    (the fused world, a prompt embedding made later)."""
    frames: torch.Tensor
    depth: torch.Tensor
    K: torch.Tensor
    c2w: torch.Tensor
    fps: float
    caption: str = ""
    prompt_embeds: torch.Tensor | None = None
    prompt_encoder: str = ""
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
        """The stored tensors besides the prompt embedding: frames (frames.mkv), depth (depth.zlib), K and
        c2w (scene.safetensors)."""
        return {name: getattr(self, name) for name in GEOMETRY}

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


def weights_fingerprint(paths: list[Path], sample_bytes: int = 1 << 20) -> str:
    """Names a set of weight files cheaply (for cache keys of what a model made): each file's name,
    size and three sampled windows of `sample_bytes` (start, middle, end), since other weights differ
    there and an 11 GB file is not read whole; small files are read whole. -> 16 hex characters"""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        size = path.stat().st_size
        h.update(f"{path.name}\0{size}\0".encode())
        with open(path, "rb") as f:
            for start in sorted({0, max(0, size // 2 - sample_bytes // 2), max(0, size - sample_bytes)}):
                f.seek(start)
                h.update(f.read(sample_bytes))
    return h.hexdigest()[:16]


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
    what was stored). The prompt embedding goes to prompt.safetensors (save_prompt_embeds); a folder's
    earlier one is removed when the scene has none. -> the folder. Raises SceneError if the scene is
    invalid; nothing half-written remains."""
    folder = Path(folder)
    if storage not in FRAME_CODECS:
        raise SceneError(f"scene storage {storage!r}: expected one of {', '.join(FRAME_CODECS)}")
    validate_scene(scene, f"scene for {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    small = {k: v.detach().contiguous() for k, v in scene.tensors().items() if k not in ("frames", "depth")}
    depth = stored_depth(scene.depth.detach().contiguous())
    tmp = {name: temporary_path(folder / name) for name in (*FILES, SIDECAR_FILE)}
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
        scene.content_hash, scene.folder = sidecar["content_hash"], folder
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    if scene.prompt_embeds is not None:
        save_prompt_embeds(scene, folder)
    else:
        (folder / PROMPT_FILE).unlink(missing_ok=True)
    return folder


def caption_hash(caption: str) -> str:
    return sha256_bytes(caption.encode("utf-8"))


def save_prompt_embeds(scene: Scene, folder: Path | str) -> Path:
    """Write scene.prompt_embeds (for scene.caption, by scene.prompt_encoder) to the scene folder's
    prompt.safetensors, atomically; the scene's other files are not touched."""
    validate_scene(scene, f"scene for {folder}")
    if scene.prompt_embeds is None:
        raise SceneError(f"{folder}: the scene has no prompt embedding to save")
    data = save_safetensors({"prompt_embeds": scene.prompt_embeds.detach().contiguous()},
                            metadata={"caption_sha256": caption_hash(scene.caption), "encoder": scene.prompt_encoder})
    return write_atomic(Path(folder) / PROMPT_FILE, data)


def _load_prompt_embeds(folder: Path, caption: str) -> tuple[torch.Tensor | None, str]:
    """(prompt_embeds, encoder) from prompt.safetensors, or (None, "") when there is none, it is
    unreadable or it belongs to another caption (derived data: it is made again, the scene stays)."""
    path = folder / PROMPT_FILE
    if not path.is_file():
        return None, ""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta, embeds = f.metadata() or {}, f.get_tensor("prompt_embeds")
    except (SafetensorError, OSError, KeyError) as err:
        log.warning("%s: unreadable prompt embedding (%s); it is ignored and made again when needed", path, err)
        return None, ""
    if meta.get("caption_sha256") != caption_hash(caption):
        log.warning("%s: made for another caption; it is ignored and made again when needed", path)
        return None, ""
    return embeds, meta.get("encoder", "")


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
    n, h, w = (sidecar.get(key) for key in ("num_frames", "height", "width"))
    if all(isinstance(v, int) for v in (n, h, w)):      # the files read whole, the frames decoded, depth as float32 too
        stored = sum((folder / name).stat().st_size for name in FILES if (folder / name).is_file())
        require_memory(stored + n * h * w * (3 + 4 + 4), f"{folder}: the scene's {n} frames at {w}x{h}",
                       "close other programs, or rebuild the scene with a lower scenes.width/height")
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
                  fps=sidecar["fps"], caption=sidecar["caption"], meta=sidecar["meta"],
                  content_hash=sidecar["content_hash"], folder=folder)
    validate_scene(scene, str(folder))
    scene.prompt_embeds, scene.prompt_encoder = _load_prompt_embeds(folder, scene.caption)
    try:
        validate_scene(scene, str(folder / PROMPT_FILE))
    except SceneError as err:
        log.warning("%s; it is ignored and made again when needed", err)
        scene.prompt_embeds, scene.prompt_encoder = None, ""
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
        writable_folder(self.root)                # a read-only or full cache fails now, not after the build
        remove_stale_temporaries(self.root)       # staging folders of builds that were killed
        scene = builder()
        staging = temporary_path(folder)
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
