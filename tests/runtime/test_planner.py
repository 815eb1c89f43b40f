"""The block planner's decisions (runtime/planner.py): pure, so every case is one call."""
import math

from runtime.planner import MakeTimes, PlanState, frame_locked_due, real_time_due


def state(**changes) -> PlanState:
    base = dict(worker_busy=False, buffered=0, in_flight=0, lead_s=0.0, make_s=math.inf)
    return PlanState(**{**base, **changes})


def test_frame_locked_keeps_the_buffer_and_the_requests_at_the_low_water_mark():
    assert frame_locked_due(state(buffered=3, in_flight=12), low_water=16)
    assert not frame_locked_due(state(buffered=4, in_flight=12), low_water=16)
    assert not frame_locked_due(state(worker_busy=True), low_water=16)      # a request already waits


def test_real_time_plans_one_block_at_a_time_just_in_time():
    assert real_time_due(state(lead_s=0.5, make_s=0.4), margin_s=0.15)      # 0.5 <= 0.55: now
    assert not real_time_due(state(lead_s=0.6, make_s=0.4), margin_s=0.15)  # later: fresher camera input
    assert not real_time_due(state(lead_s=0.0, make_s=0.4, in_flight=12), margin_s=0.15)
    assert not real_time_due(state(lead_s=0.0, worker_busy=True), margin_s=0.15)
    assert real_time_due(state(lead_s=10.0), margin_s=0.15)                 # no make time yet: at once


def test_make_times_keep_prepared_blocks_apart_and_forget_old_ones():
    times = MakeTimes()
    assert times.slowest(False) == math.inf
    times.add(False, 0.30)
    assert times.slowest(True) == 0.30                        # no prepared block yet: the others'
    times.add(True, 0.20)
    assert times.slowest(True) == 0.20 and times.slowest(False) == 0.30
    for _ in range(8):
        times.add(False, 0.25)
    assert times.slowest(False) == 0.25                       # the 0.30 block is no longer recent
