"""`main.py render` end to end on tiny synthetic videos with `<stem>.npz` depth beside them (the
`file` depth provider), plus the frame program against the reference fixtures (parity/geometry)."""
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import main
import cli.render.outputs as render_outputs
from cli.render.plan import FrameSettings, plan_frames
from scenes.frames import dataset_frames, freeze_indices
from scenes.trajectory import dataset_reference_w2c, read_keys, target_c2w
from scenes.video import VideoWriter

REPO = Path(__file__).resolve().parents[2]
W, H = 208, 120
CIRCLE, ZOOM = REPO / "traj" / "x_y_circle_cycle.txt", REPO / "traj" / "zoom_out_in.txt"
VERSION_0 = Path("checkpoints") / "InSpatio-World-1.3B" / "version_0"


def make_video(folder: Path, stem: str, n: int = 24, c2w: np.ndarray | None = None, seed: int = 0) -> Path:
    """A panning random texture, a slanted depth plane and known cameras in <stem>.npz."""
    folder.mkdir(parents=True, exist_ok=True)
    texture = np.random.default_rng(seed).integers(0, 255, (H, W + n, 3), dtype=np.uint8)
    with VideoWriter(folder / f"{stem}.mp4", fps=24, width=W, height=H) as writer:
        for i in range(n):
            writer.write(np.ascontiguousarray(texture[:, i:i + W]))
    y, x = np.mgrid[0:H, 0:W]
    depth = np.repeat((2.0 + 0.005 * x + 0.003 * y)[None].astype(np.float32), n, 0)      # [n, H, W]
    if c2w is None:
        c2w = np.repeat(np.eye(4)[None], n, 0)
        c2w[:, 0, 3] = np.linspace(0, 0.05, n)
    K = np.array([[150.0, 0, W / 2], [0, 150.0, H / 2], [0, 0, 1]])
    np.savez(folder / f"{stem}.npz", depth=depth, K=K, c2w=c2w)
    return folder / f"{stem}.mp4"


def run(tmp_path: Path, input_dir: Path, traj: Path, *flags: str, out: str = "out", prompt: str | None = "a test") -> int:
    return main.main(["render", "--input_dir", str(input_dir), "--traj_txt_path", str(traj),
                      "--output_folder", str(tmp_path / out), *(["--prompt", prompt] if prompt else []), "--no_progress",
                      "--refiner", "geometry", *flags, "--set", f"scenes.width={W}", "--set", f"scenes.height={H}",
                      "--set", f"scenes.cache_dir={tmp_path.parent / 'scene_cache'}"])


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 24.0
        return sum(1 for _ in container.decode(stream))


def counts(version_dir: Path, g: int, rank: int = 0) -> dict:
    return {kind: frame_count(version_dir / f"{g}-{kind}_video_rank{rank}.mp4")
            for kind in ("pred", "source", "render", "mask")}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    make_video(folder, "clip", seed=1)
    return folder


