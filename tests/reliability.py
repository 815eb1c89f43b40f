"""What the reliability suites (tests/*/test_reliability.py) share: roam's real commands run as
subprocesses on a tiny sample scene, and checks of what they leave behind."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import av
import pytest

REPO = Path(__file__).resolve().parent.parent
TINY = ["scenes.width=128", "scenes.height=72", "scenes.sample.frames=24"]


def build_tiny_cache(folder: Path) -> Path:
    """The tiny sample scene and its fused world, built in this process into `folder`, so every
    subprocess that passes `cache_flags(folder)` starts from a warm cache."""
    import torch

    from runtime.config import load_config
    from runtime.world_cache import load_or_build_world
    from scenes.sample import load_sample_scene
    cfg = load_config(overrides=cache_overrides(folder))
    scene = load_sample_scene(cfg.scenes, progress=False)
    load_or_build_world(scene, cfg.scenes.fusion, folder, torch.device("cpu"))
    return folder


def video_rate() -> float:
    """Frames per second of a session's videos and poses.jsonl lines (the display's rate when it
    reprojects), by config.yaml's defaults."""
    from runtime.config import load_config
    runtime = load_config().runtime
    return runtime.display_hz if runtime.reproject else runtime.loop.fps


def cache_overrides(folder: Path) -> list[str]:
    return [*TINY, f"scenes.cache_dir={folder}"]


def cache_flags(folder: Path) -> list[str]:
    return [arg for override in cache_overrides(folder) for arg in ("--set", override)]


def roam(*args: str, cwd: Path = REPO, **popen) -> subprocess.Popen:
    """Start `python3 main.py ARGS` (SDL's dummy drivers come from tests/conftest.py)."""
    return subprocess.Popen([sys.executable, "main.py", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def run_roam(*args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    proc = roam(*args, **popen)
    stdout, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def recorded_play(out: Path, cache: Path, *flags) -> subprocess.Popen:
    """A headless session that records and would run for 10 minutes."""
    return roam("play", "--headless", "--seconds", 600, "--record", "--out", out, *cache_flags(cache), *flags)


def wait_for_lines(path: Path, lines: int, proc: subprocess.Popen, timeout: float = 240) -> int:
    """Wait until the file `path` has at least `lines` lines (a session's poses.jsonl) while `proc` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the command ended ({proc.returncode}) before {path} had {lines} lines:\n"
                                 + proc.stderr.read()[-3000:])
        if path.is_file() and (n := path.read_text().count("\n")) >= lines:
            return n
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach {lines} lines in {timeout} s")


def stop(proc: subprocess.Popen, signum: int, timeout: float = 120) -> tuple[str, str]:
    """Send `signum` and wait for the process to end. -> (stdout, stderr)"""
    proc.send_signal(signum)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the command did not end within {timeout} s of {signal.Signals(signum).name}")


def one_line_error(proc: subprocess.CompletedProcess, *expected: str) -> str:
    """Assert the command failed with exit code 2 and ended with one error line (after the progress
    lines it may have printed, never a traceback) that says every `expected`. -> that line"""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    errors = [line for line in lines if line.startswith("roam: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for text in expected:
        assert text in errors[0], f"{text!r} not in: {errors[0]}"
    return errors[0]


def decoded_frames(path: Path) -> int:
    """Frames a player gets out of a video, decoding to the end (a cut-off tail counts as the end)."""
    count = 0
    try:
        with av.open(str(path)) as container:
            for _ in container.decode(video=0):
                count += 1
    except av.error.FFmpegError:
        pass
    return count


def leftovers(folder: Path) -> list[Path]:
    """Temporary files and staging folders anywhere under `folder` (there must be none)."""
    return [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp")]


@contextmanager
def tmpfs(folder: Path, size: str = "1m"):
    """A real tmpfs of `size` mounted at `folder` for the block (a disk that fills up; `read_only`
    turns it read-only); the test is skipped, saying why, where this process may not mount one."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'mount failed'}); needs root on Linux")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def read_only(folder: Path) -> None:
    """Remount the tmpfs at `folder` read-only (what it holds stays readable)."""
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)


def wait_for_text(proc: subprocess.Popen, text: str, timeout: float = 240) -> str:
    """Read the running command's stderr until `text` appears (progress bars included). -> what was read"""
    import os
    import select
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, f"{text!r} did not appear in {timeout} s:\n{seen[-3000:]}"
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 65536).decode(errors="replace")
            assert chunk or proc.poll() is None, f"the command ended before {text!r}:\n{seen[-3000:]}"
            seen += chunk
    return seen


@contextmanager
def xvfb():
    """A virtual X display (Xvfb) for a real window; the test is skipped where Xvfb is not installed.
    -> the DISPLAY value"""
    import os
    import shutil
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            display = pipe.readline().strip()
        if not display:
            pytest.skip("Xvfb did not start")
        yield f":{display}"
    finally:
        server.terminate()
        server.wait(timeout=30)
