"""What the display's thread pays per call, on the sample scene: the pieces docs/performance.md quotes
for the display on a machine without a GPU.

    python3 -m benchmarks.display_costs [--repeats 20] [--set KEY=VALUE ...]

- a source frame's static mask, expanded and cleaned (scenes/dynamic_mask.expand_dynamic);
- the rig predicting a 12-frame block 0.7 s ahead while walking, with the collision probe, and while
  steering to a goal (the demo walk);
- the displayed-pose telemetry: a tick's pose and a displayed frame's, the frame's error against the
  rig's pose slerped between ticks (runtime/telemetry.PoseTrace);
- one displayed frame of the world view (OpenGL through EGL), at `runtime.render_scale`;
- a layer upload (a source frame's colour and inverse depth into the layer stack), and a displayed
  frame read back for the video (LateReader: each read handed over one frame later);
- the CPU time and file size x264 takes a frame at three presets `runtime.video_preset` may take
  (the sample's first 48 frames).
"""
from __future__ import annotations

import argparse
import io
import itertools
import os
import time
from pathlib import Path

import numpy as np
import torch


def per_call_ms(fn, repeats: int, finish=lambda: None) -> float:
    fn()                                           # warm: first-call costs are not the steady state
    finish()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    finish()
    return (time.perf_counter() - start) / repeats * 1000


