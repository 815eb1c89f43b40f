"""The generation worker's stage times: in order, and on CUDA taken from events without a stall."""
import time

import pytest
import torch

from runtime.worker import StageClock


def timed(device: str) -> list[tuple[str, float]]:
    clock = StageClock(torch.device(device))
    x = torch.randn(512, 512, device=device)
    for stage in ("render", "encode", "dit", "decode"):
        for _ in range(20):
            x = x @ x / 512                         # real work between the marks
        clock.mark(stage)
    x.cpu()                                         # the block's one wait
    return clock.times()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_stage_times_are_ordered_host_times(device):
    before = time.perf_counter()
    times = timed(device)
    after = time.perf_counter()
    assert [s for s, _ in times] == ["start", "render", "encode", "dit", "decode"]
    values = [t for _, t in times]
    assert all(isinstance(t, float) for t in values) and values == sorted(values)
    assert before <= values[0] and values[-1] <= after + 1e-3
