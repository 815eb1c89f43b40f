"""The weight parts: what `main.py download --only PART` fetches (from where, into which folder of the
checkpoint dir, about how big), what each part enables and what roam does without it. `doctor`
reports by these parts, `download` fetches them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from model import checkpoint as ck
from scenes.caption_weights import FLORENCE_DIR, FLORENCE_REPO
from scenes.depth.da3_weights import DA3_DIR, DA3_REPO

TAEHV_URL = "https://github.com/madebyollin/taehv/raw/main/taew2_1.pth"


@dataclass(frozen=True)
class HubFiles:
    """Files of one Hub repository matching `patterns`, into `folder` (relative to the checkpoint dir)."""
    repo_id: str
    patterns: tuple[str, ...]
    folder: str


@dataclass(frozen=True)
class UrlFile:
    """One file over plain HTTP(S), into `path` (relative to the checkpoint dir)."""
    url_env: str                      # environment variable that replaces the URL (a mirror)
    url: str
    path: str


@dataclass(frozen=True)
class Part:
    name: str
    enables: str
    without: str                      # what roam does when the part is missing
    gigabytes: float                  # download size, as listed on the Hub
    sources: tuple[HubFiles | UrlFile, ...]

    @property
    def command(self) -> str:
        return f"python main.py download --only {self.name}"

    def folders(self) -> tuple[str, ...]:
        return tuple(s.folder if isinstance(s, HubFiles) else str(Path(s.path).parent) for s in self.sources)


PARTS = {p.name: p for p in (
    Part("dit", "the DiT refiner: photoreal frames in play and render (a CUDA GPU; InSpatio-World + Wan2.1's "
                "base DiT, umT5 text encoder and VAE)",
         "the geometry refiner: the point-cloud render with its holes filled (all a machine without a GPU runs)",
         23.3, (HubFiles("inspatio/world", ("InSpatio-World-1.3B.safetensors",), str(Path(ck.INSPATIO_FILE).parent)),
                HubFiles("Wan-AI/Wan2.1-T2V-1.3B", ("config.json", ck.DIT_BASE_GLOB, Path(ck.T5_FILES[1]).name,
                                                    Path(ck.VAE_FILE).name, "google/umt5-xxl/*"), ck.WAN_DIR))),
    Part("depth", "DA3 depth and camera poses for build (--depth da3, or auto)",
         "the weight-free `estimate` depth: a ground plane and a backdrop, so parallax is wrong when you walk",
         6.8, (HubFiles(DA3_REPO, ("config.json", "model.safetensors"), DA3_DIR),)),
    Part("captions", "Florence-2 captions for build: the prompt the DiT is conditioned on",
         "an empty prompt unless you pass build --prompt TEXT (the geometry refiner uses none)",
         1.6, (HubFiles(FLORENCE_REPO, ("*.json", "*.safetensors", "*.txt"), FLORENCE_DIR),)),
    Part("tae", "the TAE codec (model.use_tae: true), the real-time one",
         "the Wan VAE codec from the dit part (model.use_tae: false), slower",
         0.02, (UrlFile("ROAM_TAEHV_URL", TAEHV_URL, ck.TAE_FILE),)),
)}


def part_of(path: Path | str, root: Path | str) -> Part | None:
    """The part whose download writes `path`, or None."""
    try:
        first = Path(path).resolve().relative_to(Path(root).resolve()).parts[0]
    except (ValueError, IndexError):
        return None
    return next((p for p in PARTS.values() if first in {Path(f).parts[0] for f in p.folders()}), None)
