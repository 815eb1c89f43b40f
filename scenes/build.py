"""`main.py build VIDEO` (and play or render given a video): decode a video, give it depth and cameras, caption it, and store the Scene in
the cache (cfg.scenes.cache_dir), keyed by the video's content hash and the build settings.

Steps: probe and plan (bad input fails here, before any work), decode (scenes/video.py, streamed,
every frame kept; broken data in the middle is skipped with a warning naming the frame), depth
(scenes/depth: auto | sample | file | da3 | estimate), caption (--prompt, else Florence-2 from
checkpoints/Florence-2-large, else an empty caption with a notice), store (atomic; a failure
leaves nothing behind). A cached Scene is reused only when the video bytes, depth file bytes, the
caption's source (the --prompt text or the Florence-2 weights) and every setting that shapes the
result are unchanged. The caption's umT5 embedding is stored beside it, named by the caption and the
encoder (cli/prompt_embedding.py), so a new encoder re-encodes without rebuilding the Scene.
"""
from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

from scenes.caption_weights import FLORENCE_DIR
from scenes.captions import CaptionError, caption_frame, florence_identity, florence_missing
from scenes.depth import DepthPlan, DepthRequest, plan_depth, run_depth
from scenes.depth.sfm import sfm_missing
from scenes.frame_fit import FrameFit
from scenes.memory import require_memory
from scenes.sample import generator_hash
from scenes.scene import SIDECAR_FILE, Scene, SceneCache, file_content_hash, for_storage, scene_cache_key
from scenes.video import VideoDecodeWarning, VideoInfo, decode_video, probe_video

BUILD_VERSION = 1                  # bump when the build itself changes what it produces
REFERENCE_MAX_FRAMES = 1000        # the reference cuts videos here; roam keeps every frame
SHAPE_NOTICE = 0.01               # say what scenes.fit did when the video's shape differs more than this from the working size
BYTES_PER_PIXEL = 14               # peak build memory per working-size pixel: frames (3, twice while joined), depth (4, twice)


def _say(message: str) -> None:
    from tqdm import tqdm
    tqdm.write(f"roam: {message}", file=sys.stderr)          # keeps progress bars intact


def build_settings(cfg, plan: DepthPlan, prompt: str | None, florence_reason: str | None) -> dict:
    """Everything besides the video bytes that changes the built Scene (the cache key's settings)."""
    settings = {"builder": BUILD_VERSION, "width": cfg.scenes.width, "height": cfg.scenes.height, "fit": cfg.scenes.fit,
                "storage": cfg.scenes.storage,
                "depth": plan.settings(), "depth_cfg": dataclasses.asdict(cfg.scenes.depth),
                "caption": caption_settings(cfg, prompt, florence_reason)}
    if cfg.scenes.depth.sfm:
        settings["sfm_available"] = sfm_missing() is None
    if plan.mode in ("auto", "sample"):
        settings["sample"] = {**dataclasses.asdict(cfg.scenes.sample), "generator": generator_hash()}
    return settings


def caption_settings(cfg, prompt: str | None, florence_reason: str | None) -> dict:
    """The caption's part of the cache key: the prompt, or the Florence-2 weights that write it."""
    if prompt is not None:
        return {"prompt": prompt}
    if florence_reason is not None:
        return {"florence": False}
    return {"florence": florence_identity(Path(cfg.model.checkpoint_dir) / FLORENCE_DIR)}


def check_memory(info: VideoInfo, width: int, height: int) -> None:
    """Fail before decoding when the whole Scene cannot fit in memory (a Scene holds every frame)."""
    frames = info.num_frames or round(info.duration_s * info.fps)
    require_memory(frames * width * height * BYTES_PER_PIXEL, f"{info.path}: {frames} frames at {width}x{height}",
                   "cut the video (e.g. ffmpeg -t SECONDS) or lower scenes.width/height")


