"""Recording of a camera run, written as it goes: Ctrl-C, SIGTERM, a closed window, a crash, SIGKILL
or a full disk keep every line already written and the video up to about a second before the end,
and a replay (`play --script OUT/recording`) works from what is there.

OUT/recording/
  inputs.jsonl   one line per tick that had input: the tick index and its commands (idle ticks are left out)
  poses.jsonl    one line per presented frame: frame index, source index, c2w; when the display draws
                 every frame from the camera (runtime.reproject) also `content`, the number of the content
                 frame it showed (replaying these shows the same frames)
  poses.json     the same as one JSON document, written (atomically) when the recording closes
  blocks.jsonl   one line per generation request: block id, whether it restarted the model context,
                 its source indices and camera poses (every requested frame, also those a refiner
                 does not show, e.g. the DiT's first block); replaying these reproduces the blocks
  video.mp4      the presented frames: H.264 in a fragmented MP4 (scenes/video.py, durable), which
                 plays as it is at any moment
The .jsonl files are handed to the operating system line by line (line-buffered), so a killed process
loses at most a line it was writing, and readers skip a cut-off last line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scenes.atomic import close_all, write_atomic
from scenes.errors import SceneInputError
from scenes.video import BackgroundVideoWriter


class Recorder:
    """Appends inputs, poses and frames of a session; `close()` finalizes every file."""

    def __init__(self, folder: Path, fps: float, width: int, height: int, preset: str = "medium"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self._inputs = JsonLines(self.folder / "inputs.jsonl")
        self._poses = JsonLines(self.folder / "poses.jsonl")
        self._blocks = JsonLines(self.folder / "blocks.jsonl")
        self._video = BackgroundVideoWriter(self.folder / "video.mp4", fps=fps, width=width, height=height,
                                            preset=preset, durable=True)
        self.frames = 0
        self.closed = False

    def log_tick(self, tick: int, commands: dict) -> None:
        """commands: plain JSON-able data of one tick (see controllers.commands.to_dict)."""
        self._inputs.write({"tick": tick, **commands})

    def log_block(self, block_id: int, restart: bool, source_indices, c2w: np.ndarray) -> None:
        """One generation request: source indices [T] and target poses [T, 4, 4]."""
        row = {"block": int(block_id), "restart": bool(restart), "source_indices": [int(i) for i in source_indices],
               "c2w": np.asarray(c2w, dtype=np.float64).tolist()}
        self._blocks.write(row)

    def log_frame(self, frame: torch.Tensor, source_index: int, c2w: np.ndarray, content: int | None = None,
                  at_s: float | None = None) -> None:
        """frame: uint8 [H, W, 3] (host or GPU); c2w: [4, 4] OpenCV camera-to-world; content: the
        content frame a displayed frame showed; at_s: when it was shown (see VideoWriter.write)."""
        self._video.write(frame.cpu().numpy(), at_s)
        row = {"frame": self.frames, "source_index": int(source_index),
               "c2w": np.asarray(c2w, dtype=np.float64).tolist()}
        if content is not None:
            row["content"] = int(content)
        self._poses.write(row)
        self.frames += 1

    def close(self) -> None:
        """Finish every file; a failure (a full disk) is raised once the others are finished."""
        if self.closed:
            return
        self.closed = True
        close_all(self._inputs.close, self._poses.close, self._blocks.close, self._video.finalize, self._write_poses)

    def _write_poses(self) -> None:
        rows = read_pose_log(self.folder / "poses.jsonl")
        doc = {"fps": self.fps, "convention": "OpenCV c2w (+x right, +y down, +z forward)",
               "frames": rows}
        write_atomic(self.folder / "poses.json", json.dumps(doc).encode())


class JsonLines:
    """A .jsonl file handed to the operating system line by line; its errors name the file."""

    def __init__(self, path: Path):
        self.path = path
        self._file = self._call(open, path, "w", buffering=1)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(self.path)) from None

    def write(self, row: dict) -> None:
        self._call(self._file.write, json.dumps(row) + "\n")

    def close(self) -> None:
        self._call(self._file.close)


class RecordingError(SceneInputError):
    """A recorded run folder that cannot be replayed; the message names the file and the problem."""


def read_pose_log(path: Path) -> list[dict]:
    """Rows of a .jsonl log; a last line cut off by a crash is ignored, as is everything after a
    line that is not a JSON object."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise RecordingError(f"{path}: cannot read it ({err.strerror})") from None
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if not isinstance(row, dict):
            break
        rows.append(row)
    return rows


