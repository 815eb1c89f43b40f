"""benchmarks/pause_walk: the demo walk plus a pause toggle every N seconds."""
import torch

from benchmarks.pause_walk import with_pauses
from runtime.scripts import demo_walk
from scenes.scene import Scene


def test_the_walk_toggles_pause_every_period_and_keeps_walking():
    n, h, w = 4, 36, 64
    scene = Scene(frames=torch.zeros(n, h, w, 3, dtype=torch.uint8), depth=torch.full((n, h, w), 3.0),
                  K=torch.tensor([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]]).expand(n, 3, 3).clone(),
                  c2w=torch.eye(4).expand(n, 4, 4).clone(), fps=24.0)
    walk = with_pauses(demo_walk, every_s=0.5)(scene, seconds=10, tick_hz=60, min_seen=0.9)
    plain = demo_walk(scene, seconds=10, tick_hz=60, min_seen=0.9)
    cmds = [walk.poll() for _ in range(121)]
    toggles = [i for i, c in enumerate(cmds) if c.time.toggle_pause]
    assert toggles == [29, 59, 89, 119]                       # every 30th tick: 0.5 s at 60 Hz
    assert all(c.camera == plain.poll().camera for c in cmds)
