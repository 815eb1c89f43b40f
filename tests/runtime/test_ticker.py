"""FixedTicker driven by a fake clock: whole ticks, alpha, and a clamped backlog after a stall."""
import pytest

from runtime.ticker import FixedTicker


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_whole_ticks_and_alpha():
    clock = FakeClock()
    ticker = FixedTicker(60.0, 4, now=clock)
    assert ticker.advance() == (0, 0.0)
    clock.t += 1.5 / 60
    run, alpha = ticker.advance()
    assert run == 1 and alpha == pytest.approx(0.5)
    clock.t += 0.5 / 60
    assert ticker.advance()[0] == 1
    total = 0
    for _ in range(600):                          # 10 s at exactly the tick rate: no drift
        clock.t += 1 / 60
        total += ticker.advance()[0]
    assert total == 600 and ticker.tick == 602 and ticker.dropped_ticks == 0


def test_stall_drops_the_backlog():
    clock = FakeClock()
    ticker = FixedTicker(60.0, 4, now=clock)
    clock.t += 1.0                                # a one-second stall: 60 ticks due
    run, alpha = ticker.advance()
    assert run == 4 and ticker.dropped_ticks == 56 and ticker.stalls == 1
    assert 0.0 <= alpha < 1.0
    clock.t += 1 / 60                             # and then it is back to one tick per tick
    assert ticker.advance()[0] == 1
    assert ticker.stats()["longest_gap_s"] == pytest.approx(1.0)


def test_time_to_next_tick_and_restart():
    clock = FakeClock()
    ticker = FixedTicker(50.0, 2, now=clock)
    clock.t += 0.005
    assert ticker.time_to_next_tick() == pytest.approx(0.015)
    clock.t += 10.0
    ticker.restart()                              # e.g. after loading: the 10 s are forgotten
    assert ticker.advance()[0] == 0 and ticker.dropped_ticks == 0
    with pytest.raises(ValueError):
        FixedTicker(0.0, 4, now=clock)