def _poses(rows: list[dict], where: Path) -> tuple[np.ndarray, list[int]]:
    """Rows with "c2w" [4, 4] (or "c2w" [T, 4, 4] and "source_indices" [T]) -> (c2w [T', 4, 4], indices [T'])."""
    try:
        if rows and "source_indices" in rows[0]:
            c2w = np.array([m for r in rows for m in r["c2w"]], dtype=np.float64)             # [T, 4, 4]
            indices = [int(i) for r in rows for i in r["source_indices"]]
        else:
            c2w = np.array([r["c2w"] for r in rows], dtype=np.float64)                        # [T, 4, 4]
            indices = [int(r["source_index"]) for r in rows]
    except (KeyError, TypeError, ValueError) as err:
        raise RecordingError(f"{where}: not a recorded run's log ({type(err).__name__}: {err}); "
                             "record the run again with `play --record`") from None
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or len(c2w) != len(indices) or not np.isfinite(c2w).all():
        raise RecordingError(f"{where}: the camera poses are not finite 4x4 matrices, one per frame; "
                             "record the run again with `play --record`")
    if min(indices, default=0) < 0:
        raise RecordingError(f"{where}: negative source frame index {min(indices)}")
    return c2w, indices


def load_recorded_blocks(folder: Path) -> tuple[np.ndarray, list[int], list[int]] | None:
    """A recorded run's requests -> (c2w [T, 4, 4], source indices [T], restart frame positions), or
    None when the run has no blocks.jsonl or it does not start with a restart (recording toggled on
    mid-session: then only the presented poses can be replayed)."""
    path = Path(folder) / "blocks.jsonl"
    rows = read_pose_log(path) if path.is_file() else []
    if not rows or rows[0].get("restart") is not True:
        return None
    restarts, frames = [], 0
    for row in rows:
        if row.get("restart"):
            restarts.append(frames)
        frames += len(row.get("source_indices", ()))
    c2w, indices = _poses(rows, path)
    return c2w, indices, restarts


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
    c2w, _ = _poses(rows, path)
    try:
        content = np.array([int(r["content"]) for r in rows], dtype=np.int64)                 # [D]
    except (KeyError, TypeError, ValueError) as err:
        raise RecordingError(f"{path}: not a recorded run's log ({type(err).__name__}: {err}); "
                             "record the run again with `play --record`") from None
    return DisplayedFrames(c2w, content)


def load_recorded_poses(folder: Path) -> tuple[np.ndarray, list[int], float]:
    """A recorded run -> (c2w [T, 4, 4] float64, source indices [T], fps). Reads poses.json, or the
    incremental poses.jsonl when the run was cut off before it was finalized."""
    folder = Path(folder)
    path, fps = folder / "poses.json", 24.0
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            rows, fps = doc["frames"], float(doc["fps"])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise RecordingError(f"{path}: not a recorded run's poses ({type(err).__name__}); "
                                 "record the run again with `play --record`") from None
    elif (path := folder / "poses.jsonl").is_file():
        rows = read_pose_log(path)
    else:
        raise RecordingError(f"{folder}: not a recorded run (no blocks.jsonl, poses.json or poses.jsonl); "
                             "record one with `play --record`")
    if not isinstance(rows, list) or not rows:
        raise RecordingError(f"{path}: the recorded run has no frames")
    c2w, indices = _poses(rows, path)
    return c2w, indices, fps
