"""AOTInductor packages on disk (model/block_packages.py: the DiT block; model/tae_packages.py: the
TAE's encoder and decoder): named by what their code depends on, loaded on first use, and the
missing ones built in child processes, in the background, so that a cold start runs on
torch.compile and never waits for a package build.

    store = PackageStore(".cache/compile/packages", device, row_limit=2048)
    runner = store.load(path, factory, args, inputs, params)   # None: missing, noted for the build
    store.build_missing()                                      # after warm-up

A package is exported from the module `factory(args, device)` returns (an importable
"module:function"), called as module(params, *rest) with the inputs' shapes, strides and dtypes.
Each child builds every missing package with one C++ compiler, then loads each package and checks it
against the eager module before moving it into place. A compiler can build packages that crash the
process loading them: on a CUDA 13 image the wrapper in $CXX (/opt/gcc/bin/g++) did, even for a
one-line model, while /usr/bin/g++ worked. So a crash costs only that child, and without a remembered
compiler one child per candidate ($CXX, then g++ and c++ from PATH) runs at the same time; the first
that builds and checks them all is remembered in the package folder.

    python3 -m model.package_store CXX SPEC.json    # one child; exit status 0 when all are built
"""
import atexit
import hashlib
import importlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import fields
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
CHECK_TOLERANCE = 2e-2      # relative difference of a package's outputs from the eager module's (bf16 rounding is ~4e-3)


class PackageStore:
    """The packages in `folder` for one device and compile setting. Not thread-safe: the thread that
    runs the model calls load()."""

    def __init__(self, folder: str | Path, device: torch.device, row_limit: int = 0):
        """row_limit: model.compile_row_limit, the compile setting in effect when building
        (model/inductor_choices.py), part of every package's name."""
        self.folder, self.device, self.row_limit = Path(folder), torch.device(device), row_limit
        self.loaded = 0
        self.missing: dict[str, dict] = {}         # build specs of the packages not found, by path
        self.report: Callable[[str], object] = lambda message: None   # play's warm-up status
        self.builder = PackageBuilder(self.folder)

    def path(self, kind: str, key: tuple, sources: Sequence[Path]) -> Path:
        """Where the package of `kind` for `key` (config, shapes, ...) lives: named by everything its
        code depends on, the text of roam's `sources` included."""
        name = hashlib.sha256(repr((torch.__version__, torch.version.cuda, _device_name(self.device), self.row_limit,
                                    kind, key)).encode())
        for source in sources:
            name.update(Path(source).read_bytes())
        return self.folder / f"{kind}-{name.hexdigest()[:24]}.pt2"

    def load(self, path: Path, factory: str, args: dict, inputs: Sequence[Tensor], params: int,
             inductor: dict | None = None):
        """The package's runner, or None (and a build spec for build_missing) when there is none.
        factory, args: what builds the module to export (see the module doc); params: how many of
        `inputs` are its parameters; inductor: Inductor settings for its build (part of `path`'s key)."""
        if path.exists():
            try:
                runner = load_package(path, self.device)
                self.loaded += 1
                return runner
            except Exception as e:                  # e.g. damaged on disk: build it again
                log.warning("package %s does not load (%s); building it again", path, e)
                path.unlink()
        self.missing[str(path)] = {"path": str(path), "factory": factory, "args": args, "params": params,
                                   "inductor": inductor or {},
                                   "inputs": [[list(t.shape), list(t.stride()), str(t.dtype).removeprefix("torch.")]
                                              for t in inputs]}
        return None

    def build_missing(self) -> bool:
        """Build the packages load() did not find, in the background (child processes), for the next
        start. -> whether a build started."""
        wanted = [spec for path, spec in self.missing.items() if not Path(path).exists()]
        if not wanted or self.builder.building():
            return False
        self.report(f"{len(wanted)} parts ran on torch.compile for want of an ahead-of-time package; "
                    f"building those in the background (in {self.folder}) so that the next start loads them")
        self.builder.start({"device": str(self.device), "row_limit": self.row_limit, "packages": wanted}, self.report)
        return True

    @property
    def unavailable(self) -> str | None:
        """Why no package could be built here, once a build has failed."""
        return "; ".join(self.builder.failures) or None

    def status(self) -> str:
        """What this process loaded (benchmark tables)."""
        if self.unavailable:
            return f"unavailable ({self.unavailable})"
        return f"{self.loaded} loaded" + (f", {len(self.missing)} missing ran torch.compile" if self.missing else "")

    def finish(self) -> str:
        """status(), then build the missing packages and wait for them, so that the next run loads
        them (benchmarks, which end where play keeps playing)."""
        status = self.status()
        if self.build_missing():
            self.builder.wait()
        return status


