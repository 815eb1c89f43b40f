"""How exact the display's warp is on the sample scene, whose true views are known: a frame made for
one camera (the sample's exact render there, standing in for a perfect generated frame, with the
depth the worker gives it: the point-cloud render's z-buffer at that camera, holes filled) is
warped to where the camera is 0.25 s and 0.5 s of walking or turning later (the rig driven by held
input at 60 Hz), and compared with the exact render from there: PSNR on the pixels the warp covers
and the share it covers; then the whole displayed frame (the live source frame and the fill frame
under the warp, push-pull in the rest) over all pixels; and, for comparison, the frame shown
unwarped, as the presenter without reprojection shows it.

    python3 -m benchmarks.reprojection_accuracy [--frames 20 60 100] [--render-scale 1] [--json OUT.json]

--render-scale draws the world view at that share of the size and scales it up (`runtime.render_scale`):
what it costs the picture.
"""
from __future__ import annotations

import argparse
import json
import math

import moderngl
import numpy as np
import torch

from controllers.commands import CameraCommand
from runtime.config import load_config
from runtime.depth_warp import LayerStack
from runtime.rig import CameraRig
from runtime.scene_layers import FILL, GENERATED, LIVE, SceneLayers
from runtime.session import scene_scale
from runtime.world_view import WorldView
from runtime.worker import SceneTensors
from scenes.sample import SampleRenderer, load_sample_scene

MOTIONS = {                          # held input, as the keyboard gives it
    "walk forward": CameraCommand(move=(0.0, 0.0, 1.0)),
    "strafe right": CameraCommand(move=(1.0, 0.0, 0.0)),
    "turn right": CameraCommand(look=(1.0, 0.0)),
    "walk + turn": CameraCommand(move=(0.0, 0.0, 1.0), look=(1.0, 0.0)),
}


def later_pose(cfg, scale: float, start: np.ndarray, cmd: CameraCommand, seconds: float, tick_hz: float) -> np.ndarray:
    """Where the rig (walk mode, no collision) is after holding `cmd` for `seconds`, from `start`."""
    rig = CameraRig(cfg.runtime.rig, scene_scale=scale, anchor_c2w=start, eye_y=0.0)
    for _ in range(round(seconds * tick_hz)):
        rig.step(cmd, 1.0 / tick_hz)
    return rig.c2w()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    err = a.astype(np.float64) - b.astype(np.float64)
    return 10 * math.log10(255.0 ** 2 / max(float(np.mean(err ** 2)), 1e-9))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, nargs="+", default=[20, 60, 100], help="sample frames made for")
    p.add_argument("--render-scale", type=float, default=1.0, help="runtime.render_scale of the world view")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args(argv)
    cfg = load_config()
    scene = load_sample_scene(cfg.scenes)
    scale, tick_hz = scene_scale(scene), cfg.runtime.loop.tick_hz
    tensors = SceneTensors(scene, torch.device("cpu"))
    K = scene.K.double().numpy()
    size = (scene.width, scene.height)
    cases = []                                   # (frame, motion, seconds, made-for pose, later pose)
    for i in args.frames:
        start = scene.c2w[i].double().numpy()
        for name, cmd in MOTIONS.items():
            for seconds in (0.25, 0.5):
                cases.append((i, name, seconds, start, later_pose(cfg, scale, start, cmd, seconds, tick_hz)))
    with SampleRenderer(*size, cfg.scenes.sample.seed) as renderer:
        made = {i: renderer.render(start, i / scene.fps, K[i])[0] for i, _, _, start, _ in cases}
        truth = [renderer.render(later, i / scene.fps, K[i])[0] for i, _, _, _, later in cases]
    ctx = moderngl.create_standalone_context(backend="egl", require=430)
    view, stack = WorldView(ctx, size, render_scale=args.render_scale), LayerStack(ctx, size, 3)
    dw, dh = view.drawn_size
    rows_at = (np.arange(size[1]) * dh // size[1])[:, None]             # display pixel -> drawn pixel (nearest)
    cols_at = (np.arange(size[0]) * dw // size[0])[None, :]
    layers = SceneLayers(stack, scene.frames.numpy(), scene.depth.numpy(), K, scene.c2w.double().numpy(), scale)
    rows = []
    for (i, name, seconds, start, later), true in zip(cases, truth):
        depth = tensors.target_depth((i,), start[None])[0].numpy()
        layers.show_source(i)
        layers.show_generated(made[i], depth, K[i], start)
        view.render(stack, [(GENERATED, 1)], K[i], later)
        warped = view.read()
        covered = (np.frombuffer(view.layers.read(), np.float16).reshape(dh, dw, 4)[..., 3] > 0)[rows_at, cols_at]
        layers.fill_for(later)
        view.render(stack, [(GENERATED, 1), (LIVE, 1), (FILL, 2)], K[i], later)
        rows.append({"frame": i, "motion": name, "seconds": seconds,
                     "moved": float(np.linalg.norm(later[:3, 3] - start[:3, 3])),
                     "turned_deg": float(np.degrees(np.arccos(np.clip((np.trace(start[:3, :3].T @ later[:3, :3]) - 1) / 2, -1, 1)))),
                     "covered": float(covered.mean()), "psnr_covered": psnr(warped[covered], true[covered]),
                     "psnr_displayed": psnr(view.read(), true), "psnr_unwarped": psnr(made[i], true)})
    ctx.release()
    print(f"sample scene {size[0]}x{size[1]} drawn at {dw}x{dh}, scene scale {scale:.2f}, walk {cfg.runtime.rig.walk_speed} scales/s, "
          f"turn {cfg.runtime.rig.look_speed_deg_s} deg/s")
    print(f"{'motion':14s} {'s':>5s} {'moved':>6s} {'turned':>7s} {'covered':>8s} {'PSNR covered':>13s} {'PSNR shown':>11s} "
          f"{'unwarped':>9s}")
    for name in MOTIONS:
        for seconds in (0.25, 0.5):
            sel = [r for r in rows if r["motion"] == name and r["seconds"] == seconds]
            mean = {k: float(np.mean([r[k] for r in sel]))
                    for k in ("moved", "turned_deg", "covered", "psnr_covered", "psnr_displayed", "psnr_unwarped")}
            print(f"{name:14s} {seconds:5.2f} {mean['moved']:6.2f} {mean['turned_deg']:6.1f}° {mean['covered']:8.3f} "
                  f"{mean['psnr_covered']:10.2f} dB {mean['psnr_displayed']:8.2f} dB {mean['psnr_unwarped']:6.2f} dB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
