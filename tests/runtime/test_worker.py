"""The generation worker's stage times: in order, and on CUDA taken from events without a stall."""
import time

import numpy as np
import pytest
import torch

from runtime.worker import StageClock


def timed(device: str) -> list[tuple[str, float]]:
    clock = StageClock(torch.device(device))
    x = torch.randn(512, 512, device=device)
    for stage in ("render", "encode", "dit", "decode"):
        for _ in range(20):
            x = x @ x / 512                         # real work between the marks
        clock.mark(stage)
    x.cpu()                                         # the block's one wait
    return clock.times()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_stage_times_are_ordered_host_times(device):
    before = time.perf_counter()
    times = timed(device)
    after = time.perf_counter()
    assert [s for s, _ in times] == ["start", "render", "encode", "dit", "decode"]
    values = [t for _, t in times]
    assert all(isinstance(t, float) for t in values) and values == sorted(values)
    assert before <= values[0] and values[-1] <= after + 1e-3


def tiny_dit_worker():
    """(worker, refiner): the tiny DiT with TAEHV on a 24-frame random scene, on the CPU, not started."""
    from model.config import ModelConfig
    from model.dit import DiTConfig
    from model.dit_refiner import random_dit_refiner
    from runtime.worker import GenerationWorker, SceneTensors
    from scenes.scene import Scene

    n, h, w = 24, 64, 96
    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[80.0, 0, w / 2], [0, 80.0, h / 2], [0, 0, 1]]).expand(n, 3, 3).clone()
    scene = Scene(frames=torch.randint(0, 255, (n, h, w, 3), generator=g, dtype=torch.uint8),
                  depth=torch.full((n, h, w), 3.0), K=K, c2w=torch.eye(4).expand(n, 4, 4).clone(), fps=24.0)
    refiner = random_dit_refiner(ModelConfig(use_tae=True, source_latent_cache_mb=64), "cpu", (h // 8, w // 8),
                                 seed=1, dit_cfg=DiTConfig.tiny())
    return GenerationWorker(SceneTensors(scene, torch.device("cpu")), refiner, on_block=lambda block: None), refiner


def test_run_block_passes_the_source_indices_so_the_dit_reuses_source_latents_on_a_replay():
    from runtime.worker import BlockRequest
    worker, refiner = tiny_dit_worker()
    request = BlockRequest(block_id=0, source_indices=tuple(range(12)), target_c2w=np.eye(4)[None].repeat(12, 0),
                           restart=True, input_sampled_s=0.0, command_tick=0)
    worker.run_block(request)
    assert {k: v for k, v in refiner.source_cache.stats().items() if k != "mib"} == {"hits": 0, "misses": 1, "entries": 1}
    worker.run_block(request)                                   # restart + the same frames: a replay
    assert refiner.source_cache.hits == 1


def test_an_idle_worker_prepares_the_hinted_block_and_a_request_comes_first():
    """Hints run only when no request waits; a hint for a block already requested is stale."""
    from runtime.worker import BlockRequest, LatestMailbox, PrepareHint
    worker, refiner = tiny_dit_worker()

    def request(block_id, first):
        return BlockRequest(block_id=block_id, source_indices=tuple(range(first, first + 12)),
                            target_c2w=np.eye(4)[None].repeat(12, 0), restart=block_id == 0,
                            input_sampled_s=0.0, command_tick=0)

    assert worker.run_block(request(0, 0)).prepared is False
    worker.run_hint(PrepareHint(1, tuple(range(12, 24))))
    assert worker.run_block(request(1, 12)).prepared is True
    worker.run_hint(PrepareHint(1, tuple(range(12, 24))))          # block 1 is done: stale
    assert not refiner.is_prepared(tuple(range(12, 24)))

    mailbox = LatestMailbox()
    mailbox.hint(PrepareHint(2, tuple(range(12))))
    mailbox.put(request(2, 0))
    assert isinstance(mailbox.take(), BlockRequest) and isinstance(mailbox.take(), PrepareHint)
    assert mailbox.take(timeout=0.01) is None and mailbox.dropped == 0


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_to_host_gives_the_frames_on_the_cpu_pinned_when_they_come_from_cuda(device):
    from runtime.worker import to_host
    frames = torch.randint(0, 255, (12, 48, 80, 3), dtype=torch.uint8, device=device)
    host = to_host(frames)
    torch.cuda.synchronize() if device == "cuda" else None
    assert host.device.type == "cpu" and torch.equal(host, frames.cpu())
    assert host.is_pinned() == (device == "cuda")


@pytest.mark.gpu
def test_scene_tensors_warm_up_handles_a_scene_shorter_than_a_block():
    from runtime.worker import SceneTensors
    from scenes.scene import Scene
    n, h, w = 5, 24, 32                                         # fewer frames than a block: indices wrap
    K = torch.tensor([[30.0, 0, w / 2], [0, 30.0, h / 2], [0, 0, 1]]).expand(n, 3, 3).clone()
    scene = Scene(frames=torch.full((n, h, w, 3), 200, dtype=torch.uint8), depth=torch.full((n, h, w), 2.0), K=K,
                  c2w=torch.eye(4).expand(n, 4, 4).clone(), fps=24.0)
    tensors = SceneTensors(scene, torch.device("cuda"))
    tensors.warm_up()
    render, mask, _ = tensors.render((0, 1), scene.c2w[:2].double().numpy())
    assert mask.all() and (render > 0).all()                    # seen from its own camera: no holes


def test_blocks_carry_the_depth_of_their_render_at_each_frames_pose():
    """With with_depth, a block's depth is the camera z of its render's surfaces at the pose each
    frame was generated for: the sample's own depth at the source pose, its exact depth elsewhere."""
    from model.refiners import GeometryRefiner
    from runtime.worker import BlockRequest, GenerationWorker, SceneTensors
    from scenes.config import SampleConfig
    from scenes.sample import SampleRenderer, build_sample_scene
    cfg = SampleConfig(frames=4, fps=24.0, seed=0)
    scene = build_sample_scene(cfg, 104, 60)
    worker = GenerationWorker(SceneTensors(scene, torch.device("cpu")), GeometryRefiner(), on_block=lambda b: None,
                              with_depth=True)
    moved = scene.c2w[2].double().numpy() @ np.array([[1, 0, 0, 0.3], [0, 1, 0, 0], [0, 0, 1, 0.2], [0, 0, 0, 1.0]])
    block = worker.run_block(BlockRequest(block_id=0, source_indices=(1, 2), restart=True, input_sampled_s=0.0,
                                          command_tick=0, target_c2w=np.stack([scene.c2w[1].double().numpy(), moved])))
    assert block.depth.shape == (2, 60, 104) and torch.isfinite(block.depth).all()
    torch.testing.assert_close(block.depth[0], scene.depth[1], rtol=1e-4, atol=0.0)
    with SampleRenderer(104, 60, cfg.seed) as renderer:
        _, truth = renderer.render(moved, 2 / cfg.fps, scene.K[2].numpy())
    close = (block.depth[1] - torch.from_numpy(truth)).abs() < 0.03 * torch.from_numpy(truth)
    assert close.float().mean() > 0.9
