"""DiTRefiner: the InSpatio-World model as a Refiner (block loop on render, mask and source frames)."""
from __future__ import annotations

from pathlib import Path

from model.checkpoint import doctor_report


def dit_refiner_or_reason(cfg, device):
    """(DiTRefiner, "") when every checkpoint the DiT path needs verifies, else (None, why not)."""
    rows = {row.name: row for row in doctor_report(Path(cfg.checkpoint_dir))}
    needed = [name for name in rows if "dit" in name.lower() or "inspatio" in name.lower()]
    bad = [f"{rows[n].name}: {rows[n].status}" for n in needed if rows[n].status != "verified"]
    if bad or not needed:
        return None, f"DiT checkpoints not verified in {cfg.checkpoint_dir} ({'; '.join(bad) or 'none found'}); " \
                     "see checkpoints/README.md and `python main.py doctor`"
    return None, "the DiT refiner is not wired into play yet"