class PoseSpy:
    """Records the source and target cameras the engine's warper receives, block by block."""

    def __init__(self, monkeypatch):
        self.src, self.tgt = [], []
        real = render_outputs.render_views

        def spy(frames, depth, K, src_c2w, tgt_c2w, **kw):
            self.src.append(src_c2w.cpu())
            self.tgt.append(tgt_c2w.cpu())
            return real(frames, depth, K, src_c2w, tgt_c2w, **kw)
        monkeypatch.setattr(render_outputs, "render_views", spy)

    def poses(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat(self.src), torch.cat(self.tgt)


# ---- the frame program against the reference fixtures ----------------------------------------

def traj_path(name: str, parity_dir: Path) -> Path:
    shipped = REPO / "traj" / f"{name}.txt"
    return shipped if shipped.is_file() else parity_dir / "geometry" / "traj" / f"{name}.txt"


def test_frame_program_matches_the_reference_adaptive_fixtures(parity_dir):
    fixtures = json.loads((parity_dir / "geometry" / "frames.json").read_text())["adaptive"]
    poses = load_file(str(parity_dir / "geometry" / "poses.safetensors"))
    checked = 0
    for case in fixtures:
        if "error" in case:
            continue
        n, keys = case["N"], read_keys(traj_path(case["trajectory"], parity_dir))
        settings = FrameSettings(freeze_repeat=case["freeze_repeat"], freeze_frame=case["freeze_frame"],
                                 adaptive=case["adaptive"])
        depth = torch.full((n, 2, 2), case["reference_extrinsics_radius_scale"])     # frame-0 min = the radius
        plan = plan_frames(keys, torch.eye(4).expand(n, 4, 4), depth, settings)
        assert plan.frames == case["final_frames"]
        assert plan.source_index == case["source_frame_index"]
        assert plan.adaptive_index == case["render_frame_index"]
        assert plan.native_frames == case["aligned_frames_before_adaptive"]
        assert plan.extrinsics.shape == (1, case["final_frames"], 4, 4) and plan.extrinsics.dtype == torch.float32
        expected = poses[case["reference_extrinsics_key"]].float()
        torch.testing.assert_close(plan.extrinsics[0], expected, atol=2e-6, rtol=0)
        checked += 1
    assert checked >= 14


@pytest.mark.parametrize("rts,rot", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("name", ["x_y_circle_cycle", "zoom_out_in"])
def test_frame_program_targets_match_the_reference_renderer(parity_dir, name, rts, rot):
    poses = load_file(str(parity_dir / "geometry" / "poses.safetensors"))
    src = poses["src/c2w_f32"]                                                        # [49, 4, 4]
    settings = FrameSettings(adaptive=False, relative_to_source=bool(rts), rotation_only=bool(rot))
    plan = plan_frames(read_keys(traj_path(name, parity_dir)), src, torch.ones(49, 2, 2), settings)
    torch.testing.assert_close(plan.target_c2w, poses[f"tgt/{name}/rts{rts}_rot{rot}/c2w_f32"], atol=2e-6, rtol=0)
    assert plan.source_index == list(range(49))


# ---- end to end through the CLI and the engine -----------------------------------------------

@pytest.mark.parametrize("rts", [0, 1])
def test_freeze_poses_through_the_engine_match_the_reference(tmp_path, parity_dir, monkeypatch, rts):
    """49 frames with the fixture's source cameras, freeze frame 20 six more times, adaptive off:
    the cameras the engine renders are the reference renderer's, and every output has 55 frames."""
    poses = load_file(str(parity_dir / "geometry" / "poses.safetensors"))
    key = f"tgt_freeze/x_y_circle_cycle/rts{rts}_rot0_ff20_fr6"
    make_video(tmp_path / "in", "clip", n=49, c2w=poses["src/c2w_f64"].numpy())
    spy = PoseSpy(monkeypatch)
    flags = ["--freeze_repeat", "6", "--freeze_frame", "20", "--disable_adaptive_frame"]
    assert run(tmp_path, tmp_path / "in", CIRCLE, *flags, *(["--relative_to_source"] if rts else [])) == 0
    src, tgt = spy.poses()
    torch.testing.assert_close(tgt, poses[f"{key}/c2w_f32"], atol=2e-6, rtol=0)
    torch.testing.assert_close(src, poses[f"{key}/src_c2w_f32"], atol=2e-6, rtol=0)
    out = tmp_path / "out" / VERSION_0
    assert counts(out, 0) == {"pred": 55, "source": 55, "render": 55, "mask": 55}
    record = json.loads((out / "0-run_rank0.json").read_text())["result"]
    assert record["refiner"] == "geometry" and record["frames"]["reference_dit_pred_frames"] == 4 * 12 - 3
    assert record["freeze_frame"] == 20 and "geometry refiner" in record["note"]


@pytest.mark.parametrize("traj,flags,T", [
    (CIRCLE, [], 301),                                    # 24 frames bounce to max(ceil(240/0.8)+1, 121)
    (ZOOM, [], 121),                                      # a dolly bounces to 121
    (CIRCLE, ["--disable_adaptive_frame"], 24),
    (CIRCLE, ["--freeze_repeat", "5", "--freeze_frame", "3", "--disable_adaptive_frame"], 29),
    (CIRCLE, ["--rotation_only", "--relative_to_source", "--freeze_repeat", "10", "--disable_adaptive_frame"], 34),
    (ZOOM, ["--rotation_only", "--freeze_repeat", "110"], 134),                            # 134 >= 121
])
def test_frame_counts_and_poses_follow_the_reference_rules(tmp_path, videos, monkeypatch, traj, flags, T):
    spy = PoseSpy(monkeypatch)
    assert run(tmp_path, videos, traj, *flags) == 0
    out = tmp_path / "out" / VERSION_0
    assert counts(out, 0) == {"pred": T, "source": T, "render": T, "mask": T}
    freeze = int(flags[flags.index("--freeze_repeat") + 1]) if "--freeze_repeat" in flags else 0
    ff = int(flags[flags.index("--freeze_frame") + 1]) if "--freeze_frame" in flags else None
    keys, src = read_keys(traj), torch.eye(4).repeat(24, 1, 1)
    src[:, 0, 3] = torch.from_numpy(np.linspace(0, 0.05, 24)).float()
    frozen = freeze_indices(24, freeze, ff)
    native = target_c2w(keys, src[frozen], relative_to_source="--relative_to_source" in flags,
                        rotation_only="--rotation_only" in flags)
    chain = dataset_frames(24, freeze_repeat=freeze, freeze_frame=ff, adaptive="--disable_adaptive_frame" not in flags,
                           total_angle_deg=keys.total_angle_deg())
    got_src, got_tgt = spy.poses()
    torch.testing.assert_close(got_tgt, native[chain.render_index], atol=1e-6, rtol=0)
    torch.testing.assert_close(got_src, src[chain.source_index], atol=1e-6, rtol=0)
    extrinsics = torch.load(out / "extrinsics_0.pt")
    radius = 2.0                                                                       # frame-0 nearest depth
    expected = dataset_reference_w2c(keys, T, radius, rotation_only="--rotation_only" in flags)
    assert extrinsics.shape == (1, T, 4, 4) and extrinsics.dtype == torch.float32
    torch.testing.assert_close(extrinsics[0], torch.from_numpy(expected).float(), atol=1e-5, rtol=0)


def test_a_corrupt_video_is_reported_and_the_others_finish(tmp_path, videos, capsys):
    folder = tmp_path / "in"
    make_video(folder, "a_good", seed=2)
    (folder / "b_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    make_video(folder, "c_good", seed=3)
    assert run(tmp_path, folder, CIRCLE, "--disable_adaptive_frame") == 1
    out = tmp_path / "out" / VERSION_0
    assert counts(out, 0)["pred"] == 24 and counts(out, 2)["pred"] == 24
    assert not list(out.glob("1-*")) and not list(out.glob(".*tmp"))
    run_json = json.loads((out / "run.json").read_text())
    assert [v["status"] for v in run_json["videos"]] == ["ok", "failed", "ok"] and not run_json["ok"]
    assert "b_broken.mp4: failed" in capsys.readouterr().err


def test_render_stretches_a_wide_video_like_the_reference_whatever_scenes_fit_says(tmp_path):
    frame = np.zeros((H // 2, 3 * W // 2, 3), np.uint8)                              # 3:1, 2x the working aspect
    third = frame.shape[1] // 3
    frame[:, :third, 0] = frame[:, third:2 * third, 1] = frame[:, 2 * third:, 2] = 220
    folder = tmp_path / "in"
    folder.mkdir()
    with VideoWriter(folder / "wide.mp4", fps=24, width=frame.shape[1], height=frame.shape[0]) as writer:
        writer.write_frames(np.repeat(frame[None], 5, 0))
    assert run(tmp_path, folder, CIRCLE, "--disable_adaptive_frame", "--set", "scenes.fit=crop") == 0
    with av.open(str(tmp_path / "out" / VERSION_0 / "0-source_video_rank0.mp4")) as container:
        row = next(container.decode(video=0)).to_ndarray(format="rgb24")[H // 2].astype(int)   # [W, 3]
    for c, x in enumerate((W // 6, W // 2, 5 * W // 6)):                              # all three thirds are there
        assert row[x, c] > 180, (x, row[x].tolist())


def test_a_second_run_reuses_finished_videos(tmp_path, videos):
    assert run(tmp_path, videos, CIRCLE, "--disable_adaptive_frame") == 0
    out = tmp_path / "out" / VERSION_0
    stamp = (out / "0-pred_video_rank0.mp4").stat().st_mtime_ns
    assert run(tmp_path, videos, CIRCLE, "--disable_adaptive_frame") == 0
    assert (out / "0-pred_video_rank0.mp4").stat().st_mtime_ns == stamp
    assert json.loads((out / "run.json").read_text())["videos"][0]["reused"] is True
    assert run(tmp_path, videos, CIRCLE, "--disable_adaptive_frame", "--freeze_repeat", "2") == 0   # settings changed
    assert json.loads((out / "run.json").read_text())["videos"][0]["reused"] is False
    assert counts(out, 0)["pred"] == 26


def test_two_gloo_ranks_split_the_folder_once_each(tmp_path):
    folder = tmp_path / "in"
    for i in range(3):
        make_video(folder, f"v{i}", n=12, seed=10 + i)
    env = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK") if k in os.environ}
    try:
        code = run(tmp_path, folder, CIRCLE, "--disable_adaptive_frame", "--step3_nproc", "2",
                   "--master_port", str(29600 + os.getpid() % 300), "--device", "cpu")
    finally:
        os.environ.update(env)
    assert code == 0
    out = tmp_path / "out" / VERSION_0
    preds = sorted(p.name for p in out.glob("*-pred_video_rank*.mp4"))
    assert preds == ["0-pred_video_rank0.mp4", "1-pred_video_rank1.mp4", "2-pred_video_rank0.mp4"]
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["world_size"] == 2
    assert sorted(Path(v["video"]).name for v in run_json["videos"]) == ["v0.mp4", "v1.mp4", "v2.mp4"]
    assert [v["rank"] for v in run_json["videos"]] == [0, 1, 0]


@pytest.mark.parametrize("backend", ["ply", "gpu"], ids=["ply_backend", "realtime_backend"])
def test_other_render_backends_give_the_same_frame_program(tmp_path, backend):
    make_video(tmp_path / "in", "clip", n=12, seed=5)
    assert run(tmp_path, tmp_path / "in", CIRCLE, "--disable_adaptive_frame", "--render_backend", backend) == 0
    out = tmp_path / "out" / VERSION_0
    assert counts(out, 0) == {"pred": 12, "source": 12, "render": 12, "mask": 12}
    with av.open(str(out / "0-mask_video_rank0.mp4")) as container:
        mask = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert 0.5 < (mask > 127).mean() <= 1.0           # most of the slanted plane stays in view


def test_block_renders_share_the_whole_videos_depth_normaliser():
    """The engine renders in blocks; with the reference rules every block equals the same frames of
    the reference's one-batch render of the whole native video."""
    from runtime.worker import SceneTensors
    from scenes.render import reference_K, render_views
    from scenes.scene import Scene
    n, g = 20, torch.Generator().manual_seed(0)
    frames = torch.randint(0, 255, (n, 24, 40, 3), generator=g, dtype=torch.uint8)
    depth = 1.0 + 4 * torch.rand(n, 24, 40, generator=g)
    depth[7, :3] = 50.0                                                                # one far band sets the max
    K = torch.tensor([[30.0, 0, 20.0], [0, 30.0, 12.0], [0, 0, 1]]).expand(n, 3, 3).clone()
    scene = Scene(frames=frames, depth=depth, K=K, c2w=torch.eye(4).expand(n, 4, 4).clone(), fps=24.0)
    tgt = torch.eye(4).repeat(n, 1, 1)
    tgt[:, 0, 3] = torch.linspace(-0.3, 0.3, n)
    reference = render_outputs.ReferenceRender(SceneTensors(scene, torch.device("cpu")), "warper")
    reference.set_video(range(n), tgt)
    blocks = [reference.render(tuple(range(s, min(s + 12, n))), tgt[s:s + 12].numpy()) for s in (0, 12)]
    whole, whole_mask = render_views(frames, depth, reference_K(K[0], 40, 24), scene.c2w, tgt)
    assert torch.equal(torch.cat([b[0] for b in blocks]), whole)
    assert torch.equal(torch.cat([b[1] for b in blocks]), whole_mask)
    alone = render_views(frames[12:], depth[12:], reference_K(K[0], 40, 24), scene.c2w[12:], tgt[12:])[0]
    assert not torch.equal(alone, whole[12:])                                          # the normaliser matters


class BlockRefiner:
    """Frame bookkeeping of the DiT refiner without its weights: `first` frames in the first block
    (9 for the Wan VAE, 12 for the TAE), 12 after; the TAE's first block returns 3 frames fewer."""
    name = "dit"

    def __init__(self, first: int):
        self.first, self.blocks = first, 0

    def reset(self) -> None:
        self.blocks = 0

    def frames_for_block(self, first: bool) -> int:
        return self.first if first else 12

    def refine(self, block):
        trim = 3 if self.blocks == 0 and self.first == 12 else 0
        self.blocks += 1
        return block.render[trim:].cpu()


@pytest.mark.parametrize("first,script_frames", [(9, 45), (12, 48)], ids=["wan_vae", "tae"])
def test_block_refiner_predicts_4L_minus_3_frames_and_conditioning_keeps_T(tmp_path, monkeypatch, first,
                                                                           script_frames):
    """T = 45: L = 12, L' = 12, so 4L' - 3 = 45 predicted frames; the TAE's script is 4L' = 48
    frames, padded with the last frame, the VAE's 9 + 3 * 12 = 45."""
    import cli.render.command as render_cmd
    monkeypatch.setattr(render_cmd, "refiner_factory", lambda choice: lambda cfg, device, scene: BlockRefiner(first))
    make_video(tmp_path / "in", "clip", n=45, seed=6)
    assert run(tmp_path, tmp_path / "in", CIRCLE, "--disable_adaptive_frame") == 0
    out = tmp_path / "out" / VERSION_0
    assert counts(out, 0) == {"pred": 45, "source": 45, "render": 45, "mask": 45}
    result = json.loads((out / "0-run_rank0.json").read_text())["result"]
    assert result["refiner"] == "dit" and result["script_frames"] == script_frames and result["note"] is None


def test_block_refiner_drops_the_trailing_partial_block(tmp_path, monkeypatch):
    import cli.render.command as render_cmd
    monkeypatch.setattr(render_cmd, "refiner_factory", lambda choice: lambda cfg, device, scene: BlockRefiner(9))
    make_video(tmp_path / "in", "clip", n=24, seed=7)
    assert run(tmp_path, tmp_path / "in", CIRCLE, "--disable_adaptive_frame") == 0
    assert counts(tmp_path / "out" / VERSION_0, 0) == {"pred": 21, "source": 24, "render": 24, "mask": 24}


def test_skip_step1_takes_captions_from_the_reference_new_json(tmp_path):
    folder = tmp_path / "in"
    make_video(folder, "clip", n=12, seed=8)
    entry = {"video_path": str(folder / "clip.mp4"), "vggt_depth_path": "x", "vggt_extrinsics_path": "x/e.txt",
             "radius_ratio": 1, "text": "a bartender pours a martini"}
    (folder / "new.json").write_text(json.dumps([entry]))
    assert run(tmp_path, folder, CIRCLE, "--disable_adaptive_frame", "--skip_step1", prompt=None) == 0
    record = json.loads((tmp_path / "out" / VERSION_0 / "0-run_rank0.json").read_text())
    assert record["result"]["caption"] == "a bartender pours a martini"
    assert json.loads((folder / "new.json").read_text()) == [entry]                 # step 1 skipped: untouched


@pytest.mark.parametrize("flags,message", [
    (["--render_backend", "splat"], "--render_backend splat"),
    (["--refiner", "best"], "--refiner best"),
    (["--checkpoint_path", "weights.safetensors"], "--checkpoint_path"),
])
def test_bad_flags_are_one_line_errors(tmp_path, videos, capsys, flags, message):
    assert run(tmp_path, videos, CIRCLE, *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not (tmp_path / "out").exists()
