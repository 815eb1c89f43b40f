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
of the first block whose input was sampled at or after that tick. When the display draws the world
from the camera pose at present time (runtime/display.py), control-to-photon is measured per
displayed frame instead: from the change to the first displayed frame whose pose includes it; the
block figure is then the content latency. Thread-safe: the worker marks stages while the presenter
records presents.
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
                 history_frames: int = 20000, display_hz: float | None = None):
        """history_frames: how many recent frames (and their blocks and control events) are kept,
        so a kiosk running for days keeps a bounded record. display_hz: the display's rate when
        displayed frames are recorded (`displayed`)."""
        self.fps, self.display_hz, self._now = fps, display_hz, now
        self._displays: deque[tuple[float, int]] = deque(maxlen=history_frames)  # (t, pose tick) per displayed frame
        self._max_blocks = max(1, history_frames // 9)
        self.t0 = now()
        self._lock = threading.Lock()
        self._blocks: dict[int, dict] = {}          # block -> {"tick": int | None, stage: t, ...}
        self._presents: deque[tuple[float, int]] = deque(maxlen=history_frames)   # (t, block) per frame
        self._changes: deque[tuple[int, float]] = deque(maxlen=history_frames)    # (tick, t) of camera changes
        self._seen: deque[float] = deque(maxlen=history_frames)                   # per frame: share the render covered
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

    def present(self, block: int, t: float | None = None, seen: float | None = None) -> None:
        """One frame of `block` was shown; the block's first frame also marks its "present" stage.
        seen: the share of the frame's pixels the point-cloud render covered, if known."""
        t = self._now() if t is None else t
        self.mark(block, "present", t)
        with self._lock:
            self._presents.append((t, block))
            if seen is not None:
                self._seen.append(seen)

    def displayed(self, t: float, pose_tick: int, seen: float | None = None) -> None:
        """A displayed frame was presented at t; its camera pose came from the rig after `pose_tick`
        ticks (so it includes the commands of ticks < pose_tick). seen: the share of its pixels the
        source frames covered, if known."""
        with self._lock:
            self._displays.append((t, pose_tick))
            if seen is not None:
                self._seen.append(seen)

    def camera_changed(self, tick: int, t: float | None = None) -> None:
        with self._lock:
            self._changes.append((tick, self._now() if t is None else t))

    def camera_command(self, tick: int, cmd: CameraCommand, t: float | None = None) -> None:
        """Feed every tick's camera command; a change from the previous tick (held keys, sticks or
        an automatic walk's goal; or any mouse motion, mode switch or reset) is recorded as a control
        event."""
        held = CameraCommand(move=cmd.move, look=cmd.look, run=cmd.run, goal=cmd.goal)
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

    def display_control_to_photon(self) -> list[float]:
        """Seconds from each control event (tick k) to the first displayed frame whose pose includes it
        (pose tick > k)."""
        with self._lock:
            shown = list(self._displays)
            changes = list(self._changes)
        ticks = np.maximum.accumulate([tick for _, tick in shown]) if shown else []
        out = []
        for tick, t in changes:
            i = bisect.bisect_right(ticks, tick)
            if i < len(shown):
                out.append(shown[i][0] - t)
        return out

    def display_summary(self) -> dict:
        with self._lock:
            times = np.array([t for t, _ in self._displays], dtype=np.float64)
        intervals = np.diff(times)
        out = {"frames": int(times.size),
               "fps": float((times.size - 1) / (times[-1] - times[0])) if times.size > 1 and times[-1] > times[0] else None,
               "frame_interval_ms": _percentiles(intervals)}
        if self.display_hz and intervals.size:
            out["gaps"] = int((intervals > 1.5 / self.display_hz).sum())   # more than half a period late
            out["max_gap_periods"] = float(intervals.max() * self.display_hz)
        return out

    def stage_durations(self) -> dict[str, list[float]]:
        """Per stage, the seconds since the previous stage that the block marked; "make": from the
        block's start to its frames decoded (with reprojection, their depth too); "total": input to
        the first frame shown."""
        out: dict[str, list[float]] = {s: [] for s in STAGES[1:]}
        out["make"], out["total"] = [], []
        with self._lock:
            blocks = [dict(rec) for rec in self._blocks.values()]
        for rec in blocks:
            marked = [(s, rec[s]) for s in STAGES if s in rec]
            for (_, a), (stage, b) in zip(marked, marked[1:]):
                out[stage].append(b - a)
            if "start" in rec and "decode" in rec:
                out["make"].append(rec["decode"] - rec["start"])
            if "input" in rec and "present" in rec:
                out["total"].append(rec["present"] - rec["input"])
        return out

    def summary(self) -> dict:
        with self._lock:
            times = np.array([t for t, _ in self._presents], dtype=np.float64)
            seen = np.array(self._seen, dtype=np.float64)
            n_blocks = len(self._blocks)
        intervals = np.diff(times)
        out = {"blocks": n_blocks, "frames_presented": int(times.size),
               "fps": float((times.size - 1) / (times[-1] - times[0])) if times.size > 1 and times[-1] > times[0] else None,
               "frame_interval_ms": _percentiles(intervals),
               "jitter_ms": float(intervals.std() * 1000.0) if intervals.size else None,
               "control_to_photon_ms": _percentiles(self.control_to_photon()),
               "stages_ms": {k: _percentiles(v) for k, v in self.stage_durations().items()},
               "seen": {"n": int(seen.size), "mean": float(seen.mean()), "p5": float(np.percentile(seen, 5)),
                        "min": float(seen.min())} if seen.size else {"n": 0}}
        if self.fps and intervals.size:
            out["late_frames"] = int((intervals > 1.5 / self.fps).sum())   # shown more than half a period late
        if self._displays:                  # the camera reaches the screen through displayed frames
            out["content_latency_ms"] = out["control_to_photon_ms"]
            out["control_to_photon_ms"] = _percentiles(self.display_control_to_photon())
            out["display"] = self.display_summary()
        return out

    def to_dict(self) -> dict:
        with self._lock:
            blocks = {str(b): {k: (v - self.t0 if k in STAGES else v) for k, v in rec.items()}
                      for b, rec in sorted(self._blocks.items())}
            presents = [round(t - self.t0, 6) for t, _ in self._presents]
            displays = [[round(t - self.t0, 6), tick] for t, tick in self._displays]
        return {"summary": self.summary(), "fps_target": self.fps, "display_hz": self.display_hz, "blocks_s": blocks,
                "present_times_s": presents, "displayed_s_and_pose_tick": displays}

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
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def part_of_turn(turn: np.ndarray, w: float) -> np.ndarray:
    """The rotation by w times the angle of `turn` [3, 3] about its axis (Rodrigues), as slerp
    takes it. For turns below a half turn (poses a tick apart are)."""
    sin_axis = 0.5 * np.array([turn[2, 1] - turn[1, 2], turn[0, 2] - turn[2, 0], turn[1, 0] - turn[0, 1]])  # [3]
    sin = float(np.linalg.norm(sin_axis))
    if sin < 1e-12:
        return np.eye(3)
    angle = w * np.arctan2(sin, (np.trace(turn) - 1.0) / 2.0)
    x, y, z = sin_axis / sin
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])                  # [3, 3] axis cross
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


