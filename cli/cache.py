"""`main.py cache`: what roam's caches hold and how big they are, and cleaning them.

    main.py cache                          list the Scenes (source, frames, size, last use) and the other caches
    main.py cache clean all                remove every cached Scene, fused world, compiled kernel and bytecode
    main.py cache clean --older-than DAYS  remove the Scenes not used for that many days
    main.py cache clean VIDEO_OR_KEY       remove the Scenes of that video (by its content) or that key (prefix)

The caches: scenes.cache_dir (Scenes with their fused worlds), model.compile_cache_dir (torch.compile
kernels, AOT packages) and pycache/ of the user's cache folder (cli/bytecode_cache.py).
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cli.bytecode_cache import PYCACHE
from cli.errors import UserError
from runtime.cache_root import cache_root
from scenes.scene import SIDECAR_FILE, file_content_hash

KEY_PREFIX_MIN = 6                 # shortest key prefix `clean` accepts


@dataclass(frozen=True)
class CachedScene:
    """One entry of the Scene cache. source: what it was built from; frames 0 when unreadable."""
    folder: Path
    source: str
    source_hash: str | None
    frames: int
    size: tuple[int, int]
    bytes: int
    used: float                    # last use (seconds since the epoch)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def cached_scenes(root: Path) -> list[CachedScene]:
    """Every entry under the Scene cache `root` (unfinished and unreadable ones too), newest use first."""
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        sidecar = folder / SIDECAR_FILE
        try:
            doc = json.loads(sidecar.read_text())
            meta = doc.get("meta", {})
            entry = CachedScene(folder, str(meta.get("source", "?")), meta.get("source_hash"), int(doc["num_frames"]),
                                (int(doc["width"]), int(doc["height"])), folder_bytes(folder), sidecar.stat().st_mtime)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            entry = CachedScene(folder, "(unfinished or unreadable)", None, 0, (0, 0), folder_bytes(folder),
                                folder.stat().st_mtime)
        out.append(entry)
    return sorted(out, key=lambda e: -e.used)


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def human_age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


def other_caches(cfg) -> dict[str, Path]:
    return {"compiled kernels": Path(cfg.model.compile_cache_dir), "bytecode": cache_root() / PYCACHE}


def list_caches(cfg) -> None:
    root = Path(cfg.scenes.cache_dir)
    scenes, now = cached_scenes(root), time.time()
    total = sum(s.bytes for s in scenes)
    print(f"roam caches (in {cache_root()}; set ROAM_CACHE_DIR to move them)")
    print(f"scenes: {root}  {len(scenes)} scene{'s' * (len(scenes) != 1)}, {human_bytes(total)}")
    for s in scenes:
        shape = f"{s.frames} frames {s.size[0]}x{s.size[1]}" if s.frames else ""
        print(f"  {s.folder.name[:12]}  {human_bytes(s.bytes):>9}  used {human_age(now - s.used):<12} {shape:<22} {s.source}")
    for name, path in other_caches(cfg).items():
        size = folder_bytes(path)
        total += size
        print(f"{name}: {path}  {human_bytes(size)}")
    print(f"total: {human_bytes(total)}")


def clean_caches(cfg, target: str | None, older_than_days: float | None) -> int:
    """Remove what `target` ('all', a video, a key prefix) or `older_than_days` selects. -> bytes freed"""
    if (target is None) == (older_than_days is None):
        raise UserError("cache clean: give one of: all, a video file, a scene key, or --older-than DAYS")
    scenes = cached_scenes(Path(cfg.scenes.cache_dir))
    extra = []
    if older_than_days is not None:
        if not older_than_days >= 0:
            raise UserError(f"--older-than {older_than_days}: give a number of days >= 0")
        doomed = [s for s in scenes if time.time() - s.used > older_than_days * 86400]
    elif target == "all":
        doomed, extra = scenes, [p for p in other_caches(cfg).values() if p.exists()]
    elif Path(target).is_file():
        digest = file_content_hash(target)
        doomed = [s for s in scenes if s.source_hash == digest]
    elif len(target) >= KEY_PREFIX_MIN and all(c in "0123456789abcdef" for c in target):
        doomed = [s for s in scenes if s.folder.name.startswith(target)]
    else:
        raise UserError(f"cache clean {target}: not a video file or a scene key (at least {KEY_PREFIX_MIN} hex "
                        "characters, as `main.py cache` lists them)")
    freed = 0
    for path in [s.folder for s in doomed] + extra:
        freed += folder_bytes(path)
        shutil.rmtree(path, ignore_errors=True)
    print(f"roam: removed {len(doomed)} scene{'s' * (len(doomed) != 1)}"
          f"{' and ' + ', '.join(str(p) for p in extra) if extra else ''}, {human_bytes(freed)} freed")
    return freed


def cache(cfg, args) -> int:
    if args.action == "list":
        if args.target is not None or args.older_than is not None:
            raise UserError("cache: to remove entries, say `main.py cache clean ...`")
        list_caches(cfg)
    else:
        clean_caches(cfg, args.target, args.older_than)
    return 0
