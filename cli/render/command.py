"""`main.py render`: the reference pipeline's command (`run_test_pipeline.sh`), on roam's engine.

Every `*.mp4` of --input_dir (sorted, not recursive) goes through: caption (--prompt, the
reference's new.json with --skip_step1, else Florence-2 during the build), scene build (cached by
video bytes and settings, so a changed video is rebuilt), the reference's frame program, the engine
run and the reference's outputs in <output_folder>/<method_name>/<checkpoint_name>/version_0/.
A bad video is reported and skipped; the exit code is 0 only when every video succeeded. A video
whose outputs exist and whose record's settings match is reused, not redone.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from cli.render import dist as render_dist
from cli.device import pick_device
from cli.errors import UserError
from cli.refiner_choice import make_refiner, weight_files
from runtime.config import config_to_dict
from cli.render.job import RenderJob, output_paths, process_video
from cli.render.outputs import BACKENDS
from cli.render.plan import FrameSettings
from scenes.atomic import remove_stale_temporaries, writable_folder, write_atomic
from scenes.errors import SceneInputError
from scenes.scene import file_content_hash
from scenes.trajectory import format_keys, read_keys

RECORD_VERSION = 1
REFINERS = ("auto", "geometry", "dit")


def _say(message: str) -> None:
    print(f"roam: {message}", file=sys.stderr, flush=True)


def render(cfg, args) -> int:
    """Entry point: spawn --step3_nproc ranks when no launcher did, else run this rank."""
    nproc = int(args.step3_nproc)
    if nproc < 1:
        raise UserError(f"--step3_nproc {nproc}: expected an integer >= 1")
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        make_job(configure(cfg, args), args)            # bad flags fail here, once, before any rank starts
        list_videos(Path(args.input_dir))
        if args.step3_gpus is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = args.step3_gpus
        codes = render_dist.spawn(render_rank, nproc, int(args.master_port), (cfg, args))
        return max(codes)
    return render_rank(cfg, args)


def render_rank(cfg, args) -> int:
    """This process's share of the videos. -> 0 when every video of every rank succeeded, else 1."""
    try:
        rank = render_dist.rank_from_env()
    except ValueError as err:
        raise UserError(str(err)) from None
    cfg = configure(cfg, args)
    device = rank_device(cfg, rank)
    job, layout = make_job(cfg, args)
    videos = list_videos(Path(args.input_dir))
    render_dist.init(rank, device, int(args.master_port))
    t0 = time.perf_counter()
    captions = read_captions(Path(args.input_dir)) if args.skip_step1 and args.prompt is None else {}
    records = run_shard(cfg, args, job, videos, rank, device, captions)
    everything = [r for part in render_dist.gather(records, rank) for r in part]
    if rank.rank == 0:
        write_summary(cfg, args, layout, everything, rank, time.perf_counter() - t0)
    render_dist.finish(rank)
    failed = [r for r in everything if r["status"] == "failed"]
    if rank.rank == 0:
        _say(f"render: {len(everything) - len(failed)} of {len(everything)} videos done, outputs in {job.out_dir}"
             + (f"; failed: {', '.join(Path(r['video']).name for r in failed)}" if failed else ""))
    return 1 if failed else 0


def configure(cfg, args):
    """The config with the command's flags applied (refiner, device, seed, codec, compile, weights),
    and scenes.fit=stretch (the reference's resize), scenes.storage=exact."""
    if args.refiner not in REFINERS:
        raise UserError(f"--refiner {args.refiner}: expected one of {', '.join(REFINERS)}")
    checkpoint = Path(args.checkpoint_path)
    model = dataclasses.replace(cfg.model, use_tae=bool(args.use_tae), compile=bool(args.compile_dit),
                                seed=int(args.seed), checkpoint_dir=str(checkpoint.parent.parent))
    runtime = dataclasses.replace(cfg.runtime, refiner=args.refiner, device=args.device or cfg.runtime.device)
    scenes = dataclasses.replace(cfg.scenes, fit="stretch", storage="exact")   # the reference's resize, exact frames and depth
    return dataclasses.replace(cfg, model=model, runtime=runtime, scenes=scenes)