class PoseTrace:
    """What a displayed frame's camera missed: its pose against the rig's pose at the moment it was
    presented, interpolated between the rig's poses at the ticks around that moment (so a command
    that arrived after the pose was sampled and before the frame was shown counts as error).
    Feed every tick's pose (`tick`) and every displayed frame (`displayed`); errors are resolved
    once a tick at or after the frame's present time has been seen."""

    def __init__(self, keep_s: float = 2.0):
        self.keep_s = keep_s
        self._ticks: deque[tuple[float, np.ndarray]] = deque()        # (t, c2w [4, 4])
        self._pending: deque[tuple[float, np.ndarray]] = deque()
        self.translation: deque[float] = deque(maxlen=20000)          # scene units
        self.rotation_deg: deque[float] = deque(maxlen=20000)

    def tick(self, t: float, c2w: np.ndarray) -> None:
        self._ticks.append((t, np.asarray(c2w, np.float64).copy()))
        while self._pending and self._pending[0][0] <= t:
            self._resolve(*self._pending.popleft())
        while len(self._ticks) > 2 and self._ticks[1][0] < t - self.keep_s:
            self._ticks.popleft()

    def displayed(self, t: float, c2w: np.ndarray) -> None:
        self._pending.append((t, np.asarray(c2w, np.float64).copy()))

    def _resolve(self, t: float, shown: np.ndarray) -> None:
        i = bisect.bisect_left(self._ticks, t, key=lambda tick: tick[0])    # ticks[i]: the first at or after t
        if i == 0:
            return                                        # older than the kept trace
        (t0, a), (t1, b) = self._ticks[i - 1], self._ticks[i]
        w = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        position = (1 - w) * a[:3, 3] + w * b[:3, 3]
        rotation = a[:3, :3] @ part_of_turn(a[:3, :3].T @ b[:3, :3], w)        # [3, 3]
        self.translation.append(float(np.linalg.norm(shown[:3, 3] - position)))
        cos = (np.trace(rotation.T @ shown[:3, :3]) - 1.0) / 2.0
        self.rotation_deg.append(float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))))

    def summary(self) -> dict:
        t = np.asarray(self.translation)
        return {"translation": {"n": int(t.size), "p50": float(np.median(t)) if t.size else None,
                                "p95": float(np.percentile(t, 95)) if t.size else None,
                                "max": float(t.max()) if t.size else None},
                "rotation_deg": {"p50": float(np.median(self.rotation_deg)) if self.rotation_deg else None,
                                 "p95": float(np.percentile(self.rotation_deg, 95)) if self.rotation_deg else None,
                                 "max": float(max(self.rotation_deg)) if self.rotation_deg else None}}


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
