"""How a weights file's tensors differ from the ones a network expects, said in one phrase."""
from __future__ import annotations

from typing import Mapping


def shape_mismatch(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]) -> str | None:
    """None when `found` has exactly the expected names and shapes (name -> shape), else e.g.
    "missing 2 (a, b); wrong shape 1 (c)": each kind counted, its first three names sorted."""
    missing, unexpected = expected.keys() - found.keys(), found.keys() - expected.keys()
    wrong = {k for k in expected.keys() & found.keys() if tuple(found[k]) != tuple(expected[k])}
    parts = [f"{label} {len(names)} ({', '.join(sorted(names)[:3])})" for label, names in
             (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if names]
    return "; ".join(parts) or None
