"""Telemetry: per-block stage timestamps, per-frame present times, control-to-photon latency.

Every number is measured, never guessed (DESIGN.md "Latency"). Stages of one block, in order
(each a monotonic timestamp in seconds; a refiner without a stage simply never marks it):

    input    the rig and clock state the block's poses and source indices came from was sampled
    request  the BlockRequest was queued
    start    the generation worker picked it up
    render   point-cloud render done         encode   render/mask/source encode done
    dit      DiT block done                  decode   decode done
    present  the block's first frame was shown (marked by `present`)

Control-to-photon: from the tick where the camera command changed to the first presented frame
of the first block whose input was sampled at or after that tick. Thread-safe: the worker marks
stages while the presenter records presents.
"""
from __future__ import annotations

import bisect
import datetime
import gc
import json
import os
import platform
import shlex
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

import numpy as np

from controllers.commands import CameraCommand
from scenes.atomic import write_atomic

STAGES = ("input", "request", "start", "render", "encode", "dit", "decode", "present")


def _percentiles(values) -> dict:
    if len(values) == 0:
        return {"n": 0}
    ms = np.asarray(values, dtype=np.float64) * 1000.0
    return {"n": int(ms.size), "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "max": float(ms.max())}


class Telemetry:
    def __init__(self, fps: float | None = None, now: Callable[[], float] = time.perf_counter,
                 history_frames: int = 20000):
        """history_frames: how many recent frames (and their blocks and control events) are kept,
        so a kiosk running for days keeps a bounded record."""
        self.fps, self._now = fps, now
        self._max_blocks = max(1, history_frames // 9)
        self.t0 = now()
        self._lock = threading.Lock()
        self._blocks: dict[int, dict] = {}          # block -> {"tick": int | None, stage: t, ...}
        self._presents: deque[tuple[float, int]] = deque(maxlen=history_frames)   # (t, block) per frame
        self._changes: deque[tuple[int, float]] = deque(maxlen=history_frames)    # (tick, t) of camera changes
        self._last_cam: CameraCommand | None = None

    def mark(self, block: int, stage: str, t: float | None = None, *, tick: int | None = None) -> None:
        """Record that `stage` of `block` happened at `t` (default now). For "input", pass the
        tick whose state the block was planned from."""
        if stage not in STAGES:
            raise ValueError(f"telemetry: unknown stage {stage!r}; expected one of {STAGES}")
        t = self._now() if t is None else t
        with self._lock:
            rec = self._blocks.setdefault(block, {"tick": None})
            if len(self._blocks) > self._max_blocks:
                self._blocks.pop(next(iter(self._blocks)))          # the oldest block
            rec.setdefault(stage, t)                # the first mark wins (present: the first frame)
            if tick is not None:
                rec["tick"] = tick

    def present(self, block: int, t: float | None = None) -> None:
        """One frame of `block` was shown; the block's first frame also marks its "present" stage."""
        t = self._now() if t is None else t
        self.mark(block, "present", t)
        with self._lock:
            self._presents.append((t, block))

    def camera_changed(self, tick: int, t: float | None = None) -> None:
        with self._lock:
            self._changes.append((tick, self._now() if t is None else t))

    def camera_command(self, tick: int, cmd: CameraCommand, t: float | None = None) -> None:
        """Feed every tick's camera command; a change from the previous tick (or any mouse
        motion, mode switch or reset) is recorded as a control event."""
        held = CameraCommand(move=cmd.move, look=cmd.look, run=cmd.run)
        edge = cmd.look_delta_deg != (0.0, 0.0) or cmd.cycle_mode or cmd.mode is not None or cmd.reset
        if edge or (self._last_cam is not None and held != self._last_cam):
            self.camera_changed(tick, t)
        self._last_cam = held

    # ---- derived numbers -------------------------------------------------------------------
    def control_to_photon(self) -> list[float]:
        """Seconds from each control event to the first frame that was generated with it."""
        with self._lock:
            shown = sorted((rec["tick"], rec["present"]) for rec in self._blocks.values()
                           if rec["tick"] is not None and "present" in rec)
            changes = list(self._changes)
        ticks = [tick for tick, _ in shown]
        first_after = np.minimum.accumulate([p for _, p in shown][::-1])[::-1] if shown else []  # suffix min
        out = []
        for tick, t in changes:
            i = bisect.bisect_left(ticks, tick)         # blocks planned at or after the change
            if i < len(shown):
                out.append(float(first_after[i]) - t)
        return out

    def stage_durations(self) -> dict[str, list[float]]:
        """Per stage, the seconds since the previous stage that the block marked."""
        out: dict[str, list[float]] = {s: [] for s in STAGES[1:]}
        out["total"] = []
        with self._lock:
            blocks = [dict(rec) for rec in self._blocks.values()]
        for rec in blocks:
            marked = [(s, rec[s]) for s in STAGES if s in rec]
            for (_, a), (stage, b) in zip(marked, marked[1:]):
                out[stage].append(b - a)
            if "input" in rec and "present" in rec:
                out["total"].append(rec["present"] - rec["input"])
        return out

    def summary(self) -> dict:
        with self._lock:
            times = np.array([t for t, _ in self._presents], dtype=np.float64)
            n_blocks = len(self._blocks)
        intervals = np.diff(times)
        out = {"blocks": n_blocks, "frames_presented": int(times.size),
               "fps": float((times.size - 1) / (times[-1] - times[0])) if times.size > 1 and times[-1] > times[0] else None,
               "frame_interval_ms": _percentiles(intervals),
               "jitter_ms": float(intervals.std() * 1000.0) if intervals.size else None,
               "control_to_photon_ms": _percentiles(self.control_to_photon()),
               "stages_ms": {k: _percentiles(v) for k, v in self.stage_durations().items()}}
        if self.fps and intervals.size:
            out["late_frames"] = int((intervals > 1.5 / self.fps).sum())   # shown more than half a period late
        return out

    def to_dict(self) -> dict:
        with self._lock:
            blocks = {str(b): {k: (v - self.t0 if k in STAGES else v) for k, v in rec.items()}
                      for b, rec in sorted(self._blocks.items())}
            presents = [round(t - self.t0, 6) for t, _ in self._presents]
        return {"summary": self.summary(), "fps_target": self.fps, "blocks_s": blocks, "present_times_s": presents}

    def write_json(self, path: Path | str, **extra) -> None:
        """Write everything (times relative to the start) and `extra` (e.g. `run=run_record(...)`) to
        `path`, via a temporary name."""
        write_atomic(path, json.dumps({**extra, **self.to_dict()}, indent=1).encode())


def run_record(command: list[str], device) -> dict:
    """What ran, where and when: kept with a run's results, so a table made from them
    (docs/performance.md, benchmarks/perf_report.py) can cite the command, the device and the date.
    command: the argument list after the interpreter, e.g. ["main.py", "bench", "--blocks", "12"]."""
    import torch
    return {"command": "python3 " + shlex.join(command), "device": device_label(device),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "torch": torch.__version__, "load_avg_1min": round(os.getloadavg()[0], 2)}


def device_label(device) -> str:
    """The GPU's name, or the CPU's with its core count."""
    import torch
    if getattr(device, "type", device) == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


class GcPauses:
    """Times Python's cyclic garbage collections while active (`with GcPauses() as pauses:`). A
    collection stops every Python thread, the presenter's loop included; a full one over the many
    objects torch.compile leaves behind could take tens of ms."""

    def __init__(self):
        self.pauses: list[tuple[int, float]] = []    # (generation, seconds)
        self._t0: float | None = None

    def __enter__(self) -> "GcPauses":
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        elif self._t0 is not None:
            self.pauses.append((info["generation"], time.perf_counter() - self._t0))
            self._t0 = None

    def summary(self) -> dict:
        return {"collections": len(self.pauses), "full": sum(gen == 2 for gen, _ in self.pauses),
                "max_ms": 1000 * max((s for _, s in self.pauses), default=0.0),
                "total_ms": 1000 * sum(s for _, s in self.pauses)}
