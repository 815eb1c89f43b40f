"""Novel views by roam's point-cloud path (render_views) against the sample scene's exact render from
the same camera at the same time: PSNR on valid pixels and hole fraction, with thresholds that a
sign or axis error in the camera math would break."""
import math

import numpy as np
import pytest
import torch

from scenes.config import SampleConfig
from scenes.render import render_views
from scenes.sample import SampleRenderer, build_sample_scene

W, H = 208, 120
CFG = SampleConfig(frames=24, fps=24.0, seed=0)


@pytest.fixture(scope="module")
def world():
    scene = build_sample_scene(CFG, W, H)
    renderer = SampleRenderer(W, H, CFG.seed)
    yield scene, renderer
    renderer.release()


def offset(yaw_deg=0.0, pitch_deg=0.0, t=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """A camera-frame offset: rotate (yaw about y, pitch about x), then move by t (metres)."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    Ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = Ry @ Rx, t
    return torch.from_numpy(m).float()


def novel_view(scene, renderer, i: int, target: torch.Tensor) -> tuple[float, float]:
    """(PSNR on valid pixels in dB, hole fraction) of source frame i rendered at `target` (c2w)."""
    render, mask = render_views(scene.frames[i:i + 1], scene.depth[i:i + 1], scene.K[i:i + 1],
                                scene.c2w[i:i + 1], target[None])
    truth, _ = renderer.render(target.numpy().astype(np.float64), i / CFG.fps, scene.K[i].numpy())
    valid = mask[0].numpy()
    err = render[0].numpy().astype(np.float64)[valid] - truth.astype(np.float64)[valid]
    return 10 * math.log10(255.0 ** 2 / max(np.mean(err ** 2), 1e-9)), 1.0 - valid.mean()


def test_the_next_source_pose_is_rendered_like_the_true_frame(world):
    """Frame i re-rendered from frame i+1's camera (at frame i's time, so the ball agrees)."""
    scene, renderer = world
    psnrs = [novel_view(scene, renderer, i, scene.c2w[i + 1])[0] for i in (0, 8, 16)]
    print("sample next-pose PSNR on valid pixels (dB):", [round(p, 1) for p in psnrs])
    assert min(psnrs) > 26.0


@pytest.mark.parametrize("name, move", [
    ("yaw right 6 deg", offset(yaw_deg=6)),
    ("pitch up 4 deg", offset(pitch_deg=4)),
    ("step left 0.3 m", offset(t=(-0.3, 0, 0))),
    ("step forward 0.5 m", offset(t=(0, 0, 0.5))),
    ("orbit-like", offset(yaw_deg=-5, t=(0.25, -0.1, 0.1))),
])
def test_novel_views_match_ground_truth_and_a_sign_error_would_not(world, name, move):
    scene, renderer = world
    i = 12
    target = scene.c2w[i] @ move
    psnr, holes = novel_view(scene, renderer, i, target)
    print(f"{name}: PSNR {psnr:.1f} dB, holes {100 * holes:.1f} %")
    assert psnr > 24.0 and holes < 0.2
    wrong = scene.c2w[i] @ torch.linalg.inv(move)            # the same motion with every sign flipped
    truth_wrong, _ = renderer.render(target.numpy().astype(np.float64), i / CFG.fps, scene.K[i].numpy())
    render_wrong, mask_wrong = render_views(scene.frames[i:i + 1], scene.depth[i:i + 1], scene.K[i:i + 1],
                                            scene.c2w[i:i + 1], wrong[None])
    m = mask_wrong[0].numpy()
    err = render_wrong[0].numpy().astype(np.float64)[m] - truth_wrong.astype(np.float64)[m]
    psnr_wrong = 10 * math.log10(255.0 ** 2 / max(np.mean(err ** 2), 1e-9))
    assert psnr_wrong < psnr - 3.0, f"a sign error would go unnoticed ({psnr_wrong:.1f} vs {psnr:.1f} dB)"
