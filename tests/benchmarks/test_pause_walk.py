"""benchmarks/pause_walk: the demo walk plus a pause toggle every N seconds."""
from benchmarks.pause_walk import with_pauses
from runtime.scripts import demo_walk


def test_the_walk_toggles_pause_every_period_and_keeps_walking():
    walk = with_pauses(demo_walk, every_s=0.5)(seconds=10, tick_hz=60)
    plain = demo_walk(seconds=10, tick_hz=60)
    cmds = [walk.poll() for _ in range(121)]
    toggles = [i for i, c in enumerate(cmds) if c.time.toggle_pause]
    assert toggles == [29, 59, 89, 119]                       # every 30th tick: 0.5 s at 60 Hz
    assert all(c.camera == plain.poll().camera for c in cmds)
