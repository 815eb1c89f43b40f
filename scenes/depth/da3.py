"""`da3`: Depth-Anything-3 (the reference's depth and pose model) from checkpoints/DA3, an optional extra.

The adapter follows pipeline-spec 4.2:
- frames go to DA3 at its processing size: longest side 504 (round half to even), then each side to
  the nearest multiple of 14 (ties up). roam decodes the video straight to that size (bilinear with
  antialias; the reference resizes with cv2 INTER_AREA, so pixels differ slightly), so the
  library's own preprocessing is a no-op;
- one joint multi-view pass per chunk of at most scenes.depth.chunk_frames (1000, the reference's
  cap) frames. Longer videos run in chunks that share one frame; each chunk is re-anchored to that
  frame's pose in the previous chunk and rescaled by the ratio of its median depths;
- poses: w2c -> c2w, re-anchored to frame 0, then Gaussian-smoothed (sigma 2, quaternions x y z w
  without sign fix, translations, mode reflect, truncate 4, renormalised);
- K scaled anisotropically from the processing size to the working size, depth stretched with nearest.

The network is the package's own (`depth_anything_3.cfg` builds the registry preset that
config.json names, as `DepthAnything3` does). roam does the steps of the library's `inference` it
needs itself (ImageNet normalisation, autocast, OutputProcessor): the `DepthAnything3` wrapper
imports torchvision and its exporters' packages (moviepy, pycolmap, ...) when it loads, and a
torchvision build must match its torch build exactly (requirements-depth.txt installs the package
without them).
"""
from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from safetensors import SafetensorError
from safetensors.torch import load_file
from scipy.spatial.transform import Rotation

from scenes.depth.da3_weights import GET_DA3
from scenes.depth.base import DepthError, DepthRequest, DepthResult
from scenes.tensor_shapes import shape_mismatch
from scenes.video import decode_video

PROCESS_RES, PATCH = 504, 14
SMOOTH_SIGMA = 2.0
INSTALL_HINT = "install the optional extra: pip install --no-deps -r requirements-depth.txt"
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"      # DepthAnything3.from_pretrained's files
DEFAULT_MODEL = "da3-large"                                         # DepthAnything3's model_name default
REF_VIEW_STRATEGY = "saddle_balanced"                               # DepthAnything3.inference's default
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]  # [3, 1, 1]
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]   # [3, 1, 1]


