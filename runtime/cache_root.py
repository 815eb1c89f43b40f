"""Where roam keeps its caches: $ROAM_CACHE_DIR, else $XDG_CACHE_HOME/roam, else ~/.cache/roam.

A relative cache path in the config (scenes.cache_dir, model.compile_cache_dir) is taken inside
that folder, so running roam from another folder finds the same Scenes and compiled kernels.
Import-light (no torch): the bytecode cache uses it before anything else is imported.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The folder every roam cache lives in (absolute)."""
    if os.environ.get("ROAM_CACHE_DIR"):
        return Path(os.environ["ROAM_CACHE_DIR"]).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).expanduser().is_absolute() else Path.home() / ".cache"
    return (base / "roam").resolve()


def in_cache(path: str | Path) -> Path:
    """An absolute (or ~) path as it is; a relative one inside cache_root()."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else cache_root() / path
