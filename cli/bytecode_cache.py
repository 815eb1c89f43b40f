"""A bytecode cache of roam's own for Python installs that keep none.

Container images often install packages without compiled bytecode and set
PYTHONDONTWRITEBYTECODE=1, so every start compiles torch, sympy and Triton from source again, most
of what importing torch and torch.compile's machinery takes there (docs/performance.md, Bytecode cache).
When the bytecode of `torch` is missing where Python looks for it, roam writes and reads bytecode
in pycache/ of the user's cache folder instead (runtime/cache_root.py, sys.pycache_prefix); a
normal install, with its bytecode, is left alone. Call it before anything imports torch.
"""
import importlib.util
import os
import sys
from pathlib import Path

from runtime.cache_root import cache_root

PYCACHE = "pycache"                  # its folder inside the user's cache folder



def missing_bytecode(package: str) -> bool:
    """Whether importing `package` would compile it from source (its compiled bytecode is absent
    where this interpreter looks for it). Finds the package without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return False
    return not os.path.exists(importlib.util.cache_from_source(spec.origin))


def use_bytecode_cache(directory: Path | None = None, package: str = "torch") -> bool:
    """When `package` ships no bytecode, keep bytecode for every later import under `directory`
    (default: pycache/ in the user's cache folder), overriding PYTHONDONTWRITEBYTECODE, which is what
    makes such installs slow to start. -> whether it did."""
    if not missing_bytecode(package):
        return False
    sys.pycache_prefix = str(Path(directory or cache_root() / PYCACHE).resolve())
    sys.dont_write_bytecode = False
    return True
