"""Memory estimates before big allocations: a command that will not fit says so at once, with what it
needs and what to change, instead of swapping the machine to a halt or being killed mid-way."""
from __future__ import annotations

from pathlib import Path

from scenes.errors import SceneInputError


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def require_memory(need_bytes: float, what: str, fix: str) -> None:
    """Raise SceneInputError when `need_bytes` exceed the memory available now: "<what> need about
    X GiB, Y GiB is free; <fix>". Where the free memory is unknown, nothing is checked."""
    free = available_memory_bytes()
    if free is not None and need_bytes > free:
        raise SceneInputError(f"{what} need about {need_bytes / 2**30:.1f} GiB, {free / 2**30:.1f} GiB is free; {fix}")