def mask_ms(scene, cfg, repeats: int) -> float:
    from scenes.dynamic_mask import expand_dynamic
    s = cfg.scenes.fusion.analysis_stride
    raw = torch.rand(1, -(-scene.height // s), -(-scene.width // s), generator=torch.Generator().manual_seed(0)) < 0.1
    return per_call_ms(lambda: expand_dynamic(raw, scene.height, scene.width, s, cfg.scenes.fusion.dilate_px), repeats)


def prediction_ms(scene, cfg, repeats: int, cmd) -> float:
    """A block's 12-pose prediction with `cmd` (a CameraCommand) held."""
    from runtime.probe import DepthProbe
    from runtime.rig import CameraRig
    from runtime.session import scene_scale
    scale, source = scene_scale(scene), scene.c2w.double().numpy()
    probe = DepthProbe(scene, lambda: 10, body_radius=0.5 * cfg.runtime.rig.collision_margin * scale)
    rig = CameraRig(cfg.runtime.rig, scene_scale=scale, source_c2ws=source, probe=probe)
    rig.step(cmd, 1 / cfg.runtime.loop.tick_hz, source[10])
    block = source[10:22]
    return per_call_ms(lambda: rig.predict(len(block), 1 / cfg.runtime.loop.fps, block, start_s=0.7), repeats)


def pose_trace_ms(scene, repeats: int) -> float:
    """A tick and a displayed frame through the pose trace, the camera turning along the source path."""
    from runtime.telemetry import PoseTrace
    trace, poses, t = PoseTrace(), scene.c2w.double().numpy(), itertools.count()

    def tick_and_frame():
        i = next(t)
        trace.displayed((i + 0.5) / 60, poses[(i + 1) % len(poses)])
        trace.tick(i / 60, poses[i % len(poses)])
    return per_call_ms(tick_and_frame, repeats)


def world_view_ms(scene, repeats: int, out: Path, render_scale: float | str) -> tuple[float, float]:
    """(ms a displayed frame of the world view takes at runtime.render_scale, the scale it resolved to)."""
    from runtime.display import Display
    from runtime.present import HeadlessPresenter
    from runtime.session import scene_scale
    presenter = HeadlessPresenter(out, 60.0, scene.width, scene.height)
    display = Display(presenter, scene, scale=scene_scale(scene), render_scale=render_scale)
    c2w = scene.c2w[5].double().numpy().copy()

    def draw():                                     # a camera that moves every frame
        c2w[0, 3] += 0.001
        display._draw(c2w, 5, None)
    try:
        with display.ctx:
            return per_call_ms(draw, repeats, finish=display.ctx.finish), display.render_scale
    finally:
        display.release()
        presenter.close()


def upload_and_read_ms(scene, repeats: int, out: Path) -> tuple[float, float]:
    """(ms a LayerStack upload takes, ms a displayed frame's read-back takes on the display's thread)."""
    from runtime.display import Display
    from runtime.present import HeadlessPresenter, LateReader
    from runtime.session import scene_scale
    presenter = HeadlessPresenter(out, 60.0, scene.width, scene.height)
    display = Display(presenter, scene, scale=scene_scale(scene))
    frames, depth, K, c2w = scene.frames.numpy(), scene.depth.numpy(), display.K, scene.c2w.double().numpy()
    count = itertools.count()

    def upload():                                   # a new source frame each call
        i = next(count) % scene.num_frames
        display.layers.stack.upload(1, frames[i], depth[i], K[i], c2w[i])
    reader = LateReader(display.ctx)
    try:
        with display.ctx:
            upload_ms = per_call_ms(upload, repeats, finish=display.ctx.finish)
            read_ms = per_call_ms(lambda: reader.read(display.view.frame, lambda frame: None), repeats,
                                  finish=display.ctx.finish)
            reader.release()
        return upload_ms, read_ms
    finally:
        display.release()
        presenter.close()


def x264_cost(frames: np.ndarray, preset: str) -> tuple[float, float]:
    """(ms of CPU, KB) a frame that x264 takes at `preset` (CRF 18, its own threads included)."""
    import av
    buffer = io.BytesIO()
    container = av.open(buffer, "w", format="mp4")
    stream = container.add_stream("libx264", rate=60)
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    stream.options = {"crf": "18", "preset": preset}
    start = time.process_time()
    for frame in frames:
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode())
    container.close()
    return (time.process_time() - start) / len(frames) * 1000, len(buffer.getvalue()) / len(frames) / 1024


def main(argv=None) -> None:
    from runtime.config import add_config_args, config_from_args
    from scenes.sample import load_sample_scene
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=20, help="calls timed per figure")
    p.add_argument("--out", default="out/display_costs", help="folder for the throwaway headless video")
    add_config_args(p)
    args = p.parse_args(argv)
    cfg = config_from_args(args)
    scene = load_sample_scene(cfg.scenes)
    print(f"sample {scene.width}x{scene.height}, {torch.get_num_threads()} torch threads, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"static mask, expanded and cleaned: {mask_ms(scene, cfg, args.repeats):6.2f} ms")
    from controllers.commands import CameraCommand
    walk, steer = CameraCommand(move=(0.0, 0.0, 1.0)), CameraCommand(goal=(0.3, 0.0, 1.0, 20.0))
    print(f"rig prediction, 12 frames 0.7 s ahead: {prediction_ms(scene, cfg, args.repeats, walk):6.2f} ms")
    print(f"rig prediction steering to a goal (the demo walk): {prediction_ms(scene, cfg, args.repeats, steer):6.2f} ms")
    print(f"displayed-pose telemetry, a tick and a frame: {pose_trace_ms(scene, 100 * args.repeats):6.3f} ms")
    view_ms, render_scale = world_view_ms(scene, args.repeats, Path(args.out), cfg.runtime.render_scale)
    print(f"world view, one displayed frame: {view_ms:6.2f} ms at render scale {render_scale:g}")
    upload_ms, read_ms = upload_and_read_ms(scene, args.repeats, Path(args.out))
    print(f"layer upload, colour and inverse depth: {upload_ms:6.2f} ms")
    print(f"read-back of a displayed frame: {read_ms:6.2f} ms")
    frames = scene.frames[:48].numpy()
    for preset in ("ultrafast", "veryfast", "medium"):
        cpu_ms, kb = x264_cost(frames, preset)
        print(f"x264 {preset}: {cpu_ms:6.2f} ms of CPU a frame, {kb:.1f} KB a frame")


if __name__ == "__main__":
    main()
