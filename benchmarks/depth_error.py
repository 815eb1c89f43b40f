"""Depth error of the weight-free `estimate` provider on the built-in sample scene, against its exact depth.

    python -m benchmarks.depth_error [--width 832 --height 480 --frames 120]

Renders the sample, writes it as an H.264 MP4, builds Scenes from that video with --depth estimate
and --depth auto (which must recognise the sample and return its exact depth), and prints one JSON
line: AbsRel, RMSE (metres) and delta1 of each against the exact depth, plus the timings. CPU only.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from runtime.config import load_config
from scenes.build import build_scene
from scenes.depth.base import depth_errors
from scenes.sample import build_sample_scene
from scenes.video import VideoWriter


def measure(width: int, height: int, frames: int) -> dict:
    base = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        sample_cfg = dataclasses.replace(base.scenes.sample, frames=frames)
        cfg = dataclasses.replace(base, scenes=dataclasses.replace(
            base.scenes, width=width, height=height, sample=sample_cfg, cache_dir=str(Path(tmp) / "cache")))
        truth = build_sample_scene(sample_cfg, width, height)
        video = Path(tmp) / "sample.mp4"
        with VideoWriter(video, fps=sample_cfg.fps, width=width, height=height) as writer:
            writer.write_frames(truth.frames)
        out = {"size": [width, height], "frames": frames}
        for mode in ("estimate", "auto"):
            t0 = time.perf_counter()
            scene = build_scene(cfg, video, device="cpu", depth=mode, prompt="", progress=False)
            out[mode] = {"provider": scene.meta["depth_provider"], **depth_errors(scene.depth, truth.depth),
                         "build_s": round(time.perf_counter() - t0, 2)}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.width, args.height, args.frames)))


if __name__ == "__main__":
    main()
