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
from cli.weight_parts import PARTS, HubFiles, UrlFile

INSTALL = "pip install -r requirements-download.txt"


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


def run(cfg, args) -> int:
    """The official weights (--only one part) into --dir, then doctor."""
    from cli.doctor import check
    root = Path(args.dir or cfg.model.checkpoint_dir)
    download(root, args.only)
    return check(root, cfg.runtime.device)
