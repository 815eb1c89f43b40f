"""`file`: depth maps (and optionally cameras) the user already has.

Accepted forms of `--depth-file X` (or `<video stem>.npz` beside the video):
- X.npz with `depth` [N, H, W] (camera z, any positive unit), optional `K` ([3, 3] or [N, 3, 3],
  pixels of the depth map's resolution) and `c2w` [N, 4, 4] (OpenCV axes);
- X.npy: `depth` only;
- a folder of 16-bit greyscale PNGs, depth = code * scale, the scale from `scale.txt` in the folder
  (one number) or config scenes.depth.png_scale;
- a folder of the reference's float32-in-RGBA PNGs (its `<stem>_da3_tmp/` with depth/,
  intrinsic.txt and extrinsic.txt, whose cameras are used when present);
- the reference's pi3 folder (depth/ of uint16 PNGs + metadata.txt; intrinsics.txt and
  extrinsics.txt are used when present).
Depth is stretched to the working size with nearest (the reference's rule), K anisotropically.
Missing K or c2w fall back to the defaults of `estimate` (default_K, static poses).
"""
from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from scenes.depth.base import (DepthError, DepthRequest, DepthResult, check_depth_values, default_K,
                               static_poses)
from scenes.depth.formats import decode_pi3, read_float_depth_png, read_matrix_txt, read_pi3_depth
from scenes.errors import SceneInputError

ASPECT_TOLERANCE = 0.1          # depth maps may be stretched, but not to a different shape than source or working size


def load_depth_file(path: Path, png_scale: float = 0.001) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read any accepted form. -> depth float32 [N, h, w], K [3, 3] | [N, 3, 3] | None, c2w [N, 4, 4] | None
    (K in pixels of h x w). Raises DepthError naming the file."""
    path = Path(path)
    if not path.exists():
        raise DepthError(f"depth file {path} not found; pass an existing .npz/.npy file or PNG folder")
    try:
        if path.is_dir():
            return _load_folder(path, png_scale)
        if path.suffix.lower() == ".npz":
            return _load_npz(path)
        if path.suffix.lower() == ".npy":
            return _array(path, np.load(path, allow_pickle=False), "depth"), None, None
    except SceneInputError as err:
        raise DepthError(str(err)) from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        what = "depth folder" if path.is_dir() else "numpy file"
        raise DepthError(f"{path}: not a readable {what} ({err}); save depth with numpy.savez / numpy.save "
                         "or as same-sized PNGs") from None
    raise DepthError(f"{path}: unknown depth file type; use .npz, .npy or a folder of depth PNGs")


def _array(path: Path, value, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise DepthError(f"{path}: '{name}' must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float32 if name == "depth" else np.float64)


def _load_npz(path: Path):
    with np.load(path, allow_pickle=False) as data:
        if "depth" not in data.files:
            raise DepthError(f"{path}: no 'depth' array (found {sorted(data.files)}); save depth=[N, H, W]")
        depth = _array(path, data["depth"], "depth")
        K = _array(path, data["K"], "K") if "K" in data.files else None
        c2w = _array(path, data["c2w"], "c2w") if "c2w" in data.files else None
    return depth, K, c2w


def _png_header(path: Path) -> tuple[str, tuple[int, int]]:
    """-> (PIL mode, (width, height)) without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.mode, img.size
    except (OSError, UnidentifiedImageError) as err:
        raise DepthError(f"{path}: not a readable PNG ({err})") from None


def _load_folder(folder: Path, png_scale: float):
    if (folder / "metadata.txt").is_file():
        return _load_pi3(folder)
    pngs = sorted((folder / "depth").glob("*.png")) or sorted(folder.glob("*.png"))
    if not pngs:
        raise DepthError(f"{folder}: no depth PNGs in it (nor in depth/); pass a folder of 16-bit or float-RGBA PNGs")
    headers = [_png_header(p) for p in pngs]
    mode, sizes = headers[0][0], {size for _, size in headers}
    if len(sizes) != 1:
        raise DepthError(f"{folder}: the depth PNGs differ in size ({sorted(sizes)}); give one size for all frames")
    if mode == "RGBA":
        depth = np.stack([read_float_depth_png(p) for p in pngs])
        K = read_matrix_txt(folder / "intrinsic.txt", 3) if (folder / "intrinsic.txt").is_file() else None
        w2c = read_matrix_txt(folder / "extrinsic.txt", 4) if (folder / "extrinsic.txt").is_file() else None
        return depth, K, None if w2c is None else _c2w_from_w2c(w2c)
    if mode.startswith("I;16") or mode == "I":
        scale = _png_scale(folder, png_scale)
        return np.stack([_read_u16(p) for p in pngs]).astype(np.float32) * np.float32(scale), None, None
    raise DepthError(f"{pngs[0]}: PNG mode {mode}; depth PNGs must be 16-bit greyscale or float32-in-RGBA")


