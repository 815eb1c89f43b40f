"""`main.py download [--only dit|depth|captions|tae] [--dir checkpoints]`: the weights the reference's
scripts/download.sh fetches, into the reference's layout, then `doctor`.

Files are listed and fetched through huggingface_hub (an optional extra): one progress bar per file,
the Hub's endpoint from HF_ENDPOINT (a mirror) and its token from HF_TOKEN. Each file is written to
`<name>.part` and renamed into place once its content matches the Hub's hash (SHA-256 for large files,
the git blob id for small ones), so a broken transfer, even a killed process, resumes where it
stopped, and a file already in place is skipped once its hash matches (remembered in
`<folder>/.cache/roam/`, so the check costs one read of the file, once). The TAE comes from its GitHub
repository, as in the reference (ROAM_TAEHV_URL for a mirror), resumed the same way and skipped when
doctor verifies it.

Differences from the reference's script: only the files roam and the reference read are fetched (no
READMEs, licences, example images, nor the rest of inspatio/world and madebyollin/taehv), and Florence-2
is transformers' own conversion (florence-community/Florence-2-large) rather than microsoft's
original, whose remote code does not load with transformers 5.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cli.errors import UserError
from model import checkpoint as ck
from scenes.caption_weights import FLORENCE_DIR, FLORENCE_REPO
from scenes.depth.da3_weights import DA3_DIR, DA3_REPO

INSTALL = "pip install -r requirements-download.txt"
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


def hub():
    try:
        import huggingface_hub
    except ImportError:
        raise UserError(f"main.py download needs huggingface_hub: {INSTALL}") from None
    return huggingface_hub


@dataclass(frozen=True)
class RemoteFile:
    name: str                         # path in the repository, and under the source's folder
    url: str
    size: int
    sha256: str | None                # large (LFS) files
    blob_id: str                      # git's id of the content: sha1(b"blob <size>\0" + content)

    def matches(self, digests: dict[str, str]) -> bool:
        return digests["sha256"] == self.sha256 if self.sha256 else digests["blob_id"] == self.blob_id


def remote_files(src: HubFiles) -> list[RemoteFile]:
    """The repository's files that match the source's patterns, with their sizes and hashes."""
    hf = hub()
    from huggingface_hub.hf_api import RepoFile
    files = [RemoteFile(f.path, hf.hf_hub_url(src.repo_id, f.path), f.size, f.lfs.sha256 if f.lfs else None, f.blob_id)
             for f in hf.list_repo_tree(src.repo_id, recursive=True)
             if isinstance(f, RepoFile) and any(fnmatch.fnmatch(f.path, p) for p in src.patterns)]
    if not files:
        raise UserError(f"{src.repo_id}: no files match {', '.join(src.patterns)}; has the repository changed?")
    return files


def digests(path: Path, folder: Path) -> dict[str, str]:
    """SHA-256 and git blob id of a file, read once and remembered (by size and modification time)
    in <folder>/.cache/roam/<name>.json."""
    stat = path.stat()
    memo = folder / ".cache" / "roam" / (str(path.relative_to(folder)) + ".json")
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        cached = json.loads(memo.read_text())
        if {k: cached.get(k) for k in key} == key:
            return cached
    except (OSError, json.JSONDecodeError):
        pass
    from tqdm import tqdm
    sha256, blob = hashlib.sha256(), hashlib.sha1(f"blob {stat.st_size}\0".encode())
    with open(path, "rb") as f, tqdm(total=stat.st_size, unit="B", unit_scale=True, desc=f"checking {path.name}",
                                     disable=stat.st_size < 2**30, file=sys.stderr) as bar:
        while chunk := f.read(2**24):
            sha256.update(chunk)
            blob.update(chunk)
            bar.update(len(chunk))
    result = {**key, "sha256": sha256.hexdigest(), "blob_id": blob.hexdigest()}
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps(result))
    return result


def transfer(url: str, target: Path, size: int | None = None, headers: dict | None = None) -> None:
    """GET `url` into `<target>.part`, resuming what an earlier run left there; the caller renames it."""
    from huggingface_hub.file_download import http_get
    part = target.with_name(target.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    with open(part, "ab") as f:
        if size is None or f.tell() < size:
            http_get(url, f, resume_size=f.tell(), headers=headers, expected_size=size, displayed_filename=target.name)


def fetch_hub_files(src: HubFiles, root: Path) -> None:
    """Every matching file of the repository: skipped when its hash matches, else fetched and checked."""
    folder = root / src.folder
    hub()
    from huggingface_hub.utils import build_hf_headers
    headers = build_hf_headers()
    for remote in remote_files(src):
        target = folder / remote.name
        if target.is_file() and target.stat().st_size == remote.size and remote.matches(digests(target, folder)):
            print(f"{src.folder}/{remote.name}: verified, skipped", file=sys.stderr)
            continue
        transfer(remote.url, target, remote.size, headers)
        part = target.with_name(target.name + ".part")
        if not remote.matches(digests(part, folder)):
            part.unlink()
            raise UserError(f"{src.folder}/{remote.name}: the downloaded content does not match {src.repo_id}'s "
                            "hash (deleted); run the command again")
        os.replace(part, target)


def fetch_url(src: UrlFile, root: Path) -> None:
    """A plain HTTP(S) file, skipped when doctor verifies the one in place."""
    from model.checkpoint_report import doctor_report
    target = root / src.path
    if any(r.path == str(target) and r.status == "verified" for r in doctor_report(root)):
        print(f"{src.path}: verified, skipped", file=sys.stderr)
        return
    transfer(os.environ.get(src.url_env, src.url), target)
    os.replace(target.with_name(target.name + ".part"), target)


def network_errors() -> tuple[type[BaseException], ...]:
    """What a failed listing or transfer raises: the Hub's HTTP errors, the HTTP library's (httpx2 in
    huggingface_hub 2, httpx in 1), and the operating system's."""
    from huggingface_hub.errors import HfHubHTTPError
    try:
        import httpx2 as httpx
    except ImportError:
        import httpx
    return HfHubHTTPError, httpx.HTTPError, OSError


def download(root: Path, only: str | None) -> None:
    """The parts (all, or `only`) into `root`, each file skipped when it verifies."""
    parts = [PARTS[only]] if only else list(PARTS.values())
    hub()
    for part in parts:
        print(f"{part.name}: about {part.gigabytes:g} GB -> {root}", file=sys.stderr)
        for src in part.sources:
            try:
                (fetch_hub_files if isinstance(src, HubFiles) else fetch_url)(src, root)
            except network_errors() as e:
                where = src.repo_id if isinstance(src, HubFiles) else src.path
                message = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise UserError(f"download of {where} failed ({message}); run the same command again: it "
                                "resumes") from None
