"""WorldClock sequences, exactly: play, pause (freeze), reverse, ping-pong, loop, stop, speed,
step, scrub and jump, with discontinuities reported for seeks and loop wraps."""
import pytest

from controllers.commands import TimeCommand
from runtime.config import ClockConfig
from runtime.world_clock import WorldClock


def run(clock, n):
    return [clock.advance().index for _ in range(n)]


def make(n=6, ends="pingpong", src=24.0, out=24.0, **kw):
    return WorldClock(n, src, out, ClockConfig(ends=ends, **kw))


def test_play_and_pingpong_is_the_reference_bounce():
    clock = make(4)
    assert run(clock, 10) == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]      # spec 6.4: ends not repeated
    single = make(1)
    assert run(single, 3) == [0, 0, 0]


def test_pause_is_the_reference_freeze():
    # spec 6.3: [0..f] + [f] x F + [f+1..] with f = 2, F = 3
    clock = make(8)
    seq = run(clock, 3)
    clock.apply(TimeCommand(toggle_pause=True))
    seq += run(clock, 3)
    clock.apply(TimeCommand(toggle_pause=True))
    seq += run(clock, 5)
    assert seq == [0, 1, 2] + [2] * 3 + [3, 4, 5, 6, 7]


def test_reverse_loop_and_stop():
    clock = make(5, ends="loop")
    assert run(clock, 7) == [0, 1, 2, 3, 4, 0, 1]
    clock.apply(TimeCommand(reverse=True))
    frames = [clock.advance() for _ in range(4)]
    assert [f.index for f in frames] == [0, 4, 3, 2] and frames[0].direction == -1
    assert [f.reason for f in frames] == ["", "loop", "", ""]       # the wrap restarts the context
    stop = make(3, ends="stop")
    frames = [stop.advance() for _ in range(5)]
    assert [f.index for f in frames] == [0, 1, 2, 2, 2] and frames[-1].paused


def test_speed_steps_and_clamp():
    clock = make(40, ends="stop")
    clock.apply(TimeCommand(speed_steps=1))                      # 2x
    assert run(clock, 4) == [0, 2, 4, 6]
    clock.apply(TimeCommand(speed_steps=-2))                     # 0.5x
    assert run(clock, 4) == [6, 7, 7, 8]
    clock.apply(TimeCommand(speed_steps=-5))
    assert clock.speed == 0.25
    clock.apply(TimeCommand(speed_steps=9))
    assert clock.speed == 4.0
    clock.set_speed(100.0)
    assert clock.speed == 4.0


def test_source_fps_conversion_is_exact():
    clock = make(100, src=30.0, out=24.0, ends="stop")           # 1.25 source frames per output frame
    assert run(clock, 9) == [0, 1, 2, 3, 5, 6, 7, 8, 10]
    ref = WorldClock(100, 30.0, 24.0, ClockConfig(match_source_fps=False))
    assert run(ref, 4) == [0, 1, 2, 3]                           # the reference: no fps conversion


def test_step_pauses_and_moves_one_frame():
    clock = make(10)
    run(clock, 4)                                                # ... 3
    clock.apply(TimeCommand(step=1))
    frames = [clock.advance() for _ in range(2)]
    assert [f.index for f in frames] == [4, 4] and frames[0].paused and not frames[0].discontinuity
    clock.apply(TimeCommand(step=-1))
    clock.apply(TimeCommand(step=-1))
    assert run(clock, 1) == [2]
    clock.apply(TimeCommand(toggle_pause=True))
    assert run(clock, 2) == [3, 4]


def test_scrub_and_jump_are_discontinuities():
    clock = make(100, src=10.0, out=24.0, match_source_fps=False)
    run(clock, 3)                                                # 0, 1, 2
    clock.apply(TimeCommand(scrub_s=2.0))                        # +20 source frames
    f = clock.advance()
    assert (f.index, f.discontinuity, f.reason) == (22, True, "scrub")
    assert not clock.advance().discontinuity and clock.index == 23
    clock.apply(TimeCommand(scrub_s=-100.0))                     # clamped at the start
    assert clock.advance().index == 0
    clock.apply(TimeCommand(jump_fraction=1.0))
    f = clock.advance()
    assert (f.index, f.discontinuity, f.reason) == (99, True, "jump")
    clock.jump(index=50)
    assert clock.advance().index == 50
    clock.jump(index=51)                                         # an adjacent frame is continuous
    assert not clock.advance().discontinuity
    with pytest.raises(ValueError):
        clock.jump()


def test_peek_predicts_without_changing_anything():
    clock = make(5)
    run(clock, 2)
    assert clock.peek(6) == [2, 3, 4, 3, 2, 1]
    assert run(clock, 6) == [2, 3, 4, 3, 2, 1]
    clock.apply(TimeCommand(toggle_pause=True))
    assert clock.peek(3) == [1, 1, 1]


def test_start_paused_and_bad_arguments():
    clock = WorldClock(5, 24.0, 24.0, ClockConfig(start_paused=True), start_index=3)
    assert run(clock, 3) == [3, 3, 3]
    with pytest.raises(ValueError):
        WorldClock(0, 24.0, 24.0)
    with pytest.raises(ValueError):
        WorldClock(5, 24.0, 24.0, start_index=5)