def _read_u16(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img, dtype=np.float64)


def _png_scale(folder: Path, default: float) -> float:
    scale_file = folder / "scale.txt"
    if not scale_file.is_file():
        return float(default)
    try:
        scale = float(scale_file.read_text().strip())
    except ValueError:
        scale = float("nan")
    if not (np.isfinite(scale) and scale > 0):
        raise DepthError(f"{scale_file}: expected one positive number (depth units per PNG code)")
    return scale


def _load_pi3(folder: Path):
    u16, lo, hi = read_pi3_depth(folder)
    depth = decode_pi3(u16, lo, hi).astype(np.float32)
    K = w2c = None
    if (folder / "intrinsics.txt").is_file():
        K = _literal_matrices(folder / "intrinsics.txt", (3, 3))[0]
    if (folder / "extrinsics.txt").is_file():
        w2c = _literal_matrices(folder / "extrinsics.txt", (3, 4))
    return depth, K, None if w2c is None else _c2w_from_w2c(w2c)


def _literal_matrices(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """pi3 text files: one Python-literal matrix per line (pipeline-spec 2.3). -> [M, *shape]"""
    try:
        mats = [np.array(ast.literal_eval(line), dtype=np.float64) for line in path.read_text().splitlines() if line.strip()]
    except (ValueError, SyntaxError) as err:
        raise DepthError(f"{path}: not one Python-literal matrix per line ({err})") from None
    if not mats or any(m.shape != shape for m in mats):
        raise DepthError(f"{path}: expected {shape[0]}x{shape[1]} matrices, one per line")
    return np.stack(mats)


def _c2w_from_w2c(w2c: np.ndarray) -> np.ndarray:
    full = np.tile(np.eye(4), (len(w2c), 1, 1))                                      # [N, 4, 4]
    full[:, :3, :] = w2c
    return np.linalg.inv(full)


def _check_shapes(where: str, depth: np.ndarray, K, c2w, req: DepthRequest) -> None:
    n = req.num_frames
    if depth.ndim != 3 or min(depth.shape) < 1:
        raise DepthError(f"{where}: depth has shape {list(depth.shape)}, expected [N, H, W] with N = {n} frames")
    if len(depth) != n:
        raise DepthError(f"{where}: holds {len(depth)} depth maps but the video decodes to {n} frames; "
                         "give one depth map per frame")
    aspect = depth.shape[2] / depth.shape[1]
    wanted = [w / h for w, h in (req.source_size, req.size)]
    if all(abs(aspect / a - 1) > ASPECT_TOLERANCE for a in wanted):
        raise DepthError(f"{where}: depth maps are {depth.shape[2]}x{depth.shape[1]}, a different shape than the "
                         f"video ({req.source_size[0]}x{req.source_size[1]}); give depth of this video's frames")
    if K is not None and K.shape not in ((3, 3), (n, 3, 3)):
        raise DepthError(f"{where}: K has shape {list(K.shape)}, expected [3, 3] or [{n}, 3, 3]")
    if K is not None and not (np.isfinite(K).all() and (K[..., 0, 0] > 0).all() and (K[..., 1, 1] > 0).all()):
        raise DepthError(f"{where}: K must be finite with positive focal lengths")
    if c2w is not None and (c2w.shape != (n, 4, 4) or not np.isfinite(c2w).all()):
        raise DepthError(f"{where}: c2w has shape {list(c2w.shape)} (or non-finite values), expected finite [{n}, 4, 4]")


def file_depth(req: DepthRequest, path: Path) -> DepthResult:
    """Depth, K and poses from `path`, checked and brought to the working size."""
    depth, K, c2w = load_depth_file(path, req.cfg.png_scale)
    _check_shapes(str(path), depth, K, c2w, req)
    check_depth_values(depth, str(path))
    width, height = req.size
    n, h, w = depth.shape
    fit = req.frame_fit
    if K is None:
        K_work = default_K(width, height, req.source_size, req.cfg.hfov_deg, req.fit)
    else:
        K_work = fit.K(K, (w, h))
    notes = {"file": str(path), "file_size": [w, h], "K": "file" if K is not None else "default",
             "c2w": "file" if c2w is not None else "static"}
    return DepthResult(depth=fit.depth(depth),
                       K=torch.as_tensor(K_work, dtype=torch.float32).expand(n, 3, 3).clone(),
                       c2w=static_poses(n) if c2w is None else torch.as_tensor(c2w, dtype=torch.float32),
                       provider="file", notes=notes)
