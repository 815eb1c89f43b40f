"""Recording of a camera run, written incrementally so Ctrl-C, a closed window or a crash loses
nothing already recorded.

OUT/recording/
  inputs.jsonl   one line per tick that had input: the tick index and its commands (idle ticks are left out)
  poses.jsonl    one line per presented frame: frame index, source index, c2w (flushed as written); when
                 the display draws every frame from the camera (runtime.reproject) also `content`, the
                 number of the content frame it showed (replaying these shows the same frames)
  poses.json     the same as one JSON document, written (atomically) when the recording closes
  blocks.jsonl   one line per generation request: block id, whether it restarted the model context,
                 its source indices and camera poses (every requested frame, also those a refiner
                 does not show, e.g. the DiT's first block); replaying these reproduces the blocks
  video.mp4      the presented frames (H.264; finalized on close, also on SIGINT)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scenes.atomic import write_atomic
from scenes.video import BackgroundVideoWriter


class Recorder:
    """Appends inputs, poses and frames of a session; `close()` finalizes every file."""

    def __init__(self, folder: Path, fps: float, width: int, height: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self._inputs = open(self.folder / "inputs.jsonl", "w", buffering=1)
        self._poses = open(self.folder / "poses.jsonl", "w", buffering=1)
        self._blocks = open(self.folder / "blocks.jsonl", "w", buffering=1)
        self._video = BackgroundVideoWriter(self.folder / "video.mp4", fps=fps, width=width, height=height)
        self.frames = 0
        self.closed = False

    def log_tick(self, tick: int, commands: dict) -> None:
        """commands: plain JSON-able data of one tick (see controllers.commands.to_dict)."""
        self._inputs.write(json.dumps({"tick": tick, **commands}) + "\n")

    def log_block(self, block_id: int, restart: bool, source_indices, c2w: np.ndarray) -> None:
        """One generation request: source indices [T] and target poses [T, 4, 4]."""
        row = {"block": int(block_id), "restart": bool(restart), "source_indices": [int(i) for i in source_indices],
               "c2w": np.asarray(c2w, dtype=np.float64).tolist()}
        self._blocks.write(json.dumps(row) + "\n")

    def log_frame(self, frame: torch.Tensor, source_index: int, c2w: np.ndarray, content: int | None = None) -> None:
        """frame: uint8 [H, W, 3] (host or GPU); c2w: [4, 4] OpenCV camera-to-world; content: the
        content frame a displayed frame showed."""
        self._video.write(frame.cpu().numpy())
        row = {"frame": self.frames, "source_index": int(source_index),
               "c2w": np.asarray(c2w, dtype=np.float64).tolist()}
        if content is not None:
            row["content"] = int(content)
        self._poses.write(json.dumps(row) + "\n")
        self.frames += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._inputs.close()
        self._poses.close()
        self._blocks.close()
        self._video.finalize()
        rows = read_pose_log(self.folder / "poses.jsonl")
        doc = {"fps": self.fps, "convention": "OpenCV c2w (+x right, +y down, +z forward)",
               "frames": rows}
        write_atomic(self.folder / "poses.json", json.dumps(doc).encode())


def read_pose_log(path: Path) -> list[dict]:
    """Rows of a poses.jsonl; a last line cut off by a crash is ignored."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def load_recorded_blocks(folder: Path) -> tuple[np.ndarray, list[int], list[int]] | None:
    """A recorded run's requests -> (c2w [T, 4, 4], source indices [T], restart frame positions), or
    None when the run has no blocks.jsonl or it does not start with a restart (recording toggled on
    mid-session: then only the presented poses can be replayed)."""
    path = Path(folder) / "blocks.jsonl"
    rows = read_pose_log(path) if path.is_file() else []
    if not rows or not rows[0]["restart"]:
        return None
    c2w, indices, restarts = [], [], []
    for row in rows:
        if row["restart"]:
            restarts.append(len(indices))
        c2w += row["c2w"]
        indices += row["source_indices"]
    return np.array(c2w, dtype=np.float64), indices, restarts


@dataclass(frozen=True)
class DisplayedFrames:
    """The displayed frames of a recorded run: c2w float64 [D, 4, 4] and content [D], the content
    frame each one showed."""
    c2w: np.ndarray
    content: np.ndarray

    def __len__(self) -> int:
        return len(self.content)


def load_displayed(folder: Path) -> DisplayedFrames | None:
    """A recorded run's displayed frames, or None when its frames were presented as made (no
    `content` in its pose rows: recorded without reprojection)."""
    path = Path(folder) / "poses.jsonl"
    rows = read_pose_log(path) if path.is_file() else []
    if not rows or "content" not in rows[0]:
        return None
    return DisplayedFrames(np.array([r["c2w"] for r in rows], dtype=np.float64),
                           np.array([r["content"] for r in rows], dtype=np.int64))


def load_recorded_poses(folder: Path) -> tuple[np.ndarray, list[int], float]:
    """A recorded run -> (c2w [T, 4, 4] float64, source indices [T], fps). Reads poses.json, or the
    incremental poses.jsonl when the run was cut off before it was finalized."""
    folder = Path(folder)
    if (folder / "poses.json").is_file():
        doc = json.loads((folder / "poses.json").read_text())
        rows, fps = doc["frames"], float(doc["fps"])
    elif (folder / "poses.jsonl").is_file():
        rows, fps = read_pose_log(folder / "poses.jsonl"), 24.0
    else:
        raise ValueError(f"{folder}: not a recorded run (no poses.json or poses.jsonl); "
                         "record one with `play --record`")
    if not rows:
        raise ValueError(f"{folder}: the recorded run has no frames")
    c2w = np.array([r["c2w"] for r in rows], dtype=np.float64)                     # [T, 4, 4]
    return c2w, [int(r["source_index"]) for r in rows], fps
