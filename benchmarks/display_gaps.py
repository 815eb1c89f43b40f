"""Where late displayed frames come from: a real-time headless `play` (or `bench --play`) in this
process, with the display thread's calls and the generation worker's timed; for every displayed
interval longer than 1.5 periods, which call took the largest share of it and which worker stage
ran when it began, then each call's time per frame.

    python3 -m benchmarks.display_gaps [--seconds 30] [--out DIR] [--random-dit] [play options ...]

Timing wraps the methods themselves (nothing is replaced), so the session is the user's own.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import runpy
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUTER = ("Session._iterate", "Session._show", "Display.show", "Display._draw")   # calls that hold the others
TIMED = {"runtime.session:Session": ("_iterate", "_tick", "_collect", "_plan", "_take_content", "_show", "_pose_at"),
         "runtime.display:Display": ("show", "_draw"),
         "runtime.present:HeadlessPresenter": ("present_texture",),
         "runtime.scene_layers:SceneLayers": ("show_source", "show_generated", "fill_for"),
         "runtime.depth_warp:LayerStack": ("upload",),
         "runtime.world_view:WorldView": ("render",),
         "runtime.timing:RealTime": ("rest",)}


class CallLog:
    """(name, start, end) of the wrapped calls, per thread kind: the display's (main) thread, the worker's."""

    def __init__(self):
        self.main, self.worker = [], []
        self._main_thread = threading.main_thread()

    def time_calls(self, cls, names, on_worker: bool = False) -> None:
        for name in names:
            inner, label = getattr(cls, name), f"{cls.__name__}.{name}"
            setattr(cls, name, self._timed(inner, label, on_worker))

    def _timed(self, inner, label: str, on_worker: bool):
        def timed(*args, **kwargs):
            if (threading.current_thread() is self._main_thread) == on_worker:
                return inner(*args, **kwargs)
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                (self.worker if on_worker else self.main).append((label, start, time.perf_counter()))
        return timed


def install(log: CallLog) -> None:
    import importlib
    for where, names in TIMED.items():
        module, cls = where.split(":")
        log.time_calls(getattr(importlib.import_module(module), cls), names)
    from runtime.worker import GenerationWorker
    log.time_calls(GenerationWorker, ("run_hint", "run_block"), on_worker=True)


def stage_spans(blocks: dict) -> list[tuple[float, float, str]]:
    """(start, end, stage) of each worker stage of each block in telemetry's blocks_s (the span after
    the last stage, until the frame is presented, is the jitter buffer's, not the worker's)."""
    spans = []
    for marks in blocks.values():
        stamps = sorted((t, stage) for stage, t in marks.items() if stage not in ("tick", "frames"))
        spans += [(a, b, stage) for (a, _), (b, stage) in zip(stamps, stamps[1:]) if stage != "present"]
    return spans


def report(log: CallLog, telemetry: dict) -> list[str]:
    """The analysis as lines of text."""
    hz = telemetry["display_hz"]
    shown = np.array(sorted(end for name, _, end in log.main if name == "HeadlessPresenter.present_texture"))
    displayed = np.array([t for t, _ in telemetry["displayed_s_and_pose_tick"]])
    intervals = np.diff(shown) * hz
    late = np.nonzero(intervals > 1.5)[0]
    lines = [f"{len(intervals)} displayed intervals, {len(late)} longer than 1.5 periods "
             f"(p50 {np.median(intervals):.2f}, p99 {np.percentile(intervals, 99):.2f}, max {intervals.max():.2f} periods)"]
    largest, stage_at = collections.Counter(), collections.Counter()
    for i in late:
        a, b = shown[i], shown[i + 1]
        inside = collections.Counter()
        for name, start, end in log.main:
            if end > a and start < b:
                inside[name] += min(end, b) - max(start, a)
        leaves = {k: v for k, v in inside.items() if k not in OUTER}
        leaves["(between iterations)"] = (b - a) - inside.get("Session._iterate", 0.0)
        largest[max(leaves, key=leaves.get)] += 1
        busy = [name for name, start, end in log.worker if end > a and start < b]
        stage_at[busy[0] if busy else "worker waiting"] += 1
    lines.append("largest share of each long interval: " + ", ".join(f"{k} {v}" for k, v in largest.most_common()))
    lines.append("worker during them: " + ", ".join(f"{k} {v}" for k, v in stage_at.most_common()))
    if len(displayed) == len(shown):          # the worker's GPU stages, on the display's clock
        t0 = float(np.median(shown - displayed))
        stages = [(t0 + a, t0 + b, stage) for a, b, stage in stage_spans(telemetry["blocks_s"])]
        at = collections.Counter(next((k for a, b, k in stages if a <= shown[i] < b), "no stage") for i in late)
        lines.append("worker stage when they began: " + ", ".join(f"{k} {v}" for k, v in at.most_common()))
    per = collections.defaultdict(list)
    for name, start, end in log.main + log.worker:
        per[name].append((end - start) * 1000)
    for name, ms in sorted(per.items(), key=lambda kv: -sum(kv[1])):
        ms = np.array(ms)
        lines.append(f"  {name:36s} n {len(ms):6d}  mean {ms.mean():7.2f}  p99 {np.percentile(ms, 99):7.2f}  "
                     f"max {ms.max():7.2f} ms")
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="length of the session")
    p.add_argument("--out", default="out/display_gaps", help="the session's output folder")
    p.add_argument("--random-dit", action="store_true", help="the DiT with random weights (main.py bench --play)")
    args, play_args = p.parse_known_args(argv)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    sys.path.insert(0, str(REPO))
    log = CallLog()
    install(log)
    command = ["bench", "--play"] if args.random_dit else ["play"]
    sys.argv = [str(REPO / "main.py"), *command, "--headless", "--realtime", "--seconds", str(args.seconds),
                "--out", args.out, *[a for a in play_args if a != "--"]]

    def print_report() -> None:
        path = Path(args.out) / "telemetry.json"
        if path.is_file():
            print("\n".join(report(log, json.loads(path.read_text()))), flush=True)

    end_process = os._exit           # play ends with os._exit while its worker is inside a torch op:
    os._exit = lambda code: (print_report(), end_process(code))      # the report comes first
    try:
        runpy.run_path(str(REPO / "main.py"), run_name="__main__")   # the program as a user runs it
    except SystemExit as done:
        print_report()
        if done.code:
            raise


if __name__ == "__main__":
    main()