def rank_device(cfg, rank: render_dist.Rank) -> torch.device:
    device = pick_device(cfg.runtime.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", rank.local_rank % max(1, torch.cuda.device_count()))
    return device


def make_job(cfg, args) -> tuple[RenderJob, dict]:
    """Validate the flags (one-line errors) -> (RenderJob, output layout facts)."""
    if args.render_backend not in BACKENDS:
        raise UserError(f"--render_backend {args.render_backend}: expected one of {', '.join(BACKENDS)}")
    if args.freeze_repeat < 0:
        raise UserError(f"--freeze_repeat {args.freeze_repeat}: expected an integer >= 0")
    try:
        keys = read_keys(args.traj_txt_path)
    except SceneInputError as err:
        raise UserError(f"--traj_txt_path: {err}") from None
    parts = str(args.checkpoint_path).split("/")
    if len(parts) < 3:
        raise UserError(f"--checkpoint_path {args.checkpoint_path}: expected <root>/<method>/<checkpoint>/<file> "
                        "(the output folders are named after its last two folders)")
    method, checkpoint = parts[-3], parts[-2]
    folder = Path(args.output_folder) if args.output_folder else \
        Path("output") / Path(args.input_dir).resolve().name / Path(args.traj_txt_path).stem
    out_dir = folder / method / checkpoint / "version_0"
    frames = FrameSettings(freeze_repeat=int(args.freeze_repeat), freeze_frame=args.freeze_frame,
                           adaptive=not args.disable_adaptive_frame, relative_to_source=bool(args.relative_to_source),
                           rotation_only=bool(args.rotation_only))
    _note_weight_paths(cfg, args)
    job = RenderJob(keys=keys, frames=frames, backend=args.render_backend, depth=args.depth, out_dir=out_dir,
                    skip_step3=bool(args.skip_step3), progress=not args.no_progress,
                    make_refiner=refiner_factory(args.refiner))
    return job, {"output_dir": str(out_dir), "method_name": method, "checkpoint_name": checkpoint}


def _note_weight_paths(cfg, args) -> None:
    """roam reads every weight folder under the checkpoint root; say so when a flag points elsewhere."""
    root = Path(cfg.model.checkpoint_dir)
    for flag, given, expected in (("--da3_model_path", args.da3_model_path, root / "DA3"),
                                  ("--florence_model_path", args.florence_model_path, root / "Florence-2-large"),
                                  ("--tae_checkpoint_path", args.tae_checkpoint_path, root / "taehv" / "taew2_1.pth")):
        if Path(given).resolve() != expected.resolve():
            _say(f"note: {flag} {given}: roam reads it from {expected} (the checkpoint root of --checkpoint_path)")


def refiner_factory(choice: str):
    """(cfg, device, scene) -> Refiner: geometry, dit (weights must verify), or auto (dit when they do);
    the same choice `play` makes, with --refiner in place of runtime.refiner. A caption several
    videos share (--prompt) is encoded once."""
    made = {}

    def make(cfg, device, scene):
        return make_refiner(dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, refiner=choice)),
                            device, scene, made=made)
    return make


def list_videos(folder: Path) -> list[Path]:
    """`sorted(glob(folder/*.mp4))`, lowercase suffix, not recursive (the reference's rule)."""
    if not folder.is_dir():
        raise UserError(f"--input_dir {folder}: not a folder; pass the folder that holds the .mp4 videos")
    videos = sorted(p for p in folder.glob("*.mp4") if p.is_file())
    if not videos:
        raise UserError(f"--input_dir {folder}: no *.mp4 videos in it")
    return videos


def read_captions(folder: Path) -> dict[str, str]:
    """Captions of the reference's <input_dir>/new.json by video file name ({} when absent)."""
    path = folder / "new.json"
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        return {Path(e["video_path"]).name: str(e["text"]) for e in entries}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not the reference's caption list ({err}); delete it or drop --skip_step1") from None


def video_settings(cfg, args, job: RenderJob, video: Path, prompt: str | None, rank, g: int) -> dict:
    """Everything that shapes one video's outputs, as plain JSON data (a finished video whose record
    holds equal settings is reused)."""
    return json.loads(json.dumps(_settings(cfg, args, job, video, prompt, rank, g)))


def _settings(cfg, args, job: RenderJob, video: Path, prompt: str | None, rank, g: int) -> dict:
    return {"record_version": RECORD_VERSION, "video": str(video.resolve()), "video_hash": file_content_hash(video),
            "global_index": g, "rank": rank.rank, "world_size": rank.world,
            "trajectory": format_keys(job.keys), "frames": dataclasses.asdict(job.frames),
            "render_backend": job.backend, "refiner": args.refiner, "depth": job.depth, "prompt": prompt,
            "skip_step3": job.skip_step3, "checkpoint_path": str(args.checkpoint_path),
            "tae_checkpoint_path": str(args.tae_checkpoint_path),
            "scenes": config_to_dict(cfg.scenes), "model": config_to_dict(cfg.model),
            "weights": weight_files(cfg.model) if args.refiner != "geometry" else None}


