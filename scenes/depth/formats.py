"""Depth and camera files of the reference's depth stage (pipeline-spec sections 2.1-2.3).

- float-in-RGBA PNG: each float32 depth's 4 little-endian bytes are the pixel's R, G, B, A (byte 0,
  the least significant, is R); 8-bit RGBA PNG saved with compress_level 0. Lossless.
- pi3 uint16 depth: a folder with depth/000000.png... (16-bit greyscale) and metadata.txt
  "<min> <max>\\n", min and max taken over all pixels of all frames;
  u16 = trunc(clip((d - min) / range * 65535, 0, 65535)) in float32 (range < 1e-8 -> 1.0), and
  decoded as u16 / 65535 * (max - min) + min in float64.
- intrinsic.txt / extrinsic.txt: numpy text, 3 rows per frame (3x3 K, 3x4 w2c).
- the depth-stage folder itself (the reference's `<stem>_da3_tmp/`): frames/ (JPEG or PNG),
  depth/ (float-in-RGBA PNG), intrinsic.txt, extrinsic.txt.

PNG goes through Pillow. Writers write to a temporary name and rename. Every reader error is a
one-line SceneInputError that names the file.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from scenes.atomic import write_atomic
from scenes.errors import SceneInputError

PI3_SCALE = 65535          # the largest uint16 code
PI3_MIN_RANGE = 1e-8       # a smaller depth range is replaced by 1.0 (constant depth encodes to 0)


def _open_png(path: str | os.PathLike, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            if img.mode != mode:
                raise SceneInputError(f"{os.fspath(path)}: expected a {mode} PNG, found mode {img.mode}")
            return np.array(img)
    except FileNotFoundError:
        raise SceneInputError(f"depth file {os.fspath(path)!r} not found") from None
    except (OSError, UnidentifiedImageError) as err:
        raise SceneInputError(f"{os.fspath(path)}: not a readable PNG ({err})") from None


def _png_bytes(array: np.ndarray, **save_args) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", **save_args)
    return buf.getvalue()


# --- float32 in RGBA ------------------------------------------------------------------------

def encode_float_rgba(depth: np.ndarray) -> np.ndarray:
    """[H, W] float32 -> [H, W, 4] uint8: the float's little-endian bytes as R, G, B, A."""
    depth = np.ascontiguousarray(depth, dtype="<f4")
    if depth.ndim != 2:
        raise SceneInputError(f"float-RGBA depth: expected an [H, W] map, got shape {depth.shape}")
    return depth.view(np.uint8).reshape(*depth.shape, 4)


