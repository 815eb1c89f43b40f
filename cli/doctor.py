"""`main.py doctor`: every checkpoint, part by part (the parts `main.py download --only` fetches):
missing, present, verified or invalid with a one-line reason; for a part that is not complete, the
command that gets it with its size and what roam does without it."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple

from cli.download import PARTS, Part, part_of
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
