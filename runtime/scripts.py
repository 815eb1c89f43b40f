"""Scripted drivers of a session: the demo walk (timed goals that the rig steers toward, so the
headless run goes through the same rig a person drives) and `--script` sources (trajectory files, camera-path JSON,
recorded runs) turned into a ScriptedPath of per-frame poses and source indices."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from controllers.commands import Commands
from controllers.scripted import ScriptedPath
from runtime.recorder import load_recorded_blocks, load_recorded_poses
from runtime.session import scene_scale
from runtime.walk_plan import plan_walk
from scenes.errors import SceneInputError
from scenes.trajectory import read_keys, read_pose_json, target_c2w

# The demo walk (runtime/walk_plan.py) repeats in longer sessions; each goal change is a control
# event. The period is no multiple of a block's 0.5 s, so over a session the events fall at every
# phase of the block schedule and the control-to-photon figures sample the whole range instead of
# one lucky or unlucky phase.
DEMO_PERIOD_S = 8.37


class TimedInputs:
    """Replays held commands by session time, repeating every `period_s`: `poll()` is called once
    per tick at `tick_hz`."""

    def __init__(self, segments, period_s: float, tick_hz: float):
        self.segments, self.period_s, self.tick_hz, self.tick = segments, period_s, tick_hz, 0

    def poll(self) -> Commands:
        fraction = (self.tick / self.tick_hz % self.period_s) / self.period_s
        self.tick += 1
        for start, end, camera in self.segments:
            if start <= fraction < end:
                return Commands(camera=camera)
        return Commands()


def demo_walk(scene, seconds: float, tick_hz: float, *, min_seen: float) -> TimedInputs:
    """The scene's automatic walk, one loop per DEMO_PERIOD_S (or per session, when shorter)."""
    plan = plan_walk(scene, scene_scale(scene), min_seen=min_seen)
    return TimedInputs(plan.segments, min(seconds, DEMO_PERIOD_S), tick_hz)


def load_script(path: str | Path, source_c2w: torch.Tensor, *, relative_to_source: bool = False,
                rotation_only: bool = False, frames: int | None = None) -> ScriptedPath:
    """A `--script` argument -> ScriptedPath. Accepts a recorded run folder (poses.json), a
    camera-path JSON (one 4x4 c2w per frame), or a 3-line trajectory file (reference format:
    one output frame per source frame, composed with the scene's source poses as the reference
    renderer does; `frames` resamples it to another length, cycling the source)."""
    path = Path(path)
    if path.is_dir():
        if (blocks := load_recorded_blocks(path)) is not None:       # the exact requests, restarts included
            c2w, indices, restarts = blocks
            return ScriptedPath(c2w, np.array(indices) % len(source_c2w), restarts=restarts)
        c2w, indices, _ = load_recorded_poses(path)
        return ScriptedPath(c2w, np.array(indices) % len(source_c2w))
    if not path.is_file():
        raise SceneInputError(f"--script {path}: no such file or folder; give a trajectory .txt, a camera-path "
                              ".json or a recorded run folder")
    if path.suffix.lower() == ".json":
        c2w, indices = read_pose_json(path)
        idx = np.arange(len(c2w)) if indices is None else np.asarray(indices)
        return ScriptedPath(c2w, idx % len(source_c2w))
    keys = read_keys(path)
    n = frames or len(source_c2w)
    idx = np.arange(n) % len(source_c2w)
    tgt = target_c2w(keys, source_c2w[idx].float(), relative_to_source=relative_to_source,
                     rotation_only=rotation_only)
    return ScriptedPath(tgt.double().numpy(), idx)