def reusable(record_path: Path, settings: dict, out_dir: Path) -> dict | None:
    """The previous record when it finished with the same settings and its outputs all exist."""
    try:
        record = json.loads(record_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if record.get("status") != "ok" or record.get("settings") != settings:
        return None
    outputs = record.get("result", {}).get("outputs", {})
    return record if all((out_dir / name).is_file() for name in outputs.values()) else None


def run_shard(cfg, args, job: RenderJob, videos: list[Path], rank, device, captions: dict) -> list[dict]:
    """Process this rank's videos; a failure is reported and recorded, and the next video goes on."""
    from tqdm import tqdm
    mine = render_dist.shard(videos, rank)
    writable_folder(job.out_dir)
    remove_stale_temporaries(job.out_dir)             # the half-written videos of a killed run
    records = []
    for g, video in tqdm(mine, desc=f"videos (rank {rank.rank})", unit="video", file=sys.stderr,
                         position=0 if rank.world == 1 else rank.rank, disable=not job.progress):
        records.append(run_one(cfg, args, job, video, g, rank, device, captions))
    return records


def run_one(cfg, args, job: RenderJob, video: Path, g: int, rank, device, captions: dict) -> dict:
    prompt = args.prompt if args.prompt is not None else captions.get(video.name)
    record_path = output_paths(job.out_dir, g, rank.rank)["record"]
    t0 = time.perf_counter()
    try:
        settings = video_settings(cfg, args, job, video, prompt, rank, g)
        if (previous := reusable(record_path, settings, job.out_dir)) is not None:
            _say(f"{video.name}: outputs up to date, reused ({previous['result'].get('refiner')} refiner)")
            return {**previous, "reused": True}
        result = process_video(cfg, job, video, g, rank.rank, prompt, device)
    except KeyboardInterrupt:
        raise
    except Exception as err:          # one bad video must not stop the others: report it, go on
        message = f"{type(err).__name__}: {err}".splitlines()[0]
        _say(f"{video.name}: failed, skipped: {message}")
        record_path.unlink(missing_ok=True)             # outputs of an earlier run no longer count as done
        return {"video": str(video), "global_index": g, "rank": rank.rank, "status": "failed", "error": message,
                "wall_s": time.perf_counter() - t0}
    record = {"video": str(video), "global_index": g, "rank": rank.rank, "status": "ok", "settings": settings,
              "result": result, "wall_s": time.perf_counter() - t0, "reused": False}
    write_atomic(record_path, (json.dumps(record, indent=1) + "\n").encode())
    _say(f"{video.name}: done with the {result.get('refiner') or 'no'} refiner in {record['wall_s']:.1f} s")
    return record


def versions() -> dict:
    import av
    import numpy
    import scipy
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "av": av.__version__, "roam_commit": git_commit()}


def git_commit() -> str:
    """The roam checkout's commit, or "unknown" outside a git checkout."""
    import subprocess
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def write_summary(cfg, args, layout: dict, records: list[dict], rank, wall_s: float) -> None:
    """run.json (every setting, refiner, versions, timings, per-video results) and, when step 1 ran,
    the reference's <input_dir>/new.json caption list."""
    out_dir = Path(layout["output_dir"])
    records = sorted(records, key=lambda r: r["global_index"])
    run = {"command": "render", "flags": {k: v for k, v in vars(args).items() if not callable(v)},
           "layout": layout, "world_size": rank.world, "config": config_to_dict(cfg), "versions": versions(),
           "refiners": sorted({r.get("result", {}).get("refiner") or "none" for r in records if r["status"] == "ok"}),
           "ok": all(r["status"] == "ok" for r in records), "wall_s": wall_s, "videos": records}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "run.json", (json.dumps(run, indent=1, default=str) + "\n").encode())
    if not args.skip_step1:
        write_captions(Path(args.input_dir), records)


def write_captions(folder: Path, records: list[dict]) -> None:
    """The reference's new.json: one entry per captioned video, sorted by video_path."""
    entries = []
    for r in records:
        if r["status"] != "ok":
            continue
        video = Path(r["video"])
        stem = video.name.replace(".mp4", "")
        depth_dir = os.path.join(str(folder), "new_vggt", stem)
        entries.append({"video_path": os.path.join(str(folder), video.name), "vggt_depth_path": depth_dir,
                        "vggt_extrinsics_path": os.path.join(depth_dir, "extrinsics.txt"), "radius_ratio": 1,
                        "text": r["result"].get("caption", "")})
    entries.sort(key=lambda e: e["video_path"])
    write_atomic(folder / "new.json", json.dumps(entries, indent=4, ensure_ascii=False).encode())