def da3_process_size(width: int, height: int, process_res: int = PROCESS_RES, patch: int = PATCH) -> tuple[int, int]:
    """DA3's `upper_bound_resize` rule. (source width, height) -> (width, height) DA3 runs at,
    e.g. 1920x900 -> 504x238, 1352x760 -> 504x280."""
    scale = process_res / max(width, height)
    w, h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))

    def nearest_multiple(x: int) -> int:
        down = (x // patch) * patch
        return down + patch if (down + patch) - x <= x - down else down
    return max(1, nearest_multiple(w)), max(1, nearest_multiple(h))


def reanchor(c2w: np.ndarray) -> np.ndarray:
    """c2w'_i = c2w_0^-1 c2w_i, so frame 0 is the identity. [N, 4, 4] -> float64 [N, 4, 4]"""
    c2w = np.asarray(c2w, dtype=np.float64)                                             # [N, 4, 4]
    return np.linalg.inv(c2w[0]) @ c2w


def smooth_c2w(c2w: np.ndarray, sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """The reference's smooth_gaussian: filter quaternion (x, y, z, w) components and translations
    over time with gaussian_filter1d(sigma, mode='reflect', truncate=4), renormalise.
    [N, 4, 4] -> float64 [N, 4, 4]"""
    c2w = np.asarray(c2w, dtype=np.float64)                                             # [N, 4, 4]
    quat = Rotation.from_matrix(c2w[:, :3, :3]).as_quat()                           # [N, 4] x y z w
    quat = gaussian_filter1d(quat, sigma, axis=0, mode="reflect", truncate=4.0)
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    out = np.tile(np.eye(4), (len(c2w), 1, 1))                                       # [N, 4, 4]
    out[:, :3, :3] = Rotation.from_quat(quat).as_matrix()
    out[:, :3, 3] = gaussian_filter1d(c2w[:, :3, 3], sigma, axis=0, mode="reflect", truncate=4.0)
    return out


def chunk_ranges(n: int, chunk: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most `chunk` frames covering 0..n-1, neighbours sharing one frame."""
    if chunk < 2:
        raise DepthError(f"scenes.depth.chunk_frames must be at least 2, got {chunk}")
    ranges, start = [], 0
    while True:
        stop = min(start + chunk, n)
        ranges.append((start, stop))
        if stop == n:
            return ranges
        start = stop - 1


def chain_chunks(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Join per-chunk (depth [n, h, w], re-anchored c2w [n, 4, 4]) whose first frame repeats the
    previous chunk's last one: scale each chunk to the previous one's median depth on that frame and
    place it at that frame's pose. -> depth float32 [N, h, w], c2w float64 [N, 4, 4]"""
    depth, c2w = [parts[0][0]], [np.asarray(parts[0][1], dtype=np.float64)]             # [n, h, w], [n, 4, 4]
    for d, pose in parts[1:]:
        s = float(np.median(depth[-1][-1]) / np.median(d[0]))
        pose = np.array(pose, dtype=np.float64)                                         # [n, 4, 4]
        pose[:, :3, 3] *= s
        depth.append(d[1:] * np.float32(s))
        c2w.append((c2w[-1][-1] @ pose)[1:])
    return np.concatenate(depth).astype(np.float32), np.concatenate(c2w)                # [N, h, w], [N, 4, 4]


def da3_missing(model_dir: Path) -> str | None:
    """Why DA3 cannot run here (package or weights missing), or None when it can be tried."""
    if importlib.util.find_spec("depth_anything_3") is None:
        return f"the depth_anything_3 package is not installed; {INSTALL_HINT}"
    if not (model_dir / CONFIG_FILE).is_file() or not (model_dir / WEIGHTS_FILE).is_file():
        return f"no DA3 weights in {model_dir} (need {CONFIG_FILE} and {WEIGHTS_FILE}); {GET_DA3}"
    return None


class DA3Runner:
    """The DA3 network (the package's own classes, as `DepthAnything3` builds them) with the library's
    `inference` steps for roam's use: frames already at the processing size, no input cameras, no
    export. Input normalised with ImageNet's mean and std (the library's torchvision Normalize), the
    library's autocast on a GPU (bf16, fp16 where bf16 is missing; float32 on the CPU), then its
    OutputProcessor."""

    def __init__(self, net, output_processor, device):
        self.net, self.output_processor, self.device = net, output_processor, torch.device(device)
        on_gpu = self.device.type == "cuda"
        self.autocast_dtype = torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float16

    def inference(self, images: list[np.ndarray], use_ray_pose: bool = False):
        """images: uint8 [h, w, 3] each, h and w multiples of 14. -> Prediction (depth [n, h, w],
        intrinsics [n, 3, 3], extrinsics w2c [n, 3, 4])"""
        x = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float() / 255   # [n, 3, h, w]
        x = ((x - IMAGENET_MEAN.to(self.device)) / IMAGENET_STD.to(self.device))[None]           # [1, n, 3, h, w]
        with torch.inference_mode(), torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype,
                                                    enabled=self.device.type == "cuda"), redirect_stdout(sys.stderr):
            raw = self.net(x, None, None, [], False, use_ray_pose, REF_VIEW_STRATEGY)
        return self.output_processor(raw)


def load_da3(model_dir: Path, device: str) -> DA3Runner:
    """The DA3 network named by `model_dir`/config.json (`model_name`, a preset of the package's
    registry, as DepthAnything3.from_pretrained reads it), every tensor loaded strictly from
    model.safetensors; DepthError saying what to install or download."""
    reason = da3_missing(model_dir)
    if reason:
        raise DepthError(f"--depth da3: {reason}")
    try:
        with warnings.catch_warnings():                 # its omegaconf call is deprecated in omegaconf 2.4
            warnings.simplefilter("ignore", UserWarning)
            from depth_anything_3.cfg import create_object, load_config
        from depth_anything_3.registry import MODEL_REGISTRY
        from depth_anything_3.utils.io.output_processor import OutputProcessor
    except ImportError as err:
        raise DepthError(f"--depth da3: the depth_anything_3 package does not import ({err}); {INSTALL_HINT}") from None
    try:
        name = json.loads((model_dir / CONFIG_FILE).read_text()).get("model_name", DEFAULT_MODEL)
        with redirect_stdout(sys.stderr):               # the package logs to stdout, which is build's answer
            net = create_object(load_config(MODEL_REGISTRY[name]))
        state = {k.removeprefix("model."): v for k, v in load_file(str(model_dir / WEIGHTS_FILE)).items()}
    except ImportError as err:                          # a module the preset's network needs (e.g. evo)
        raise DepthError(f"--depth da3: the {name} network needs the module {err.name}, which is not installed; "
                         f"{INSTALL_HINT}") from None
    except KeyError as err:
        raise DepthError(f"{model_dir / CONFIG_FILE}: model_name {err} is not a DA3 preset of the installed "
                         f"package ({', '.join(sorted(MODEL_REGISTRY))})") from None
    except (OSError, ValueError, AttributeError, SafetensorError) as err:
        raise DepthError(f"{model_dir}: cannot read DA3 ({type(err).__name__}: {err}); {GET_DA3}") from None
    want = net.state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    if mismatch := shape_mismatch({k: tuple(v.shape) for k, v in want.items()}, shapes):
        raise DepthError(f"{model_dir / WEIGHTS_FILE}: not the {name} network: {mismatch}; {GET_DA3}")
    net.load_state_dict(state)
    return DA3Runner(net.to(device).eval(), OutputProcessor(), device)


def _run_chunk(model, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One joint pass. frames uint8 [n, h, w, 3] -> depth [n, h, w], K [n, 3, 3], re-anchored c2w [n, 4, 4]"""
    with torch.inference_mode():
        res = model.inference(list(frames), use_ray_pose=False)
    w2c = np.tile(np.eye(4), (len(frames), 1, 1))                                    # [n, 4, 4]
    w2c[:, :3, :] = np.asarray(res.extrinsics, dtype=np.float64)[:, :3, :]              # [n, 3, 4]
    return (np.asarray(res.depth, dtype=np.float32), np.asarray(res.intrinsics, dtype=np.float64),
            reanchor(np.linalg.inv(w2c)))                                               # [n, h, w], [n, 3, 3], [n, 4, 4]


def da3_depth(req: DepthRequest, model, progress: bool = False) -> DepthResult:
    """Run `model` (a loaded DepthAnything3, or anything with its `inference`) on the video of `req`."""
    pw, ph = da3_process_size(*req.source_size)
    frames, _ = decode_video(req.video_path, pw, ph)                                 # [N, ph, pw, 3]
    if len(frames) != req.num_frames:
        raise DepthError(f"{req.video_path}: decoded {len(frames)} frames at DA3's size but {req.num_frames} at the "
                         "working size; re-encode the video (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)")
    frames = frames.numpy()
    ranges = chunk_ranges(len(frames), req.cfg.chunk_frames)
    if len(ranges) > 1:
        print(f"roam: {len(frames)} frames: DA3 runs in {len(ranges)} chunks of at most "
              f"{req.cfg.chunk_frames} frames", file=sys.stderr)
    if progress:
        from tqdm import tqdm
        ranges = tqdm(ranges, desc="DA3 depth", unit="chunk", file=sys.stderr)
    parts, K0 = [], None
    for start, stop in ranges:
        depth, K, c2w = _run_chunk(model, frames[start:stop])
        parts.append((depth, c2w))
        K0 = K if K0 is None else np.concatenate([K0, K[1:]])                           # [N, 3, 3]
    depth, c2w = chain_chunks(parts)
    infer_h, infer_w = depth.shape[1:]
    notes = {"process_size": [int(infer_w), int(infer_h)], "chunks": len(parts), "smooth_sigma": SMOOTH_SIGMA}
    fit = req.frame_fit
    return DepthResult(depth=fit.depth(depth).clamp_min(1e-4),                       # [N, H, W]
                       K=torch.as_tensor(fit.K(K0, (infer_w, infer_h)), dtype=torch.float32),
                       c2w=torch.as_tensor(smooth_c2w(c2w), dtype=torch.float32), provider="da3", notes=notes)
