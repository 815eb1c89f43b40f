"""cli/play.py start-up: the compiler preload runs only where it pays."""
import sys

import pytest
import torch

from runtime.config import load_config
from cli.play import dit_expected, preload_compiler
from model.dit import DiTConfig


def test_no_preload_without_a_compiled_dit_on_a_gpu():
    dit = load_config(overrides=["runtime.refiner=dit"])
    assert preload_compiler(dit, torch.device("cpu")) is None
    assert preload_compiler(load_config(overrides=["runtime.refiner=geometry"]), torch.device("cuda")) is None
    assert preload_compiler(load_config(overrides=["runtime.refiner=dit", "model.compile=false"]),
                            torch.device("cuda")) is None


def test_auto_expects_the_dit_when_its_weight_files_are_there(tmp_path):
    auto = ["runtime.refiner=auto", f"model.checkpoint_dir={tmp_path}"]
    assert not dit_expected(load_config(overrides=auto))                    # an empty folder: geometry
    assert dit_expected(load_config(overrides=auto), random_dit=DiTConfig.tiny())
    (tmp_path / "Wan2.1-T2V-1.3B").mkdir()
    (tmp_path / "Wan2.1-T2V-1.3B" / "diffusion_pytorch_model.safetensors").touch()
    (tmp_path / "InSpatio-World-1.3B").mkdir()
    (tmp_path / "InSpatio-World-1.3B" / "InSpatio-World-1.3B.safetensors").touch()
    assert dit_expected(load_config(overrides=auto))
    assert not dit_expected(load_config(overrides=["runtime.refiner=geometry", f"model.checkpoint_dir={tmp_path}"]))


@pytest.mark.gpu
def test_preload_starts_cuda_and_imports_the_compiler():
    thread = preload_compiler(load_config(overrides=["runtime.refiner=dit"]), torch.device("cuda"))
    thread.join()
    assert torch.cuda.is_initialized() and "torch._inductor.compile_fx" in sys.modules


def test_a_quick_tap_of_the_kiosk_admin_combination_quits():
    """Ctrl+Alt+Q pressed and released between two ticks (no key held at the tick) still quits."""
    import pygame

    from cli.play import kiosk_inputs
    from controllers.keyboard import PygameKeyboard
    from scenes.scene import Scene
    n, h, w = 4, 36, 64
    scene = Scene(frames=torch.zeros(n, h, w, 3, dtype=torch.uint8), depth=torch.full((n, h, w), 3.0),
                  K=torch.tensor([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]]).expand(n, 3, 3).clone(),
                  c2w=torch.eye(4).expand(n, 4, 4).clone(), fps=24.0)
    cfg = load_config()
    pygame.display.init()
    try:
        pygame.event.clear()
        keyboard = PygameKeyboard(cfg.controllers)
        kiosk = kiosk_inputs(cfg, scene, [keyboard], [keyboard], seconds=None)
        keys = (pygame.K_LCTRL, pygame.K_LALT, pygame.K_q)
        for kind, order in ((pygame.KEYDOWN, keys), (pygame.KEYUP, keys[::-1])):
            for key in order:
                pygame.event.post(pygame.event.Event(kind, key=key, mod=0, unicode="", scancode=0))
        assert not kiosk.poll().app.quit
        for event in pygame.event.get():
            keyboard.handle(event)
        assert kiosk.poll().app.quit
    finally:
        pygame.display.quit()


def test_play_starts_and_plays_without_scipy(cache, tmp_path):
    """Nothing on play's path imports scipy (a warm sample scene): with scipy made unimportable, a
    headless session still plays and writes its files."""
    import subprocess

    from tests.reliability import REPO, cache_flags
    code = ("import sys; sys.modules['scipy'] = None; import main; "
            "sys.exit(main.main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "play", "--headless", "--seconds", "0.5", "--out",
                           str(tmp_path / "out"), *cache_flags(cache)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "video.mp4").is_file() and (tmp_path / "out" / "telemetry.json").is_file()
