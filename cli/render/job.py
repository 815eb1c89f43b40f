"""One video of `main.py render`: scene, frame program, engine run, outputs, record.

The prediction goes through the engine exactly as `play` does, on the clock that waits for every
frame: Session(frame_locked=True, script=ScriptedPath(target poses, source indices)) with a
presenter that writes the prediction video. The worker's scene is swapped for ReferenceRender (the
reference renderer's rules), which also taps the source, render and mask of every block.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from controllers.scripted import ScriptedPath
from cli.render.outputs import ConditioningWriters, PredictionPresenter, ReferenceRender, save_tensor_atomic
from cli.render.plan import (FrameSettings, RenderPlan, block_script_length, check_dit_length, plan_frames,
                                 pred_frames, script_indices)
from runtime.session import Session
from runtime.worker import SceneTensors
from scenes.trajectory import TrajectoryKeys

TRAILING_CHUNK = 12          # frames rendered per call for the conditioning frames past the prediction


@dataclass(frozen=True)
class RenderJob:
    """The settings shared by every video of one render command."""
    keys: TrajectoryKeys
    frames: FrameSettings
    backend: str                     # warper | ply | gpu
    depth: str                       # build --depth provider
    out_dir: Path                    # <output_folder>/<method>/<checkpoint>/version_0
    skip_step3: bool = False
    progress: bool = True
    make_refiner: object = field(default=None, compare=False)   # (cfg, device, scene) -> Refiner


def output_paths(out_dir: Path, g: int, rank: int) -> dict[str, Path]:
    """The reference's names (pred, source, render, extrinsics) plus roam's mask video and record."""
    return {"pred": out_dir / f"{g}-pred_video_rank{rank}.mp4",
            "source": out_dir / f"{g}-source_video_rank{rank}.mp4",
            "render": out_dir / f"{g}-render_video_rank{rank}.mp4",
            "mask": out_dir / f"{g}-mask_video_rank{rank}.mp4",
            "extrinsics": out_dir / f"extrinsics_{g}.pt",
            "record": out_dir / f"{g}-run_rank{rank}.json"}


def make_script(plan: RenderPlan, refiner) -> ScriptedPath:
    """The poses and source indices the engine presents: all T frames for the geometry refiner; for
    the DiT the frames of the reference's L' latents (its first block 9 or 12 frames, then 12)."""
    T = plan.frames
    length = T
    if refiner.name == "dit":
        check_dit_length(plan.chain)
        length = block_script_length(plan.chain, refiner.frames_for_block(True), refiner.frames_for_block(False))
    pos = script_indices(T, length)                                            # [length]
    return ScriptedPath(plan.target_c2w[pos].double().numpy(), np.asarray(plan.source_index)[pos])


def render_video(cfg, job: RenderJob, scene, plan: RenderPlan, paths: dict[str, Path], device: torch.device,
                 rank: int) -> dict:
    """Run the engine over the plan and write pred/source/render/mask/extrinsics. -> facts for the record"""
    t0 = time.perf_counter()
    refiner = job.make_refiner(cfg, device, scene)
    script = make_script(plan, refiner)
    expected = pred_frames(plan.chain, refiner.name)
    t_load = time.perf_counter() - t0
    bar = _bar(job, expected, f"render {Path(scene.meta.get('source', '')).name}", rank)
    presenter = PredictionPresenter(paths["pred"], scene.width, scene.height, bar)
    try:
        writers = ConditioningWriters({k: paths[k] for k in ("source", "render", "mask")}, scene.width,
                                      scene.height, plan.frames)
    except BaseException:
        presenter.abort()
        raise
    try:
        reference = ReferenceRender(SceneTensors(scene, device), job.backend, tap=writers)
        if job.backend == "warper":
            reference.set_video(plan.native_source, plan.native_c2w)
        session = Session(cfg, scene, refiner, presenter, device=device, script=script, frame_locked=True,
                          max_frames=expected, scene_tensors=reference)
        t1 = time.perf_counter()
        summary = session.run()
        t_engine = time.perf_counter() - t1
        _render_trailing(reference, plan, writers)
        if presenter.frames_presented != expected:
            raise RuntimeError(f"the engine presented {presenter.frames_presented} frames, expected {expected}")
        presenter.finish()
        writers.finish()
        save_tensor_atomic(paths["extrinsics"], plan.extrinsics)
    except BaseException:
        presenter.abort()
        writers.abort()
        raise
    return {"refiner": refiner.name, "pred_frames": expected, "script_frames": len(script),
            "timings_s": {"refiner_load": t_load, "engine": t_engine, "total": time.perf_counter() - t0},
            "engine": {k: summary.get(k) for k in ("frames_presented", "achieved_fps", "dropped_requests")}}


def _render_trailing(reference: ReferenceRender, plan: RenderPlan, writers: ConditioningWriters) -> None:
    """Source/render/mask frames past the prediction (the DiT drops the trailing T - (4L' - 3))."""
    for start in range(writers.written, plan.frames, TRAILING_CHUNK):
        stop = min(start + TRAILING_CHUNK, plan.frames)
        reference.render(plan.source_index[start:stop], plan.target_c2w[start:stop].double().numpy())


def _bar(job: RenderJob, total: int, desc: str, rank: int):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False, position=rank + 1,
                disable=not job.progress)


def process_video(cfg, job: RenderJob, video: Path, g: int, rank: int, prompt: str | None,
                  device: torch.device) -> dict:
    """Build the scene, plan, render and write one video. -> the record's result part (raises on failure)."""
    from scenes.build import build_scene
    paths = output_paths(job.out_dir, g, rank)
    t0 = time.perf_counter()
    scene = build_scene(cfg, video, device=device, depth=job.depth, prompt=prompt, progress=job.progress)
    timings = {"scene": time.perf_counter() - t0}
    result = {"caption": scene.caption, "caption_source": scene.meta.get("caption_source"),
              "depth_provider": scene.meta.get("depth_provider"), "source_frames": scene.num_frames,
              "source_fps": scene.fps, "size": [scene.width, scene.height]}
    if job.skip_step3:
        return {**result, "refiner": None, "outputs": {}, "timings_s": timings,
                "note": "--skip_step3: caption and scene only"}
    t1 = time.perf_counter()
    plan = plan_frames(job.keys, scene.c2w, scene.depth, job.frames)
    timings["plan"] = time.perf_counter() - t1
    facts = render_video(cfg, job, scene, plan, paths, device, rank)
    timings.update(facts.pop("timings_s"))
    counts = {"source_frames_used": plan.n_source, "native_render_frames": plan.native_frames,
              "T": plan.frames, "latents": plan.chain.latents, "latents_used": plan.chain.latents_used,
              "pred_frames": facts["pred_frames"], "reference_dit_pred_frames": plan.chain.pred_frames}
    note = None if facts["refiner"] == "dit" else (
        f"geometry refiner: the prediction has all T = {plan.frames} frames (the DiT would give "
        f"4L' - 3 = {plan.chain.pred_frames})")
    return {**result, **facts, "frames": counts, "freeze_frame": plan.freeze_frame, "radius": plan.radius,
            "adaptive_index": plan.adaptive_index, "note": note, "timings_s": timings,
            "outputs": {k: p.name for k, p in paths.items() if k != "record"}}