def decode_float_rgba(rgba: np.ndarray) -> np.ndarray:
    """[H, W, 4] uint8 -> [H, W] float32 (bit-exact inverse of encode_float_rgba)."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    return rgba.view("<f4").reshape(rgba.shape[:2]).astype(np.float32)


def write_float_depth_png(path: str | os.PathLike, depth: np.ndarray) -> None:
    write_atomic(path, _png_bytes(encode_float_rgba(depth), compress_level=0))


def read_float_depth_png(path: str | os.PathLike) -> np.ndarray:
    """-> [H, W] float32 depth from a float-in-RGBA PNG."""
    return decode_float_rgba(_open_png(path, "RGBA"))


# --- pi3 uint16 -----------------------------------------------------------------------------

def encode_pi3(depths: np.ndarray) -> tuple[np.ndarray, float, float]:
    """[N, H, W] float depth -> (uint16 [N, H, W], global min, global max), arithmetic in float32."""
    d = np.asarray(depths, dtype=np.float32)
    if d.ndim != 3 or d.size == 0 or not np.isfinite(d).all():
        raise SceneInputError(f"pi3 depth: expected finite [N, H, W] depth maps, got shape {d.shape}")
    lo, hi = d.min(), d.max()
    span = hi - lo
    if span < PI3_MIN_RANGE:
        span = np.float32(1.0)
    return np.clip((d - lo) / span * np.float32(PI3_SCALE), 0, PI3_SCALE).astype(np.uint16), float(lo), float(hi)


def decode_pi3(u16: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """uint16 [..., H, W] -> float64 depth u16 / 65535 * (max - min) + min (the v2v dataset)."""
    return np.asarray(u16, dtype=np.float64) / PI3_SCALE * (hi - lo) + lo


def write_pi3_depth(folder: str | os.PathLike, depths: np.ndarray) -> None:
    """Write depth/000000.png... and metadata.txt ("<min> <max>", shortest round-trip decimals)."""
    u16, lo, hi = encode_pi3(depths)
    (Path(folder) / "depth").mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(u16):
        write_atomic(Path(folder) / "depth" / f"{i:06d}.png", _png_bytes(frame))
    write_atomic(Path(folder) / "metadata.txt", f"{lo!r} {hi!r}\n".encode())


def read_pi3_depth(folder: str | os.PathLike) -> tuple[np.ndarray, float, float]:
    """-> (uint16 [N, H, W], global min, global max) of a pi3 depth folder."""
    meta = Path(folder) / "metadata.txt"
    try:
        fields = meta.read_text(encoding="utf-8").split()
        lo, hi = (float(v) for v in fields) if len(fields) == 2 else (math.nan, math.nan)
    except FileNotFoundError:
        raise SceneInputError(f"pi3 depth: {meta} not found") from None
    except (OSError, UnicodeDecodeError, ValueError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise SceneInputError(f"{meta}: expected one line '<min> <max>' with finite min <= max")
    files = sorted((Path(folder) / "depth").glob("*.png"))
    if not files:
        raise SceneInputError(f"pi3 depth: no PNG files in {Path(folder) / 'depth'}")
    frames = [_open_png(f, "I;16") for f in files]
    if len({f.shape for f in frames}) != 1:
        raise SceneInputError(f"pi3 depth: the PNGs in {Path(folder) / 'depth'} differ in size")
    return np.stack(frames).astype(np.uint16), lo, hi


# --- camera text files and the depth-stage folder -------------------------------------------

def read_matrix_txt(path: str | os.PathLike, cols: int) -> np.ndarray:
    """numpy-text file of stacked 3 x cols matrices (intrinsic.txt: 3, extrinsic.txt: 4)
    -> [N, 3, cols] float64."""
    try:
        data = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except FileNotFoundError:
        raise SceneInputError(f"camera file {os.fspath(path)!r} not found") from None
    except (OSError, ValueError) as err:
        raise SceneInputError(f"{os.fspath(path)}: not a numeric text matrix ({err})") from None
    if data.shape[1] != cols or len(data) == 0 or len(data) % 3:
        raise SceneInputError(f"{os.fspath(path)}: expected 3 rows of {cols} numbers per frame, "
                              f"got a {data.shape[0]} x {data.shape[1]} table")
    if not np.isfinite(data).all():
        raise SceneInputError(f"{os.fspath(path)}: contains NaN or inf")
    return data.reshape(-1, 3, cols)


@dataclass(frozen=True)
class DepthStage:
    """The contents of a depth-stage folder, at the files' own resolution."""
    frames_u8: np.ndarray   # [N, H, W, 3] uint8 RGB
    depth: np.ndarray       # [N, H, W] float32 camera z (not yet clipped)
    K: np.ndarray           # [N, 3, 3] float64 per-frame intrinsics (the renderer uses K[0])
    w2c: np.ndarray         # [N, 3, 4] float64 world-to-camera (the smoothed poses)


def read_depth_stage_dir(folder: str | os.PathLike) -> DepthStage:
    """Read `<stem>_da3_tmp/`-style folders. Frames are sorted by name over *.jpg and *.png, as the
    reference does; JPEG decoding through Pillow may differ from OpenCV's by a code value."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SceneInputError(f"depth-stage folder {os.fspath(folder)!r} not found")
    frame_files = sorted([*folder.glob("frames/*.jpg"), *folder.glob("frames/*.png")])
    depth_files = sorted(folder.glob("depth/*.png"))
    if not frame_files or len(frame_files) != len(depth_files):
        raise SceneInputError(f"{folder}: need as many frames/*.jpg|png as depth/*.png (and at least one), "
                              f"found {len(frame_files)} and {len(depth_files)}")
    frames = [_read_rgb(f) for f in frame_files]
    depth = [read_float_depth_png(f) for f in depth_files]
    if len({f.shape[:2] for f in frames} | {d.shape for d in depth}) != 1:
        raise SceneInputError(f"{folder}: frames and depth maps must all have one size")
    K, w2c = read_matrix_txt(folder / "intrinsic.txt", 3), read_matrix_txt(folder / "extrinsic.txt", 4)
    if len(w2c) < len(frames) or len(K) < 1:
        raise SceneInputError(f"{folder}: extrinsic.txt has {len(w2c)} poses for {len(frames)} frames")
    return DepthStage(np.stack(frames), np.stack(depth), K, w2c[:len(frames)])


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise SceneInputError(f"{path}: not a readable image ({err})") from None
