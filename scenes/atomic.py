"""Atomic file output: write to a temporary name beside the target, then rename over it, so a
crash or a full disk never leaves a half-written file under the real name (DESIGN.md rule)."""
from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` via `<path>.<pid>.tmp` + os.replace; returns the final path."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)      # only left over when the write or rename failed
    return path
