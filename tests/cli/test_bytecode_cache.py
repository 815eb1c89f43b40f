"""roam's own bytecode cache for installs without bytecode (cli/bytecode_cache.py), checked in
fresh interpreters with PYTHONDONTWRITEBYTECODE=1 as container images set it."""
import compileall
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from cli.bytecode_cache import use_bytecode_cache
used = use_bytecode_cache(sys.argv[1], "slowpkg")
import slowpkg.sub
print(json.dumps({"used": used, "prefix": sys.pycache_prefix, "value": slowpkg.sub.VALUE}))
"""


def make_package(root: Path) -> Path:
    pkg = root / "slowpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "sub.py").write_text("VALUE = 42\n")
    return pkg


def run_probe(root: Path, prefix: Path) -> dict:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": f"{root}{os.pathsep}{REPO}"}
    env.pop("PYTHONPYCACHEPREFIX", None)
    out = subprocess.run([sys.executable, "-c", PROBE, str(prefix)], env=env, cwd=root, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def pyc_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.pyc")) if folder.exists() else []


def test_an_install_without_bytecode_gets_it_written_to_roams_cache(tmp_path):
    pkg, prefix = make_package(tmp_path), tmp_path / "pycache"
    first = run_probe(tmp_path, prefix)
    assert first["used"] and first["value"] == 42
    assert first["prefix"] == str(prefix.resolve())
    cached = pyc_files(prefix)
    assert any(name.startswith("sub.") for name in cached) and any(name.startswith("__init__.") for name in cached)
    assert pyc_files(pkg) == []                              # the install itself stays untouched
    written = {p: p.stat().st_mtime_ns for p in prefix.rglob("*.pyc")}
    second = run_probe(tmp_path, prefix)                      # the next start reads what the first wrote
    assert second["used"] and pyc_files(prefix) == cached
    assert {p: p.stat().st_mtime_ns for p in prefix.rglob("*.pyc")} == written   # read, not compiled again


def test_an_install_with_bytecode_is_left_alone(tmp_path):
    pkg, prefix = make_package(tmp_path), tmp_path / "pycache"
    assert compileall.compile_dir(str(pkg), quiet=1)
    result = run_probe(tmp_path, prefix)
    assert not result["used"] and result["prefix"] is None
    assert not prefix.exists()


def test_a_missing_package_changes_nothing(tmp_path):
    from cli.bytecode_cache import use_bytecode_cache
    before = (sys.pycache_prefix, sys.dont_write_bytecode)
    assert not use_bytecode_cache(tmp_path / "pycache", "no_such_package_here")
    assert (sys.pycache_prefix, sys.dont_write_bytecode) == before
