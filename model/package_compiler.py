"""Which C++ compiler builds AOTInductor packages that load here, for model/block_packages.py.

A compiler can build packages that crash the process loading them: on a CUDA 13 image the wrapper
in $CXX (/opt/gcc/bin/g++) did, even for a one-line model, while /usr/bin/g++ worked. So each
candidate ($CXX, then g++ and c++ from PATH) builds and loads a one-line package in a child process
of its own; a crash there costs nothing. The children run at the same time, in the background from
`start()` on (a first check costs tens of seconds: Inductor builds its precompiled header per
compiler), and the first candidate that works is remembered in the package folder.

    python3 -m model.package_compiler CXX DEVICE     # one check; exit status 0 when it works
"""
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


class CompilerCheck:
    """The compiler for the packages in `folder`, checked once per folder, in the background."""

    def __init__(self, folder: Path, device: torch.device):
        self.remembered, self.device = Path(folder) / "compiler", device
        self.candidates = candidates()
        self._results: dict[str, str | None] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> "CompilerCheck":
        """Begin checking now unless a compiler is remembered; `result()` waits for it."""
        if self._thread is None and self._known() is None:
            self._thread = threading.Thread(target=self._check_all, name="roam-compiler-check", daemon=True)
            self._thread.start()
        return self

    def result(self, report=lambda message: None) -> tuple[str | None, list[str]]:
        """(the compiler to use, or None; why each candidate failed)."""
        if known := self._known():
            return known, []
        report(f"checking which C++ compiler builds packages that load ({', '.join(self.candidates) or 'none found'})")
        self.start()._thread.join()
        failures = [f"{cxx}: {self._results[cxx]}" for cxx in self.candidates if self._results[cxx]]
        working = next((cxx for cxx in self.candidates if self._results[cxx] is None), None)
        if working:
            self.remembered.parent.mkdir(parents=True, exist_ok=True)
            self.remembered.write_text(working)
        return working, failures

    def _known(self) -> str | None:
        if self.remembered.exists() and shutil.which(cxx := self.remembered.read_text().strip()):
            return cxx
        return None

    def _check_all(self) -> None:
        with ThreadPoolExecutor(max(1, len(self.candidates))) as pool:
            self._results = dict(zip(self.candidates, pool.map(lambda cxx: check(cxx, self.device), self.candidates)))


def candidates() -> list[str]:
    """$CXX (what Inductor uses by default), then g++ and c++ from PATH, each compiler once."""
    found = [os.environ.get("CXX"), shutil.which("g++"), shutil.which("c++")]
    seen, out = set(), []
    for cxx in filter(None, found):
        real = os.path.realpath(shutil.which(cxx) or cxx)
        if real not in seen:
            seen.add(real)
            out.append(cxx)
    return out


def check(cxx: str, device: torch.device) -> str | None:
    """None if `cxx` builds a package for `device` that loads and runs, in a child process; else why not."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if sys.pycache_prefix:                      # roam's bytecode cache (runtime/bytecode_cache.py): a quick import
        env.update(PYTHONPYCACHEPREFIX=sys.pycache_prefix, PYTHONDONTWRITEBYTECODE="")
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "model.package_compiler", cxx, str(device)], capture_output=True,
                              text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        return "its check took more than 10 minutes"
    why = None if done.returncode == 0 else \
        f"exit status {done.returncode}: {done.stderr.strip()[-300:] or 'no message (a crash)'}"
    log.info("C++ compiler %s checked in %.1f s: %s", cxx, time.perf_counter() - t0, why or "its packages load")
    return why


def compile_package(exported, path: Path, cxx: str) -> None:
    """AOTInductor with the C++ compiler `cxx`. It gets a fresh metadata dict because AOTInductor
    fills Inductor's in place, which would change torch.compile's cache key for whatever this
    process compiles later (measured: the TAE decoder compiled again on the next start)."""
    import torch._inductor
    from torch._inductor import config
    with config.patch({"cpp.cxx": (None, cxx), "aot_inductor.metadata": {}}):
        torch._inductor.aoti_compile_and_package(exported, package_path=str(path))


def load_package(path: Path, device: torch.device):
    """PyTorch's C++ package loader, without importing Dynamo or Inductor. Single-threaded: it then
    records no CUDA events, so its calls can be captured in a CUDA graph."""
    return torch._C._aoti.AOTIModelPackageLoader(str(path), "model", True, 1, -1 if device.index is None else device.index)


class _OneLine(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 2 + 1


def _check_here(cxx: str, device: torch.device) -> None:
    x = torch.arange(8.0, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one_line.pt2"
        compile_package(torch.export.export(_OneLine(), (x,)), path, cxx)
        out = load_package(path, device).run([x])[0]
    if not torch.equal(out, x * 2 + 1):
        raise SystemExit(f"the package computed {out.tolist()}, not {(x * 2 + 1).tolist()}")


if __name__ == "__main__":
    _check_here(sys.argv[1], torch.device(sys.argv[2]))