class PackageBuilder:
    """The background build of the packages in `folder`. start() returns at once; the report
    callback hears when it is done or why it failed; stop() ends it (at exit too)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.remembered = self.folder / "compiler"
        self.log = self.folder / "build.log"      # what each compiler's child printed in the last build
        self.failures: list[str] = []           # why each compiler failed, once the build has ended without one
        self.compiler: str | None = None        # the compiler that built the packages
        self._thread: threading.Thread | None = None
        self._children: list[subprocess.Popen] = []
        self._stopping = threading.Event()
        atexit.register(self.stop)

    def start(self, spec: dict, report: Callable[[str], object] = lambda message: None) -> None:
        if self.building():
            raise RuntimeError("PackageBuilder.start: a build is running already")
        self.failures, self.compiler = [], None
        self._stopping.clear()
        self._thread = threading.Thread(target=self._build, args=(spec, report), name="roam-package-builder",
                                        daemon=True)
        self._thread.start()

    def building(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the build to end; -> whether it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.building()

    def stop(self) -> None:
        """End the build now; a package being built is not written (the next start builds it)."""
        self._stopping.set()
        for child in self._children:
            if child.poll() is None:
                child.terminate()
        for child in self._children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.wait()

    def known_compiler(self) -> str | None:
        if self.remembered.exists() and shutil.which(cxx := self.remembered.read_text().strip()):
            return cxx
        return None

    def _build(self, spec: dict, report: Callable[[str], object]) -> None:
        known = self.known_compiler()
        compilers = [known] if known else candidates()
        if not compilers:
            self._fail(["none found ($CXX, g++ or c++)"], report)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=self.folder, prefix=".build-") as tmp:
            spec_path = Path(tmp) / "spec.json"
            spec_path.write_text(json.dumps(spec))
            logs = {cxx: Path(tmp) / f"compiler-{i}.log" for i, cxx in enumerate(compilers)}
            running = {cxx: _start_child(cxx, spec_path, log_path) for cxx, log_path in logs.items()}
            self._children = [child for child, _ in running.values()]
            failures = []
            while running and self.compiler is None and not self._stopping.wait(0.2):
                for cxx, (child, log_path) in list(running.items()):
                    if child.poll() is None:
                        continue
                    del running[cxx]
                    if child.returncode == 0:
                        self.compiler = cxx
                        break
                    failures.append(f"{cxx}: {_why(child.returncode, log_path)}")
            for child, _ in running.values():     # other compilers still busy: not needed, or stopping
                child.terminate()
                child.wait()
            self.log.write_text("".join(f"== {cxx}\n{log_path.read_text(errors='replace')}" for cxx, log_path in logs.items()))
        if self._stopping.is_set() and self.compiler is None:
            built = sum(Path(package["path"]).exists() for package in spec["packages"])
            report(f"stopped building the ahead-of-time packages ({built} of {len(spec['packages'])} built); "
                   "the next start builds the rest")
        elif self.compiler is None:
            self._fail(failures, report)
        else:
            self.remembered.write_text(self.compiler)
            report(f"built {len(spec['packages'])} ahead-of-time packages in {time.perf_counter() - started:.0f} s "
                   f"with {self.compiler}; the next start loads them")

    def _fail(self, failures: list[str], report: Callable[[str], object]) -> None:
        self.failures = failures
        message = (f"no C++ compiler built a loadable ahead-of-time package ({'; '.join(failures)}; details in "
                   f"{self.log}); set CXX to a working g++, or model.aot_packages: false; torch.compile keeps running "
                   "the model")
        log.warning(message)
        report(message)


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


def _start_child(cxx: str, spec_path: Path, log_path: Path) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if sys.pycache_prefix:                      # roam's bytecode cache (cli/bytecode_cache.py): a quick import
        env.update(PYTHONPYCACHEPREFIX=sys.pycache_prefix, PYTHONDONTWRITEBYTECODE="")
    with open(log_path, "w") as out:            # a file, not a pipe: a long compiler log cannot block the child
        child = subprocess.Popen([sys.executable, "-m", "model.package_store", cxx, str(spec_path)],
                                 stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return child, log_path


def _why(returncode: int, log_path: Path) -> str:
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    if returncode < 0:
        return f"killed by signal {-returncode} (a crash) in {lines[-1][:200] if lines else 'its start'}"
    return lines[-1][-300:] if lines else f"exit status {returncode}, no message"


def compile_package(exported, path: Path, cxx: str, settings: dict | None = None) -> None:
    """AOTInductor with the C++ compiler `cxx` and Inductor `settings` (in a child process only:
    AOTInductor fills Inductor's `aot_inductor.metadata` dict in place, part of torch.compile's cache
    key, which made the parent's next start compile its TAE again when the parent built packages)."""
    import torch._inductor
    from torch._inductor import config
    with config.patch({**(settings or {}), "cpp.cxx": (None, cxx)}):
        torch._inductor.aoti_compile_and_package(exported, package_path=str(path))


def load_package(path: Path, device: torch.device):
    """PyTorch's C++ package loader, without importing Dynamo or Inductor. Single-threaded: it then
    records no CUDA events, so its calls can be captured in a CUDA graph."""
    return torch._C._aoti.AOTIModelPackageLoader(str(path), "model", True, 1, -1 if device.index is None else device.index)


# --- the child process ---------------------------------------------------------------------------

def build_all(cxx: str, spec: dict, staging: Path) -> None:
    """Build, load and check each package of `spec` that is not there yet, with `cxx`, in a folder
    under `staging` (the parent's, on the packages' file system, removed by the parent even when this
    process crashes), then move it into place."""
    from model.inductor_choices import persistent_row_reductions
    device = torch.device(spec["device"])
    persistent_row_reductions(spec["row_limit"])    # the compile setting the packages are named by
    for package in spec["packages"]:
        path = Path(package["path"])
        if path.exists():                           # built meanwhile by another start
            continue
        started = time.perf_counter()
        module_name, function = package["factory"].split(":")
        module = getattr(importlib.import_module(module_name), function)(package["args"], device)
        n = package["params"]
        inputs = [_example(*spec_, device, parameter=i < n) for i, spec_ in enumerate(package["inputs"])]
        exported = torch.export.export(module, (inputs[:n], *inputs[n:]))
        with tempfile.TemporaryDirectory(dir=staging, prefix="package-") as tmp:
            built = Path(tmp) / path.name
            exported_at = time.perf_counter()
            compile_package(exported, built, cxx, package["inductor"])
            compiled_at = time.perf_counter()
            check(module, load_package(built, device), inputs, n)
            os.replace(built, path)
        print(f"{time.strftime('%H:%M:%S')} built {path.name} in {time.perf_counter() - started:.1f} s (export "
              f"{exported_at - started:.1f} s, compile {compiled_at - exported_at:.1f} s, check "
              f"{time.perf_counter() - compiled_at:.1f} s)", flush=True)


def _example(shape: list[int], stride: list[int], dtype: str, device: torch.device, parameter: bool) -> Tensor:
    """Random values of the input's layout; parameters scaled by their fan-in, so activations keep their size."""
    t = torch.empty_strided(shape, stride, dtype=getattr(torch, dtype), device=device)
    if not t.is_floating_point():
        return t.zero_()
    scale = (t[0].numel() ** -0.5 if t.dim() > 1 else 0.05) if parameter else 1.0
    return t.normal_(0, scale)


def check(module, runner, inputs: list[Tensor], n: int) -> None:
    """The package's outputs against the eager module's on the same inputs (the eager run on copies:
    a module may write into its inputs, as the DiT block writes its KV cache)."""
    with torch.no_grad():
        want = module(inputs[:n], *[t.clone() for t in inputs[n:]])
    got = runner.run(inputs)
    want = [want] if isinstance(want, Tensor) else list(want)
    if len(got) != len(want):
        raise SystemExit(f"the package returned {len(got)} outputs, the eager module {len(want)}")
    for i, (a, b) in enumerate(zip(got, want)):
        diff = ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-6)).item()
        if not diff < CHECK_TOLERANCE:
            raise SystemExit(f"the package's output {i} differs from the eager module's by {diff:.3g} (relative)")


def _run_when_idle() -> None:
    """This process and the compilers it starts get only CPU time that nothing else wants, so that
    play keeps its frame rate while they build (Linux: SCHED_IDLE; elsewhere the lowest priority)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        if hasattr(os, "nice"):
            os.nice(19)


def _main(cxx: str, spec_path: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # a stop: clean up the temporary folders
    _run_when_idle()
    try:
        build_all(cxx, json.loads(Path(spec_path).read_text()), Path(spec_path).parent)
    except Exception as e:
        traceback.print_exc()
        raise SystemExit(f"{type(e).__name__}: {' '.join(str(e).split())[-300:]}") from e



def config_from(cls, data: dict):
    """A config dataclass from its asdict() sent through JSON (lists back to tuples)."""
    return cls(**{f.name: tuple(v) if isinstance(v := data[f.name], list) else v for f in fields(cls)})


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


if __name__ == "__main__":
    _main(*sys.argv[1:3])
