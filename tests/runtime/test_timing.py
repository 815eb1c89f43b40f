"""The display's cadence in real time (runtime/timing.next_display_due)."""
from runtime.timing import next_display_due

PERIOD = 1 / 60


def test_frames_on_time_keep_the_cadence_without_drift():
    due = next_display_due(None, 0.001, PERIOD)                     # the first frame, drawn in 1 ms
    assert due == 0.001 + PERIOD
    for k in range(1, 100):                                         # each drawn 3 ms after it was due
        due = next_display_due(due, due + 0.003, PERIOD)
    assert abs(due - (0.001 + 100 * PERIOD)) < 1e-9


def test_a_late_frame_is_caught_up_and_a_slow_display_draws_back_to_back():
    due = 1.0
    assert next_display_due(due, due + 0.4 * PERIOD, PERIOD) == due + PERIOD    # late, but the next slot is ahead
    assert next_display_due(due, due + 1.3 * PERIOD, PERIOD) == due + 1.3 * PERIOD   # past the next slot: at once
    due, finished = 2.0, 2.0 + 2.5 * PERIOD                         # the frame due at 2 s took 2.5 periods
    for _ in range(10):                                             # a display that needs 2.5 periods a frame
        due = next_display_due(due, finished, PERIOD)
        start = max(due, finished)
        assert start == finished                                    # never waits before drawing the next
        finished = start + 2.5 * PERIOD