def _decode(path: Path, width: int, height: int, fit: str):
    """decode_video with its warnings turned into one-line notices. -> frames uint8 [N, H, W, 3], fps"""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", VideoDecodeWarning)
        frames, fps = decode_video(path, width, height, fit=fit)
    for w in caught:
        if issubclass(w.category, VideoDecodeWarning):
            _say(f"warning: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return frames, fps


def _caption(cfg, frames, prompt: str | None, florence_reason: str | None, device: str) -> tuple[str, str]:
    """-> (caption, where it came from)"""
    if prompt is not None:
        return prompt, "--prompt"
    if florence_reason is not None:
        _say(f"no caption (the DiT refiner then runs with an empty prompt): {florence_reason}")
        return "", "none"
    model_dir = Path(cfg.model.checkpoint_dir) / FLORENCE_DIR
    try:
        return caption_frame(frames[len(frames) // 2].numpy(), model_dir, device), "florence-2"
    except CaptionError as err:
        _say(f"no caption: {err}; pass --prompt TEXT")
        return "", "none"


def _make_scene(cfg, path: Path, info: VideoInfo, video_hash: str, plan: DepthPlan, prompt: str | None,
                florence_reason: str | None, progress: bool, device: str) -> Scene:
    from tqdm import tqdm
    with tqdm(total=3, desc=f"build {path.name}", unit="step", file=sys.stderr, disable=not progress) as bar:
        bar.set_postfix_str("decode")
        frames, fps = _decode(path, cfg.scenes.width, cfg.scenes.height, cfg.scenes.fit)
        n = len(frames)
        if n > REFERENCE_MAX_FRAMES:
            _say(f"{path}: {n} frames, more than the reference's {REFERENCE_MAX_FRAMES}; all are kept and "
                 f"depth runs in chunks of at most {cfg.scenes.depth.chunk_frames}")
        bar.update()
        bar.set_postfix_str("depth")
        req = DepthRequest(path, frames, fps, (info.width, info.height), cfg.scenes.depth, cfg.scenes.fit)
        result = run_depth(plan, req, cfg.scenes.sample, device, progress)
        _say(f"depth: {result.provider} ({result.notes['reason']})")
        bar.update()
        bar.set_postfix_str("caption")
        caption, caption_source = _caption(cfg, frames, prompt, florence_reason, device)
        bar.update()
    meta = {"source": str(path), "source_hash": video_hash, "source_size": [info.width, info.height],
            "source_fps": info.fps, "fit": cfg.scenes.fit,
            "depth_provider": result.provider, "depth_notes": result.notes, "caption_source": caption_source,
            "depth_trust": float(result.notes.get("trust", 1.0))}
    if result.notes.get("up") is not None:                # gravity-up in the scene frame, where known
        meta["up"] = result.notes["up"]
    return for_storage(Scene(frames=frames, depth=result.depth, K=result.K, c2w=result.c2w, fps=fps, caption=caption,
                             meta=meta), cfg.scenes.storage)


def build_scene_at(cfg, video_path, *, device, depth: str = "auto", depth_file=None, prompt: str | None = None,
                   progress: bool = True) -> tuple[Scene, Path]:
    """Build (or load from the cache) the Scene of `video_path`, running the depth and caption models
    on `device`. -> (Scene, its cache folder)
    Raises SceneInputError subclasses (VideoError, DepthError, SceneError) with one-line messages."""
    path = Path(video_path)
    info = probe_video(path)
    check_memory(info, cfg.scenes.width, cfg.scenes.height)
    plan = plan_depth(depth, path, depth_file, Path(cfg.model.checkpoint_dir) / "DA3")
    florence_reason = florence_missing(Path(cfg.model.checkpoint_dir) / FLORENCE_DIR) if prompt is None else None
    video_hash = file_content_hash(path)
    key = scene_cache_key(video_hash, build_settings(cfg, plan, prompt, florence_reason))
    fit = FrameFit(cfg.scenes.fit, (info.width, info.height), (cfg.scenes.width, cfg.scenes.height))
    if fit.shape_change > SHAPE_NOTICE:
        _say(f"fit: {fit.describe()}")
    cache = SceneCache(cfg.scenes.cache_dir, cfg.scenes.storage)
    folder = cache.path(key)
    cached = (folder / SIDECAR_FILE).is_file()
    scene = cache.get_or_build(key, lambda: _make_scene(cfg, path, info, video_hash, plan, prompt, florence_reason,
                                                         progress, str(device)))
    if cached:
        _say(f"depth: {scene.meta.get('depth_provider')} ({scene.meta.get('depth_notes', {}).get('reason')}), cached")
    _say(f"scene of {path} ({scene.num_frames} frames, {scene.width}x{scene.height}) "
         f"{'loaded from' if cached else 'written to'} {folder}")
    return scene, folder


def build_scene(cfg, video_path, *, device, depth: str = "auto", depth_file=None, prompt: str | None = None,
                progress: bool = True) -> Scene:
    """The Scene of `video_path` (see build_scene_at)."""
    return build_scene_at(cfg, video_path, device=device, depth=depth, depth_file=depth_file, prompt=prompt,
                          progress=progress)[0]
