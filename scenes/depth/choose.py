"""One interface over the depth providers: plan which one runs (before decoding, so the plan can key
the Scene cache), then run it on the decoded frames.

    auto      sample for the built-in sample's video; file when --depth-file is given or
              <video stem>.npz sits beside the video; da3 when its package and weights exist;
              else estimate. The reason is reported.
    sample    exact depth of the built-in sample (its video only)
    file      depth the user has (scenes/depth/files.py)
    da3       Depth-Anything-3 from checkpoints/DA3 (optional extra)
    estimate  weight-free planar prior (scenes/depth/estimate.py)
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from scenes.config import SampleConfig
from scenes.depth.base import DepthError, DepthRequest, DepthResult
from scenes.depth.da3 import da3_depth, da3_missing, load_da3
from scenes.depth.estimate import estimate_depth
from scenes.depth.files import file_depth
from scenes.depth.sample_match import match_sample, sample_depth
from scenes.sample import SampleRenderError
from scenes.scene import file_content_hash

PROVIDERS = ("auto", "sample", "file", "da3", "estimate")


@dataclass(frozen=True)
class DepthPlan:
    """mode: what was asked; fallback: what runs when auto finds the video is not the sample's
    (or the mode itself); depth_file: the file for `file`; reason: why the fallback was chosen;
    file_hash: content hash of depth_file (part of the cache key)."""
    mode: str
    fallback: str
    reason: str
    depth_file: Path | None = None
    file_hash: str | None = None
    da3_dir: Path = Path("checkpoints/DA3")

    def settings(self) -> dict:
        """What the Scene cache key must depend on."""
        return {"mode": self.mode, "fallback": self.fallback, "file": self.file_hash}


def sibling_depth_file(video_path: Path) -> Path | None:
    """`<video stem>.npz` beside the video, when it exists."""
    candidate = Path(video_path).with_suffix(".npz")
    return candidate if candidate.is_file() else None


def depth_source_hash(path: Path) -> str:
    """Content hash of a depth file, or of every file (name and bytes) inside a depth folder."""
    if path.is_file():
        return file_content_hash(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}\0{file_content_hash(f)}\0".encode())
    return "sha256:" + h.hexdigest()


def plan_depth(mode: str, video_path: Path, depth_file: Path | str | None = None,
               da3_dir: Path = Path("checkpoints/DA3")) -> DepthPlan:
    """Check the request and decide the provider (auto's sample check waits for the frames)."""
    if mode not in PROVIDERS:
        raise DepthError(f"--depth {mode}: unknown depth provider; use one of {', '.join(PROVIDERS)}")
    if depth_file is not None and mode not in ("auto", "file"):
        raise DepthError(f"--depth-file is only read by --depth file (or auto), not --depth {mode}")
    if depth_file is not None and not Path(depth_file).exists():
        raise DepthError(f"--depth-file {depth_file}: not found; pass an existing .npz/.npy file or PNG folder")
    file = Path(depth_file) if depth_file is not None else sibling_depth_file(video_path)
    file_hash = depth_source_hash(file) if file is not None and mode in ("auto", "file") else None
    if mode == "file" and file is None:
        raise DepthError(f"--depth file: give --depth-file X.npz or put {Path(video_path).with_suffix('.npz').name} "
                         "beside the video")
    if mode == "da3" and (why := da3_missing(da3_dir)):
        raise DepthError(f"--depth da3: {why}")
    if mode != "auto":
        return DepthPlan(mode, mode, f"--depth {mode}", file if mode == "file" else None, file_hash, da3_dir)
    if file is not None:
        return DepthPlan(mode, "file", f"depth file {file}", file, file_hash, da3_dir)
    why = da3_missing(da3_dir)
    if why is None:
        return DepthPlan(mode, "da3", f"DA3 weights found in {da3_dir}", None, None, da3_dir)
    return DepthPlan(mode, "estimate", f"no depth file and no DA3 ({why}); weight-free planar prior", None, None, da3_dir)


def _auto_sample(req: DepthRequest, sample_cfg: SampleConfig, progress: bool) -> DepthResult | None:
    """The sample's exact depth when `req` is its video; None otherwise or when no OpenGL is available
    to check (then the video cannot be the sample's video made on this machine anyway)."""
    try:
        return match_sample(req, sample_cfg, progress)[0]
    except SampleRenderError:
        return None


def run_depth(plan: DepthPlan, req: DepthRequest, sample_cfg: SampleConfig, device: str = "cpu",
              progress: bool = False) -> DepthResult:
    """Run the planned provider on `req`. -> DepthResult with notes['reason'] saying why it ran."""
    name, reason = plan.fallback, plan.reason
    result = _auto_sample(req, sample_cfg, progress) if plan.mode == "auto" else None
    if result is not None:
        reason = "the video is the built-in sample's; exact depth"
    elif name == "sample":
        result = sample_depth(req, sample_cfg, progress)
    elif name == "file":
        result = file_depth(req, plan.depth_file)
    elif name == "da3":
        result = da3_depth(req, load_da3(plan.da3_dir, device), progress)
    else:
        result = estimate_depth(req, progress)
    result.notes["reason"] = reason
    return result.check(req.num_frames, *req.size)
