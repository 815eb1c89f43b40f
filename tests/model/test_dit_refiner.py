"""The DiT refiner streams blocks through codec, sampler and decoder with the reference's frame counts
and mask grouping (tiny DiT, TAEHV architecture, random weights, CPU)."""
import os

import torch

from model.config import ModelConfig
from model.dit import DiTConfig
from model.dit_refiner import random_dit_refiner
from model.mask import mask_to_latent
from model.refiners import RefineInput
from model.source_cache import same_state
from model.vae import VAEConfig

H, W = 64, 96


def refiner(use_tae: bool, seed: int = 0):
    cfg = ModelConfig(use_tae=use_tae, seed=seed)
    return random_dit_refiner(cfg, "cpu", (H // 8, W // 8), seed=1, dit_cfg=DiTConfig.tiny(), vae_cfg=VAEConfig.tiny())


def block(T: int, seed: int) -> RefineInput:
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 255, (T, H, W, 3), generator=g, dtype=torch.uint8)
    mask = torch.rand(T, H, W, generator=g) > 0.3
    return RefineInput(render=frames, mask=mask, source=frames.flip(0))


def test_tae_stream_yields_9_then_12_frames_and_restarts_on_reset():
    r = refiner(use_tae=True)
    assert r.frames_for_block(True) == 12 and r.frames_for_block(False) == 12
    out = [r.refine(block(12, i)) for i in range(2)]
    assert [o.shape for o in out] == [(9, H, W, 3), (12, H, W, 3)] and out[0].dtype == torch.uint8
    r.reset()
    assert r.refine(block(12, 0)).shape[0] == 9


def test_vae_stream_takes_9_then_12_frames():
    r = refiner(use_tae=False)
    assert (r.frames_for_block(True), r.frames_for_block(False)) == (9, 12)
    assert [r.refine(block(T, i)).shape[0] for i, T in enumerate((9, 12))] == [9, 12]


def test_same_seed_same_frames_other_seed_other_frames():
    a = [refiner(True, seed=5).refine(block(12, 0)) for _ in range(2)]
    b = refiner(True, seed=6).refine(block(12, 0))
    assert torch.equal(a[0], a[1]) and not torch.equal(a[0], b)


def test_tae_mask_latents_follow_the_reference_grouping_of_the_whole_video():
    r = refiner(use_tae=True)
    masks = torch.rand(24, H, W, generator=torch.Generator().manual_seed(3)) > 0.5
    whole = mask_to_latent(masks.float()[None] * 2 - 1, first_block=True)        # [1, 6, 4, h, w]
    got = torch.cat([r._mask_latent(masks[:12], True), r._mask_latent(masks[12:], False)], dim=1)
    assert torch.equal(got, whole[:, :6])


def test_compile_only_where_it_can_run():
    """No compile on the CPU; on CUDA only with Triton (else eager with a warning)."""
    from model.dit_refiner import can_compile
    from torch.utils._triton import has_triton
    assert can_compile(torch.device("cpu")) is False
    if torch.cuda.is_available():
        assert can_compile(torch.device("cuda")) is has_triton()


def scene_blocks(count: int, seed: int = 0) -> tuple[torch.Tensor, list[RefineInput]]:
    """Source frames [24, H, W, 3] and `count` blocks playing them in order (indices 0..11, 12..23, 0..)."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 255, (24, H, W, 3), generator=g, dtype=torch.uint8)
    blocks = []
    for b in range(count):
        idx = tuple((12 * b + i) % 24 for i in range(12))
        render = torch.randint(0, 255, (12, H, W, 3), generator=g, dtype=torch.uint8)
        blocks.append(RefineInput(render=render, mask=torch.rand(12, H, W, generator=g) > 0.3,
                                  source=frames[list(idx)], source_indices=idx))
    return frames, blocks


def test_prepared_blocks_are_the_plain_blocks_bit_for_bit():
    """prepare() runs the source encode and context pass ahead; a right guess is used, a wrong one is
    rewound (encoder state and source cache history) and redone, and the frames never change."""
    frames, blocks = scene_blocks(4)
    r_plain = refiner(True, seed=3)
    plain, plain_states = [], []
    for b in blocks:
        plain.append(r_plain.refine(b))
        plain_states.append(r_plain._source.encoder_state())

    r = refiner(True, seed=3)
    r.prepare(frames[:12], tuple(range(12)))                  # first block: nothing to prepare yet
    assert not r.is_prepared(blocks[0].source_indices)
    got = [r.refine(blocks[0])]
    r.prepare(blocks[1].source, blocks[1].source_indices)     # right guess
    assert r.is_prepared(blocks[1].source_indices)
    got.append(r.refine(blocks[1]))
    assert not r.is_prepared(blocks[1].source_indices)        # used once
    wrong = tuple([5] * 12)                                   # a pause that did not happen
    r.prepare(frames[list(wrong)], wrong)
    assert not r.is_prepared(blocks[2].source_indices)
    got.append(r.refine(blocks[2]))
    assert same_state(r._source.encoder_state(), plain_states[2])
    r.prepare(frames[list(wrong)], wrong)                     # wrong, then replaced by the right guess
    r.prepare(blocks[3].source, blocks[3].source_indices)
    got.append(r.refine(blocks[3]))
    assert all(torch.equal(a, b) for a, b in zip(plain, got))
    assert same_state(r._source.encoder_state(), plain_states[-1])
    assert r.source_cache.stats()["entries"] == r_plain.source_cache.stats()["entries"] + 2   # + the two wrong guesses


def test_warm_up_reports_where_each_block_went_and_forgets_its_blocks():
    r, messages = refiner(True), []
    r.warm_up(H, W, report=messages.append)
    took = [m for m in messages if "took" in m]
    assert len(took) == 2 and all(f"{stage} " in m for m in took for stage in ("encode", "dit", "decode"))
    assert r._first and r.source_cache.position()[0] == 0          # reset: the next block starts fresh


def test_compile_setup_runs_on_the_thread_that_warms_up():
    """Per-thread torch.compile settings (model/inductor_choices.py) must reach the thread that
    compiles: play warms up on its generation thread, not where the refiner was built."""
    import threading
    from model.dit_refiner import DiTRefiner
    built = refiner(True)
    threads = []
    r = DiTRefiner(built.sampler, built.codec, compile_setup=lambda: threads.append(threading.current_thread().name))
    worker = threading.Thread(target=r.warm_up, args=(H, W), name="generation")
    worker.start()
    worker.join()
    assert threads == [threading.current_thread().name, "generation"]


def test_compile_cache_dir_wins_over_the_default_torch_writes_on_import(tmp_path):
    """Importing torch._inductor (play preloads it while the scene loads) writes its /tmp default
    into TORCHINDUCTOR_CACHE_DIR; the configured cache must still be used, or every reboot compiles
    cold. A directory the user chose stays."""
    import subprocess
    import sys
    code = ("import os, importlib, sys; importlib.import_module('torch._inductor.compile_fx');"
            "from model.dit_refiner import use_compile_cache; use_compile_cache(sys.argv[1]);"
            "from torch._inductor.runtime.cache_dir_utils import cache_dir; print(cache_dir())")
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}

    def run(env) -> str:
        return subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], env=env,
                              capture_output=True, text=True, check=True).stdout.strip()
    assert run(env) == str(tmp_path / "cache")
    assert run({**env, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "mine")}) == str(tmp_path / "mine")
    # called first (as play does, before its preload), it neither imports torch._inductor nor is overridden
    code = ("import sys; from model.dit_refiner import use_compile_cache; use_compile_cache(sys.argv[1]);"
            "assert 'torch._inductor' not in sys.modules; import torch._inductor.compile_fx;"
            "from torch._inductor.runtime.cache_dir_utils import cache_dir; print(cache_dir())")
    assert run(env) == str(tmp_path / "cache")
