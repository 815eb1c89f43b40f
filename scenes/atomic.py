"""Atomic file output: write to a temporary name beside the target, then rename over it, so a
crash or a full disk never leaves a half-written file under the real name (DESIGN.md rule).

Every temporary file or staging folder is named `.<name>.<pid>.<random>.tmp` (`temporary_path`):
hidden, and marked with the process that writes it. Whoever writes into a folder cleans it on every
exit path; a process killed outright (SIGKILL, power loss) cannot, so the next run removes the ones
whose process is gone (`remove_stale_temporaries`).
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from pathlib import Path

TEMPORARY = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")
FILE_SYSTEM_PROBLEMS = {           # errno -> what the user can do about it
    errno.EROFS: "choose a folder on a writable disk",
    errno.EACCES: "choose a folder you may write to",
    errno.EPERM: "choose a folder you may write to",
    errno.ENOSPC: "free some space or choose a folder on another disk",
    errno.EDQUOT: "free some space or choose a folder on another disk",
    errno.ENAMETOOLONG: "choose a shorter name",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "a file is in the way of the folder; move it or choose another path",
    errno.EISDIR: "a folder is in the way of the file; move it or choose another path",
}


def temporary_path(path: str | os.PathLike) -> Path:
    """A hidden name beside `path` for a file or folder this process is still writing."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` via a temporary name + os.replace; returns the final path."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:              # name the file the user asked for, not the temporary one
        raise OSError(err.errno, err.strerror, str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)      # only left over when the write or rename failed
    return path


def file_problem(err: OSError, path: str | os.PathLike | None = None) -> str | None:
    """One line for a file-system error: the path, what went wrong and what to do
    ("out/video.mp4: No space left on device; the disk is full; ..."); None for other errors."""
    if err.errno not in FILE_SYSTEM_PROBLEMS:
        return None
    where = path if path is not None else err.filename
    return f"{os.fspath(where) if where is not None else 'a file'}: {err.strerror}; {FILE_SYSTEM_PROBLEMS[err.errno]}"


def writable_folder(folder: str | os.PathLike) -> Path:
    """Make `folder` (with its parents) and prove that a file can be written in it, before any slow
    work whose result would go there. Raises the OSError of the first step that fails."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = temporary_path(folder / "probe")
    try:
        with open(probe, "wb") as f:
            f.write(bytes(4096))
    finally:
        probe.unlink(missing_ok=True)
    return folder


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:              # someone else's process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and staging folders in `folder` whose writing process has gone
    (a run killed with SIGKILL). -> what was removed; a missing or unreadable folder has none."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = TEMPORARY.match(entry.name)
        if match is None or process_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def close_all(*closers) -> None:
    """Call every closer (finish every file) even when one fails, e.g. on a full disk; then raise
    the first failure."""
    errors = []
    for close in closers:
        try:
            close()
        except Exception as err:
            errors.append(err)
    if errors:
        raise errors[0]
