"""The official weights' path end to end on the CPU, through the real commands in subprocesses, with
the tiny checkpoint tree of `python -m benchmarks.fake_checkpoints DIR --size tiny`: doctor verifies
every part; build captions a
real MP4 with Florence-2, encodes the caption with umT5 and stores the embedding; play with
runtime.refiner=dit runs the DiT (auto leaves it to a CUDA GPU and says so), and a recorded run
replays bit for bit; render writes the DiT's frame counts; a deleted file and a corrupted one are
each named, with the command that fixes them, by doctor and by play's one line."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from model import checkpoint as ck
from scenes.scene import PROMPT_FILE, load_scene
from tests.makers import write_test_video

pytest.importorskip("transformers")
REPO = Path(__file__).resolve().parents[2]
H, W = 16, 32                                          # the smallest size the DiT's 2 x 2 patches of 8 x 8 latents take


def roam(*args, tmp: Path, checkpoints: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "main.py", *args, "--set", f"model.checkpoint_dir={checkpoints}",
           "--set", f"scenes.cache_dir={tmp / 'cache'}", "--set", f"scenes.width={W}", "--set", f"scenes.height={H}"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def lines(proc: subprocess.CompletedProcess, start: str) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith(start)]


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def make_video(path: Path, n: int, seed: int) -> Path:
    """A panning random texture with a slanted depth plane beside it (<stem>.npz, the file depth provider)."""
    texture = np.random.default_rng(seed).integers(0, 255, (H, W + n, 3), dtype=np.uint8)
    write_test_video(path, np.stack([texture[:, i:i + W] for i in range(n)]))
    y, x = np.mgrid[0:H, 0:W]
    np.savez(path.with_suffix(".npz"), depth=np.repeat((2.0 + 0.01 * x + 0.01 * y)[None], n, 0).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def tree(tiny_checkpoints) -> Path:
    return tiny_checkpoints


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory) -> tuple[Path, Path]:
    """(tmp folder, scene folder): `build` of a real MP4 with the whole tree present."""
    tmp = tmp_path_factory.mktemp("built")
    video = make_video(tmp / "clip.mp4", 24, seed=1)
    proc = roam("build", str(video), tmp=tmp, checkpoints=tree)
    assert proc.returncode == 0, proc.stderr
    assert lines(proc, "roam: encoding") and "on cpu" in lines(proc, "roam: caption encoded by umT5")[0]
    return tmp, Path(proc.stdout.strip().splitlines()[-1])


def test_doctor_verifies_every_part_of_the_tree(tree, tmp_path):
    doctor = roam("doctor", tmp=tmp_path, checkpoints=tree)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert all(f"\n{part} (complete): " in doctor.stdout for part in ("dit", "depth", "captions", "tae"))
    statuses = re.findall(r"^  (\S+) ", doctor.stdout, re.M)                  # one row per file or folder
    assert len(statuses) == 9 and set(statuses) == {"verified"}
    import torch
    assert ("DiT refiner: ready\n" if torch.cuda.is_available() else "DiT refiner: ready (render runs it; play's auto "
            "takes the geometry refiner here: no CUDA GPU)\n") in doctor.stdout


def test_build_captions_encodes_and_stores_the_embedding(built, tree):
    _, folder = built
    scene = load_scene(folder)
    assert scene.meta["caption_source"] == "florence-2" and scene.meta["depth_provider"] == "file"
    assert (folder / PROMPT_FILE).is_file() and scene.prompt_embeds.shape == (1, 512, 64)
    assert scene.prompt_encoder != ""


def test_play_runs_the_dit_and_a_recorded_run_replays_bit_for_bit(built, tree):
    tmp, folder = built
    first = roam("play", str(folder), "--headless", "--seconds", "1", "--record", "--out", str(tmp / "a"),
                 "--set", "runtime.refiner=dit", tmp=tmp, checkpoints=tree)
    assert first.returncode == 0, first.stderr
    chosen = lines(first, "roam: refiner: ")
    assert len(chosen) == 1 and chosen[0].startswith("roam: refiner: dit (dit: ") and not lines(first, "roam: encoding")
    replay = roam("play", str(folder), "--headless", "--script", str(tmp / "a" / "recording"), "--out", str(tmp / "b"),
                  "--set", "runtime.refiner=dit", tmp=tmp, checkpoints=tree)
    assert replay.returncode == 0, replay.stderr
    a, b = decoded(tmp / "a" / "video.mp4"), decoded(tmp / "b" / "video.mp4")
    assert len(a) >= 24 and len(b) >= len(a)                     # one second, at the display's rate
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_render_writes_the_dits_frame_counts(tree, tmp_path):
    videos = tmp_path / "in"
    videos.mkdir()
    for i, n in enumerate((301, 247, 257)):
        make_video(videos / f"v{i}.mp4", n, seed=10 + i)
    out = tmp_path / "out"
    proc = roam("render", "--input_dir", str(videos), "--traj_txt_path", str(REPO / "traj" / "x_y_circle_cycle.txt"),
                "--checkpoint_path", str(tree / ck.INSPATIO_FILE), "--output_folder", str(out), "--prompt", "a street",
                "--disable_adaptive_frame", "--use_tae", "--no_progress", tmp=tmp_path, checkpoints=tree)
    assert proc.returncode == 0, proc.stderr
    version = out / tree.name / "InSpatio-World-1.3B" / "version_0"       # named after --checkpoint_path's folders
    for g, (T, pred) in enumerate(((301, 297), (247, 237), (257, 249))):
        result = json.loads((version / f"{g}-run_rank0.json").read_text())["result"]
        assert result["refiner"] == "dit" and result["pred_frames"] == pred
        assert len(decoded(version / f"{g}-pred_video_rank0.mp4")) == pred
        assert len(decoded(version / f"{g}-render_video_rank0.mp4")) == T


def test_a_deleted_file_and_a_corrupted_one_are_named_with_their_fix(built, tree, tmp_path):
    _, folder = built
    broken = shutil.copytree(tree, tmp_path / "checkpoints")
    (broken / ck.TAE_FILE).unlink()
    inspatio = broken / ck.INSPATIO_FILE
    inspatio.write_bytes(inspatio.read_bytes()[:4096])
    doctor = roam("doctor", tmp=tmp_path, checkpoints=broken)
    assert doctor.returncode == 1
    [deleted] = [line for line in doctor.stdout.splitlines() if line.endswith(ck.TAE_FILE)]
    [corrupted] = [line for line in doctor.stdout.splitlines() if f"{ck.INSPATIO_FILE}:" in line]
    assert deleted.startswith("  missing ") and "get it:     python main.py download --only tae" in doctor.stdout
    assert corrupted.startswith("  invalid ") and "truncated" in corrupted and "download --only dit" in corrupted
    play = roam("play", str(folder), "--headless", "--seconds", "0.5", "--out", str(tmp_path / "p"),
                "--set", "runtime.refiner=auto", tmp=tmp_path, checkpoints=broken)
    chosen = lines(play, "roam: refiner: ")             # no GPU here: auto does not look at the tree for play
    assert play.returncode == 0 and chosen == ["roam: refiner: geometry, not the DiT: this machine has no CUDA GPU, "
                                               "and on a CPU the DiT is far from real time (runtime.refiner=dit runs it anyway)"]
    play = roam("play", str(folder), "--headless", "--seconds", "0.5", "--out", str(tmp_path / "q"),
                "--set", "runtime.refiner=dit", tmp=tmp_path, checkpoints=broken)
    assert play.returncode == 2 and play.stderr.strip().splitlines() == [
        f"roam: error: runtime.refiner=dit: {broken / ck.TAE_FILE} is missing; get it with `python main.py download --only tae`"]
    shutil.copy2(tree / ck.TAE_FILE, broken / ck.TAE_FILE)
    play = roam("play", str(folder), "--headless", "--seconds", "0.5", "--out", str(tmp_path / "r"),
                "--set", "runtime.refiner=dit", tmp=tmp_path, checkpoints=broken)
    [line] = play.stderr.strip().splitlines()
    assert play.returncode == 2 and line.startswith(f"roam: error: runtime.refiner=dit: {inspatio}: ") and "truncated" in line
    assert line.endswith("get it again with `python main.py download --only dit`")
