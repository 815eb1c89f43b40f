"""Frame pacing with synthetic times: steady 24 fps from 12-frame blocks on a 60 Hz presenter,
and no fast-forward burst after a generation stall or a presenter stall."""
import numpy as np
import pytest

from runtime.config import PacingConfig
from runtime.pacing import JitterBuffer, Pacer, PacingState, decide

PERIOD = 1 / 24
VSYNC = 1 / 60
CFG = PacingConfig()


def simulate(seconds, block_times, presenter_gaps=()):
    """Blocks of 12 frames arrive at `block_times`; the presenter polls every vsync except
    inside `presenter_gaps` [(start, end)]. Returns the present times and the pacer."""
    buf = JitterBuffer()
    pacer = Pacer(buf, PERIOD, CFG)
    pending, shown, seq = sorted(block_times), [], 0
    for k in range(int(seconds / VSYNC)):
        now = 10.0 + k * VSYNC
        while pending and 10.0 + pending[0] <= now:
            pending.pop(0)
            buf.extend((seq + i, None) for i in range(12))
            seq += 12
        if any(a <= now - 10.0 < b for a, b in presenter_gaps):
            continue
        item = pacer.poll(now)
        if item is not None:
            shown.append((now, item[0]))
    return np.array([t for t, _ in shown]), [f for _, f in shown], pacer


def test_steady_playback_is_24_fps_in_order():
    times, frames, pacer = simulate(6.0, [0.5 * i for i in range(12)])
    assert frames == list(range(len(frames)))                  # in order, none skipped
    intervals = np.diff(times)
    assert set(np.round(intervals / VSYNC).astype(int)) <= {2, 3}   # 2/3 pulldown on 60 Hz
    assert len(times) / (times[-1] - times[0] + PERIOD) == pytest.approx(24.0, rel=0.02)
    assert pacer.counts["underruns"] == 0 and pacer.counts["reanchors"] == 0


def test_generation_stall_resumes_without_a_burst():
    blocks = [0.0, 0.5, 1.0, 1.5] + [3.0 + 0.5 * i for i in range(6)]   # nothing from 2.0 s to 3.0 s
    times, frames, pacer = simulate(6.0, blocks)
    intervals = np.diff(times)
    assert pacer.counts["underruns"] == 1 and pacer.counts["resumes"] == 1
    assert intervals.max() > 0.5                               # the stall holds the last frame
    assert intervals.min() >= 2 * VSYNC - 1e-9                 # ...and no burst afterwards
    after = times[times >= 13.0]                               # simulate() starts the clock at 10 s
    assert (after.size - 1) / (after[-1] - after[0]) == pytest.approx(24.0, rel=0.05)
    assert frames == list(range(len(frames)))


def test_presenter_stall_reanchors_instead_of_fast_forwarding():
    times, frames, pacer = simulate(5.0, [0.5 * i for i in range(10)], presenter_gaps=[(2.0, 2.7)])
    intervals = np.diff(times)
    assert pacer.counts["reanchors"] == 1
    assert intervals.min() >= 2 * VSYNC - 1e-9
    assert frames == list(range(len(frames)))                  # late frames are shown, not skipped


def test_decide_directly():
    s = PacingState()
    d = decide(s, buffered=2, now_s=1.0, period_s=PERIOD, cfg=CFG)
    assert not d.present and d.state.rebuffering               # below the 3-frame target
    d = decide(s, buffered=3, now_s=1.0, period_s=PERIOD, cfg=CFG)
    assert d.present and d.event == "start" and d.next_due_s == pytest.approx(1.0 + PERIOD)
    s = d.state
    d = decide(s, buffered=5, now_s=1.0 + PERIOD - 0.02, period_s=PERIOD, cfg=CFG)
    assert not d.present and d.next_due_s == pytest.approx(1.0 + PERIOD)
    d = decide(s, buffered=5, now_s=1.0 + PERIOD - 0.005, period_s=PERIOD, cfg=CFG)   # inside the dead-band
    assert d.present and d.event == ""
    d = decide(s, buffered=5, now_s=9.0, period_s=PERIOD, cfg=CFG)  # very late: re-anchor at now
    assert d.present and d.event == "reanchor" and d.next_due_s == pytest.approx(9.0 + PERIOD)
    d = decide(s, buffered=0, now_s=1.2, period_s=PERIOD, cfg=CFG)
    assert not d.present and d.event == "underrun" and d.state.rebuffering
    d = decide(d.state, buffered=1, now_s=1.3, period_s=PERIOD, cfg=CFG, draining=True)
    assert d.present and d.event == "resume"                   # at the end, play out what is left
    d = decide(s, buffered=CFG.max_buffer_frames + 5, now_s=1.0, period_s=PERIOD, cfg=CFG)
    assert d.drop == 5


def test_jitter_buffer():
    buf = JitterBuffer()
    buf.push("a", {"block": 0})
    buf.extend([("b", None), ("c", None)])
    assert len(buf) == 3 and buf.pop() == ("a", {"block": 0})
    assert buf.drop_oldest(5) == 2 and len(buf) == 0
    with pytest.raises(IndexError):
        buf.pop()
    buf.push("d")
    assert buf.clear() == 1
