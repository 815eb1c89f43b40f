"""Flow-matching tables and formulas against shared/parity/scheduler.json: all bitwise."""
import json

import pytest
import torch

from model.scheduler import FlowMatchSchedule, add_noise, float32_ramp

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@pytest.fixture(scope="module")
def golden(parity_dir):
    return json.loads((parity_dir / "scheduler.json").read_text())


def tensor(values, dtype: str) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).to(DTYPES[dtype])   # stored as exact decimal doubles


def test_tables_are_bitwise(golden):
    schedule = FlowMatchSchedule.create()
    assert torch.equal(schedule.sigmas, tensor(golden["sigmas"], "float32"))
    assert torch.equal(schedule.timesteps, tensor(golden["timesteps"], "float32"))


def test_ramp_is_torch_linspace():
    # the rule of parity README §1 is what torch.linspace computes on CPU; naive ramps are not
    assert torch.equal(float32_ramp(1000), torch.linspace(1.0, 0.0, 1001)[:-1])
    assert not torch.equal(float32_ramp(1000), 1 - torch.arange(1000, dtype=torch.float32) / 1000)


def test_warped_steps(golden):
    schedule = FlowMatchSchedule.create()
    steps = schedule.warped_steps(tuple(golden["denoising_step_list_config"]))
    assert steps.dtype == torch.float32
    assert torch.equal(steps, tensor(golden["warped_step_list"], "float32"))
    assert schedule.index(steps).tolist() == golden["warped_step_indices"]
    assert [schedule.sigma(t) for t in steps.tolist()] == golden["warped_sigmas"]


def test_add_noise_examples(golden):
    schedule = FlowMatchSchedule.create()
    for ex in golden["add_noise_examples"]:
        t = tensor(ex["timestep"], ex["timestep_dtype"])
        x0, noise = tensor(ex["x0"], ex["dtype"]), tensor(ex["noise"], ex["dtype"])
        assert schedule.index(t).tolist() == ex["sigma_index"]
        out = schedule.add_noise(x0, noise, t)
        assert out.dtype == DTYPES[ex["out_dtype"]]
        assert torch.equal(out, tensor(ex["out"], ex["out_dtype"]))


def test_flow_to_x0_examples(golden):
    schedule = FlowMatchSchedule.create()
    for ex in golden["flow_to_x0_examples"]:
        t = tensor(ex["timestep"], ex["timestep_dtype"])
        flow, xt = tensor(ex["flow"], ex["dtype"]), tensor(ex["xt"], ex["dtype"])
        assert schedule.index(t, torch.float64).tolist() == ex["sigma_index"]
        x0 = schedule.flow_to_x0(flow, xt, t)
        assert x0.dtype == DTYPES[ex["x0_dtype"]]
        assert torch.equal(x0, tensor(ex["x0"], ex["x0_dtype"]))


def test_scalar_sigma_matches_per_sample_path():
    # the sampler passes sigma as a Python float; it must equal the tensor path bit for bit
    schedule = FlowMatchSchedule.create()
    g = torch.Generator().manual_seed(0)
    x0, noise = (torch.randn(4, 16, 8, 12, generator=g).bfloat16() for _ in range(2))
    for t in schedule.warped_steps().tolist():
        per_sample = schedule.add_noise(x0, noise, torch.full((4,), t))
        assert torch.equal(add_noise(x0, noise, schedule.sigma(t)), per_sample)
