"""Scripted input: a camera path replayed one pose per presented frame, and a recorded run's
inputs.jsonl replayed tick by tick.

- `ScriptedPath` holds target poses and source frame indices as arrays (the lead engine adapts
  trajectory files and recorded runs to them); the engine asks for the next frame or for a
  whole block window.
- `InputLogReplayer` returns, for every tick, exactly the Commands that were recorded in that
  tick (idle Commands where none were); runtime/recorder.py writes that format, line by line, so
  a killed run's log may end in a cut-off line, which is skipped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controllers.commands import IDLE, Commands, commands_from_dict


@dataclass(frozen=True)
class ScriptedFrame:
    frame: int            # presented-frame number, from 0
    c2w: np.ndarray       # [4, 4] float64, OpenCV camera-to-world
    source_index: int     # source frame shown at this output frame


class ScriptedPath:
    """Replays `c2ws` [T, 4, 4] and `source_indices` [T] one per presented frame.
    With `loop` it starts again after the last frame (kiosk attract mode); else it is `done`.
    `restarts`: frame positions where the original run restarted the model context (a recorded
    run's blocks.jsonl), so a replay restarts at the same frames."""

    def __init__(self, c2ws, source_indices, loop: bool = False, restarts=()):
        c2ws = np.asarray(c2ws, dtype=np.float64)                        # [T, 4, 4]
        idx = np.asarray(source_indices)                                  # [T]
        if c2ws.ndim != 3 or c2ws.shape[1:] != (4, 4) or len(c2ws) == 0:
            raise ValueError(f"scripted path: poses must be [T, 4, 4] with T > 0, got {c2ws.shape}")
        if idx.shape != (len(c2ws),) or not np.issubdtype(idx.dtype, np.integer) or (idx < 0).any():
            raise ValueError(f"scripted path: source indices must be {len(c2ws)} integers >= 0, "
                             f"got shape {idx.shape} dtype {idx.dtype}")
        if not np.isfinite(c2ws).all():
            raise ValueError("scripted path: poses contain NaN or inf")
        self.c2ws, self.source_indices, self.loop = c2ws, idx.astype(np.int64), loop
        self.restarts = frozenset(int(r) for r in restarts)
        self._next = 0

    def __len__(self) -> int:
        return len(self.c2ws)

    @property
    def done(self) -> bool:
        return not self.loop and self._next >= len(self)

    @property
    def position(self) -> int:
        """Number of frames handed out so far."""
        return self._next

    def window(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Poses [n', 4, 4] and source indices [n'] of frames start..start+n-1 (wrapping with
        `loop`; n' < n only at the end of a non-looping path). Does not advance."""
        frames = np.arange(start, start + n)
        frames = frames % len(self) if self.loop else frames[frames < len(self)]
        return self.c2ws[frames], self.source_indices[frames]

    def next_frame(self) -> ScriptedFrame | None:
        """The pose and source index of the next presented frame; None when done."""
        if self.done:
            return None
        i = self._next % len(self)
        frame = ScriptedFrame(self._next, self.c2ws[i].copy(), int(self.source_indices[i]))
        self._next += 1
        return frame

    def rewind(self) -> None:
        self._next = 0


class InputLogReplayer:
    """A recorded run's inputs.jsonl -> the same Commands in the same ticks."""

    def __init__(self, path: Path | str):
        path = Path(path)
        self._by_tick: dict[int, Commands] = {}
        try:
            text = path.read_text()
        except OSError as err:
            raise ValueError(f"{path}: cannot read the input log ({err.strerror})") from err
        lines = text.splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                tick = raw.pop("tick")
                if not isinstance(tick, int) or tick < 0 or tick in self._by_tick:
                    raise ValueError(f"tick must be a new integer >= 0, got {tick!r}")
                self._by_tick[tick] = commands_from_dict(raw)
            except (ValueError, KeyError, AttributeError) as err:
                if isinstance(err, json.JSONDecodeError) and number == len(lines) and not text.endswith("\n"):
                    break                                       # the last line, cut off by a killed run
                raise ValueError(f"{path}:{number}: not a valid input record ({err}); "
                                 f"expected {{\"tick\": N, \"camera\": {{...}}, ...}}") from err
        self.last_tick = max(self._by_tick, default=-1)

    def __len__(self) -> int:
        return len(self._by_tick)

    def commands_for(self, tick: int) -> Commands:
        return self._by_tick.get(tick, IDLE)

    def done(self, tick: int) -> bool:
        """True once every recorded tick has been replayed (tick is the one about to run)."""
        return tick > self.last_tick
