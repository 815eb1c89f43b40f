"""Flow-matching noise schedule of the reference (utils/scheduler.py `FlowMatchScheduler`, built by the
wrapper with shift 5, sigma_min 0, extra_one_step, 1000 steps) and the two formulas the sampler uses.

Conventions: `sigma` in [0, 1] is the noise fraction, x_t = (1 - sigma) * x0 + sigma * noise;
`timestep` in [0, 1000] is 1000 * sigma, the value the DiT's sinusoid sees. The model predicts the
flow v = noise - x0, so x0 = x_t - sigma * v.
"""
from dataclasses import dataclass

import torch
from torch import Tensor

DENOISING_STEPS = (1000, 750, 500, 250)  # configs/inference_1.3b.yaml `denoising_step_list`, before warping


def float32_ramp(steps: int) -> Tensor:
    """`torch.linspace(1, 0, steps + 1, dtype=float32)[:-1]` reproduced bit for bit on any device:
    step = float32(-1 / steps); i < half: 1 + step * i, else -step * (steps - i), each rounded once.
    The products and the sum are exact in float64, so the one float32 rounding is the only rounding."""
    step = float(torch.tensor(-1.0 / steps, dtype=torch.float32))
    i = torch.arange(steps, dtype=torch.float64)                                        # [steps]
    ramp = torch.where(i < (steps + 1) // 2, 1.0 + step * i, -step * (steps - i))   # [steps]
    return ramp.to(torch.float32)


def add_noise(x0: Tensor, noise: Tensor, sigma: Tensor | float) -> Tensor:
    """x_t = (1 - sigma) * x0 + sigma * noise in float32 (bf16 operands promote, as in the reference),
    rounded to noise's dtype. sigma: a float or a float32 tensor that broadcasts against x0."""
    return ((1 - sigma) * x0.float() + sigma * noise.float()).to(noise.dtype)


def flow_to_x0(flow: Tensor, xt: Tensor, sigma: Tensor | float) -> Tensor:
    """x0 = x_t - sigma * flow in float64, rounded to flow's dtype (`_convert_flow_pred_to_x0`).
    sigma: a float or a float64 tensor that broadcasts against flow."""
    return (xt.double() - sigma * flow.double()).to(flow.dtype)


@dataclass(frozen=True)
class FlowMatchSchedule:
    """The 1000-entry sigma and timestep tables (float32, CPU) and lookups into them."""
    sigmas: Tensor      # [N] float32, 1.0 down to ~0.005
    timesteps: Tensor   # [N] float32, 1000 * sigmas

    @classmethod
    def create(cls, num_train_timesteps: int = 1000, shift: float = 5.0) -> "FlowMatchSchedule":
        s = float32_ramp(num_train_timesteps)
        sigmas = shift * s / (1 + (shift - 1) * s)      # float32 ops in the reference's order
        return cls(sigmas=sigmas, timesteps=sigmas * num_train_timesteps)

    def index(self, timestep: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """First index minimising |timesteps - t|, the difference taken in `dtype`. [N] -> [N] int64"""
        table = self.timesteps.to(device=timestep.device, dtype=dtype)
        return (table[None] - timestep.to(dtype)[:, None]).abs().argmin(dim=1)

    def sigma(self, timestep: float) -> float:
        """sigma of one timestep, as a Python float holding the exact float32 table value."""
        return float(self.sigmas[self.index(torch.tensor([timestep], dtype=torch.float32))])

    def warped_steps(self, steps: tuple[int, ...] = DENOISING_STEPS) -> Tensor:
        """`warp_denoising_step`: cat(timesteps, [0]) indexed at N - step. -> float32 [len(steps)]
        The default gives [1000, 937.5, 833.3333, 625]."""
        table = torch.cat([self.timesteps, self.timesteps.new_zeros(1)])                # [N + 1]
        return table[len(self.timesteps) - torch.tensor(steps)]                         # [len(steps)]

    def add_noise(self, x0: Tensor, noise: Tensor, timestep: Tensor) -> Tensor:
        """Per-sample noising. x0, noise: [N, ...]; timestep: [N] (0..1000)."""
        sigma = self.sigmas.to(x0.device)[self.index(timestep)]
        return add_noise(x0, noise, sigma.view(-1, *[1] * (x0.dim() - 1)))              # [N, 1, ...]

    def flow_to_x0(self, flow: Tensor, xt: Tensor, timestep: Tensor) -> Tensor:
        """Per-sample x0 from a flow prediction; the lookup and the arithmetic in float64.
        flow, xt: [N, ...]; timestep: [N]."""
        sigma = self.sigmas.to(flow.device, torch.float64)[self.index(timestep, torch.float64)]
        return flow_to_x0(flow, xt, sigma.view(-1, *[1] * (flow.dim() - 1)))            # [N, 1, ...]
