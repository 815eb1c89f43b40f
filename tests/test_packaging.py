"""roam as a package: pyproject.toml is the one list of dependencies, ruff is clean, `roam` is `main.py`."""
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def requirements(name: str) -> list[str]:
    """The requirement lines of a requirements file (comments and blank lines dropped)."""
    lines = (line.split("#")[0].strip() for line in (REPO / name).read_text().splitlines())
    return [line for line in lines if line]


def test_the_readme_requirement_files_install_this_package():
    assert requirements("requirements.txt") == ["-e ."]
    assert requirements("requirements-test.txt") == ["-e .[test]"]


def test_the_extras_requirement_files_are_their_extras():
    """Extras installed from a requirements file (fp8 and depth with --no-deps) keep that file."""
    extras = PROJECT["optional-dependencies"]
    assert requirements("requirements-fp8.txt") == extras["fp8"]
    assert requirements("requirements-download.txt") == extras["download"]
    depth = requirements("requirements-depth.txt")          # the package itself, and what it needs at run time
    assert depth[0].startswith("depth-anything-3==") and set(extras["depth"]) <= set(depth[1:])
    assert set(extras["download"]) <= set(extras["test"])             # the download tests run the real client
    assert {"dit", "depth", "captions", "fp8", "download", "test"} <= extras.keys()


def test_the_roam_command_is_main_py():
    module, function = PROJECT["scripts"]["roam"].split(":")
    code = f"import sys; sys.argv = ['roam', '--help']; import {module}; {module}.{function}()"
    via_entry = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    via_main = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert via_entry.returncode == via_main.returncode == 0
    assert via_entry.stdout.replace("usage: roam", "usage: main.py") == via_main.stdout


def test_ruff_is_clean():
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], capture_output=True,
                          text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-1000:]
