"""`main.py doctor`: every checkpoint, part by part (the parts `main.py download --only` fetches):
missing, present, verified or invalid with a one-line reason; for a part that is not complete, the
command that gets it with its size and what roam does without it."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple

from cli.weight_parts import PARTS, Part, part_of
from model.checkpoint_report import DoctorRow, doctor_report
from scenes.caption_weights import FLORENCE_DIR, check_florence_weights
from scenes.depth.da3 import INSTALL_HINT as DA3_INSTALL
from scenes.depth.da3_weights import DA3_DIR, check_da3_weights


class PartReport(NamedTuple):
    part: Part
    rows: list[DoctorRow]
    notes: list[str]                  # packages the part needs that are not installed

    @property
    def complete(self) -> bool:
        return all(r.status in ("verified", "present") for r in self.rows)


def report(checkpoint_dir: Path) -> list[PartReport]:
    """The model stack's rows, DA3's and Florence-2's, grouped by the download part that writes them."""
    rows = doctor_report(checkpoint_dir)
    for name, folder, check, enables in (
            ("DA3 depth", DA3_DIR, check_da3_weights, "build --depth da3 (or auto)"),
            ("Florence-2 captions", FLORENCE_DIR, check_florence_weights, "captions in build")):
        status, detail = check(checkpoint_dir / folder)
        rows.append(DoctorRow(name, str(checkpoint_dir / folder), status, detail, enables))
    grouped = {name: [r for r in rows if part_of(r.path, checkpoint_dir) is part] for name, part in PARTS.items()}
    return [PartReport(PARTS[name], part_rows, missing_packages(name)) for name, part_rows in grouped.items()]


def missing_packages(part: str) -> list[str]:
    needs = {"dit": [("transformers", "transformers (umT5 text encoder): pip install transformers")],
             "depth": [("depth_anything_3", f"the depth-anything-3 package: {DA3_INSTALL}")],
             "captions": [("transformers", "transformers: pip install transformers")]}.get(part, [])
    return [f"needs {what}" for module, what in needs if importlib.util.find_spec(module) is None]


def print_report(checkpoint_dir: Path, parts: list[PartReport]) -> None:
    print(f"checkpoints: {checkpoint_dir.resolve()}")
    width = max(len(r.name) for p in parts for r in p.rows)
    for p in parts:
        state = "complete" if p.complete else "missing" if all(r.status == "missing" for r in p.rows) else \
            "incomplete"
        print(f"\n{p.part.name} ({state}): {p.part.enables}")
        for r in p.rows:
            where = Path(r.path).relative_to(checkpoint_dir) if Path(r.path).is_relative_to(checkpoint_dir) else r.path
            detail = r.detail.removeprefix(f"{r.path}: ")
            print(f"  {r.status:<8}  {r.name:<{width}}  {where}" + ("" if r.status == "missing" else f": {detail}"))
        if not p.complete:
            print(f"  get it:     {p.part.command}   (about {p.part.gigabytes:g} GB)")
            print(f"  without it: {p.part.without}")
        for note in p.notes:
            print(f"  {note}")


def run(cfg, args) -> int:
    """Each checkpoint, part by part: missing / present / verified / invalid, what it enables, and the
    download command of each incomplete part."""
    return check(Path(cfg.model.checkpoint_dir), cfg.runtime.device)


def check(root: Path, device: str) -> int:
    """The report of the checkpoints in `root` (doctor, and download when done). -> 1 when a file is
    invalid, else 0"""
    parts = report(root)
    print_report(root, parts)
    dit = next(p for p in parts if p.part.name == "dit")
    print("\nDiT refiner:", dit_status(dit.complete, device))
    print("FP8 attention (model.fp8):", fp8_attention_status())
    return 1 if any(r.status == "invalid" for p in parts for r in p.rows) else 0


def dit_status(complete: bool, device: str) -> str:
    """Whether the DiT can run, and whether play's `auto` takes it on `device` (runtime.device:
    auto | cpu | cuda; play refuses cuda without a GPU itself)."""
    import torch
    if not complete:
        return "not available (the geometry refiner runs without weights)"
    if device == "cpu" or not torch.cuda.is_available():
        return "ready (render runs it; play's auto takes the geometry refiner here: no CUDA GPU)"
    return "ready"


def fp8_attention_status() -> str:
    """Whether the FP8 mode's attention kernel can run on this machine's first GPU, or why not."""
    import torch
    from model.fp8_attention import fp8_attention_unavailable
    reason = fp8_attention_unavailable(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return f"not available: {reason} (the FP8 mode keeps bf16 attention)" if reason else "available"
