"""SourceLatentCache is exact: every latent it returns equals, bit for bit, what an uncached stream
gives for the same sequence of source blocks (full-size TAEHV and tiny Wan VAE, random weights,
64x96, CPU float32)."""
import pytest
import torch

from model.config import ModelConfig
from model.dit import DiTConfig
from model.dit_refiner import random_dit_refiner, to_signed
from model.latent_codec import TAECodec, VAECodec
from model.refiners import RefineInput
from model.source_cache import SourceLatentCache
from model.tae import TAEHV, TAEConfig
from model.vae import VAEConfig, WanVAE

H, W, N = 64, 96, 60
UNBOUNDED = 1 << 40                                   # bytes: a budget no test reaches
SCENE = torch.randint(0, 255, (N, H, W, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def run(i: int) -> tuple[int, ...]:
    """Block i of forward play: source frames 12i .. 12i + 11."""
    return tuple(range(12 * i, 12 * i + 12))


def frozen(k: int) -> tuple[int, ...]:
    return (k,) * 12


@pytest.fixture(scope="module")
def tae_codec():
    torch.manual_seed(0)
    return TAECodec(TAEHV(TAEConfig()).eval(), torch.float32)


@pytest.fixture(scope="module")
def vae_codec():
    torch.manual_seed(0)
    return VAECodec(WanVAE(VAEConfig.tiny()).eval(), torch.float32)


def frames(indices) -> torch.Tensor:
    return to_signed(SCENE[list(indices)], "cpu")                               # [1, T, 3, H, W]


def uncached(codec, seq) -> list[torch.Tensor]:
    stream = codec.stream()
    return [stream.encode(frames(t)) for t in seq]


def cached(codec, cache, seq, stream=None) -> list[torch.Tensor]:
    """Encode seq through the cache; None in seq is a reset (returns no latent for it)."""
    stream = stream or codec.stream()
    out = []
    for t in seq:
        if t is None:
            stream.reset()
            cache.reset()
        else:
            out.append(cache.encode(stream, frames(t), t))
    return out


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_a_replay_after_a_reset_hits_and_gives_the_uncached_latents_then_continues_exactly(tae_codec):
    cache = SourceLatentCache(UNBOUNDED)
    seq = [run(0), run(1), run(2)]
    first = cached(tae_codec, cache, seq)
    assert (cache.hits, cache.misses) == (0, 3)
    stream = tae_codec.stream()
    replay = cached(tae_codec, cache, [None, *seq, run(3)], stream)             # run(3): a miss after 3 hits
    assert (cache.hits, cache.misses) == (3, 4)
    want = uncached(tae_codec, [*seq, run(3)])
    assert same(first, want[:3]) and same(replay, want)                         # run(3) saw the restored state


def test_the_same_tuple_after_another_history_misses_and_is_encoded_from_its_own_history(tae_codec):
    cache = SourceLatentCache(UNBOUNDED)
    after_play = cached(tae_codec, cache, [run(0), run(1)])[1]
    alone = cached(tae_codec, cache, [None, run(1)])[0]                         # run(1) straight after a reset
    assert cache.hits == 0 and cache.misses == 3
    assert torch.equal(alone, uncached(tae_codec, [run(1)])[0])
    assert not torch.equal(alone, after_play)          # the history matters: a plain tuple key would be wrong


@pytest.mark.parametrize("codec_name, pause", [("tae", 6), ("vae", 12)])
def test_a_pause_hits_once_the_encoder_state_settles_and_stays_exact(codec_name, pause, request):
    """The TAE's encoder state reaches back 30 frames, so it settles after 3 frozen blocks and the
    5th hits; the Wan VAE's reaches back much farther (settles after 9 here)."""
    codec = request.getfixturevalue(f"{codec_name}_codec")
    first = run(0)[:9] if codec_name == "vae" else run(0)          # the VAE's first block takes 9 frames
    seq = [first, run(1), *[frozen(23)] * pause, run(2)]           # play, pause on frame 23, play on
    cache = SourceLatentCache(UNBOUNDED)
    got = cached(codec, cache, seq)
    assert same(got, uncached(codec, seq))
    assert cache.hits >= 2, f"the pause should reach a fixed point and hit: {cache.stats()}"
    misses = cache.misses
    again = cached(codec, cache, [None, *seq])                     # replay from a reset: all hits
    assert same(again, got) and cache.misses == misses


def test_an_unindexed_block_leaves_the_history_unknown(tae_codec):
    cache = SourceLatentCache(UNBOUNDED)
    stream = tae_codec.stream()
    cached(tae_codec, cache, [run(0), run(1)], stream)
    stream.reset()
    cache.reset()
    cache.encode(stream, frames(run(2)), None)                     # e.g. warm-up: not keyed
    got = cache.encode(stream, frames(run(1)), run(1))             # (?, run(1)) must not hit (ROOT+run(0), run(1))
    assert cache.hits == 0 and torch.equal(got, uncached(tae_codec, [run(2), run(1)])[1])


def test_vae_encoder_state_round_trip_includes_the_first_block(vae_codec):
    stream = vae_codec.stream()
    start = stream.encoder_state()
    first = stream.encode(frames(run(0)[:9]))                      # [1, 3, 16, 8, 12]
    mid = stream.encoder_state()
    second = stream.encode(frames(run(1)))
    stream.set_encoder_state(mid)
    assert torch.equal(stream.encode(frames(run(1))), second)
    stream.set_encoder_state(start)                                # empty: the next block is a first block again
    assert torch.equal(stream.encode(frames(run(0)[:9])), first)


def test_dit_refiner_gives_the_same_frames_with_the_cache_on_and_off():
    def refiner(cache_mb):
        cfg = ModelConfig(use_tae=True, seed=3, source_latent_cache_mb=cache_mb)
        return random_dit_refiner(cfg, "cpu", (H // 8, W // 8), seed=1, dit_cfg=DiTConfig.tiny())

    def block(t, seed):
        g = torch.Generator().manual_seed(seed)
        render = torch.randint(0, 255, (12, H, W, 3), generator=g, dtype=torch.uint8)
        return RefineInput(render=render, mask=torch.rand(12, H, W, generator=g) > 0.3,
                           source=SCENE[list(t)], source_indices=t)

    seq = [run(0), run(1), *[frozen(23)] * 5, None, run(0), run(1), frozen(23)]   # 1 pause hit, 3 replay hits
    outputs = {}
    for cache_mb in (0, 64):
        r = refiner(cache_mb)
        outputs[cache_mb] = [r.reset() if t is None else r.refine(block(t, i)) for i, t in enumerate(seq)]
        hits = r.source_cache.hits
    assert hits >= 4, "the pause and the replay should hit"
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(outputs[0], outputs[64]))


def test_the_byte_budget_bounds_the_memory_held_and_evicts_the_least_recently_used(tae_codec):
    one = SourceLatentCache(UNBOUNDED)
    cached(tae_codec, one, [run(0)])
    size = one.bytes                                               # every TAE entry has this size
    assert size > 0
    cache = SourceLatentCache(max_bytes=2 * size)
    cached(tae_codec, cache, [run(i % 4) for i in range(10)])
    assert len(cache) == 2 and cache.bytes == 2 * size
    a, b, c = frozen(1), frozen(2), frozen(3)
    cache.clear()
    cached(tae_codec, cache, [a, None, b, None, a, None, c])       # a used after b: c evicts b
    assert (cache.hits, len(cache)) == (1, 2)
    cached(tae_codec, cache, [None, a, None, b])
    assert cache.hits == 2                                         # a hit, b missed
    small = SourceLatentCache(max_bytes=size - 1)                  # one block does not fit: nothing kept
    cached(tae_codec, small, [run(0), None, run(0)])
    assert (small.hits, len(small), small.bytes) == (0, 0, 0)
    off = SourceLatentCache(0)
    assert same(cached(tae_codec, off, [run(0), None, run(0)]), uncached(tae_codec, [run(0)]) * 2)
    assert (off.hits, len(off)) == (0, 0)
