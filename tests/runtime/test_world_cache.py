"""The fused world state is built once per scene and fusion settings, then read back from the cache."""
import dataclasses

import torch

from runtime.world_cache import load_or_build_world, world_key
from scenes.config import FusionConfig
from scenes.scene import Scene, load_scene


def small_scene() -> Scene:
    g = torch.Generator().manual_seed(0)
    n, h, w = 6, 24, 32
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, 0, 3] = torch.linspace(0, 0.3, n)
    K = torch.tensor([[30.0, 0, w / 2], [0, 30.0, h / 2], [0, 0, 1]]).expand(n, 3, 3).clone()
    return Scene(frames=torch.randint(0, 255, (n, h, w, 3), generator=g, dtype=torch.uint8),
                 depth=torch.full((n, h, w), 3.0), K=K, c2w=c2w, fps=24.0)


def test_world_is_cached_and_keyed_by_scene_and_settings(tmp_path):
    scene, cfg = small_scene(), FusionConfig()
    built = load_or_build_world(scene, cfg, tmp_path, "cpu")
    files = list((tmp_path / "fused").iterdir())
    assert len(files) == 1
    again = load_or_build_world(scene, cfg, tmp_path, "cpu")
    assert torch.equal(built.xyz, again.xyz) and torch.equal(built.dynamic_bits, again.dynamic_bits)
    assert (again.voxel_shift, again.frames, again.mask_hw) == (built.voxel_shift, built.frames, built.mask_hw)
    assert world_key(scene, dataclasses.replace(cfg, max_points=1000)) != world_key(scene, cfg)
    files[0].write_bytes(b"broken")                                  # a corrupt entry is rebuilt
    assert torch.equal(load_or_build_world(scene, cfg, tmp_path, "cpu").xyz, built.xyz)


def test_a_stored_scene_is_keyed_by_its_content_hash(tmp_path):
    scene = small_scene()
    assert scene.content_hash == ""
    scene.save(tmp_path / "s")
    loaded = load_scene(tmp_path / "s")
    assert scene.content_hash and loaded.content_hash == scene.content_hash
    assert world_key(loaded, FusionConfig()) == world_key(scene, FusionConfig())
    other = small_scene()
    other.frames[0, 0, 0] ^= 1
    other.save(tmp_path / "o")
    assert world_key(other, FusionConfig()) != world_key(scene, FusionConfig())
