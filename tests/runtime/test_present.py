"""The presenter's frame upload path (pixel buffer objects) on a real EGL context."""
import moderngl
import numpy as np
import pytest

from runtime.gl_interop import TextureUploader


@pytest.mark.parametrize("size", [(80, 48), (17, 9)])       # odd widths need byte alignment
def test_frames_reach_the_texture_through_the_pbo_ring(size):
    ctx = moderngl.create_standalone_context(backend="egl")
    try:
        up = TextureUploader(ctx, size)
        rng = np.random.default_rng(0)
        for _ in range(5):                                      # more frames than PBOs in the ring
            frame = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            up.upload(frame)
            back = np.frombuffer(up.texture.read(alignment=1), dtype=np.uint8).reshape(size[1], size[0], 3)
            assert np.array_equal(back, frame)
        up.release()
    finally:
        ctx.release()


@pytest.fixture
def window(tmp_path, monkeypatch):
    """A real pygame + moderngl window on SDL's offscreen driver (EGL), 160x96."""
    import pygame
    from runtime.present import WindowPresenter
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")
    pygame.display.quit()                             # an earlier test may hold the dummy driver
    try:
        window = WindowPresenter(160, 96, out_dir=tmp_path)
    except (pygame.error, moderngl.Error) as err:   # no EGL / OpenGL here
        pytest.skip(f"no offscreen OpenGL window: {err}")
    yield window
    window.close()


def screen(window) -> np.ndarray:
    """What the window's screen holds now: uint8 [H, W, 3], top row first."""
    w, h = window.window_size
    return np.frombuffer(window.ctx.screen.read(viewport=(0, 0, w, h), components=3), np.uint8).reshape(h, w, 3)[::-1]


def test_the_window_shows_the_status_then_frames_letterboxed_and_saves_screenshots_at_once(window):
    """The status screen draws text on a dark background without counting as a frame (and without a
    frame there is nothing to take a screenshot of); a frame then fills the window; a frame of
    another shape keeps it between black bars; a screenshot is written when asked, with the help."""
    import torch
    from runtime.present import HudState
    window.show_status(["loading the scene"])
    status = screen(window)
    assert window.frames_presented == 0 and window.save_screenshot() is None
    assert status[:8].max() < 40 and status.max() > 200                   # dark, with white text
    window.present(torch.full((96, 160, 3), 120, dtype=torch.uint8), HudState(visible=False))
    assert window.frames_presented == 1 and np.abs(screen(window).astype(int) - 120).max() <= 1
    # one window a process: a second moderngl context after closing the first fails on some drivers
    a_frame_keeps_its_shape_and_a_screenshot_is_written_at_once_with_the_help(window)


def a_frame_keeps_its_shape_and_a_screenshot_is_written_at_once_with_the_help(window):
    import pygame
    import torch
    from controllers.help import help_rows
    from runtime.config import load_config
    from runtime.present import HudState
    hud = HudState(visible=False, help_rows=help_rows(load_config().controllers))
    window.present(torch.full((96, 96, 3), 200, dtype=torch.uint8), hud)   # square frame, 160x96 window
    plain = window.save_screenshot()
    image = pygame.surfarray.array3d(pygame.image.load(str(plain))).transpose(1, 0, 2)   # [H, W, 3]
    assert image.shape == (96, 160, 3)
    assert image[:, :30].max() == 0 and image[:, -30:].max() == 0        # black bars left and right
    assert np.abs(image[:, 40:120].astype(int) - 200).max() <= 1          # the frame, not stretched
    hud.show_help = True                                                  # toggled: shows without a new frame
    window.refresh()
    with_help = window.save_screenshot()
    assert with_help != plain and with_help.is_file()
    helped = pygame.surfarray.array3d(pygame.image.load(str(with_help))).transpose(1, 0, 2)
    assert (np.abs(helped.astype(int) - image).sum(axis=2) > 60).mean() > 0.2   # a dark table over the frame
    the_hud_shows_each_new_text(window)


def the_hud_shows_each_new_text(window):
    """The same HUD text draws the same screen, a new text shows at once, a hidden HUD leaves the frame alone."""
    import torch
    from runtime.present import HudState
    frame = torch.full((96, 160, 3), 60, dtype=torch.uint8)
    window.present(frame, HudState(lines=["fps 30"]))
    first = screen(window)
    window.present(frame, HudState(lines=["fps 30"]))
    assert np.array_equal(screen(window), first)
    window.present(frame, HudState(lines=["fps 30", "time 12/119"]))
    second = screen(window)
    assert (np.abs(second.astype(int) - first).sum(axis=2) > 60).sum() > 20     # the new line is there
    window.present(frame, HudState(lines=["fps 30"], visible=False))
    assert np.abs(screen(window).astype(int) - 60).max() <= 1                  # hidden: the frame alone


def test_the_loading_screen_runs_the_work_on_a_thread_and_a_quit_cancels_it():
    """No window needed: a stand-in presenter records what the loading screen shows."""
    import threading

    from runtime.loading import LoadingCancelled, run_with_loading_screen

    class Screen:
        def __init__(self):
            self.shown = []

        def events(self):
            return ["an event"]

        def show_status(self, lines):
            self.shown.append(lines)

    screen, handled, release = Screen(), [], threading.Event()

    def work(report):
        report("fusing the world")
        release.wait(5)
        return threading.current_thread().name
    release_soon = threading.Timer(0.5, release.set)
    release_soon.start()
    assert run_with_loading_screen(screen, work, handle=handled.append, poll_s=0.05) == "loading"
    assert any(lines[0].startswith("fusing the world (") for lines in screen.shown) and handled
    release.clear()
    with pytest.raises(LoadingCancelled):
        run_with_loading_screen(screen, work, quit_asked=lambda: len(screen.shown) > 3, poll_s=0.05)
    release.set()
    with pytest.raises(ValueError, match="bad video"):
        run_with_loading_screen(screen, lambda report: (_ for _ in ()).throw(ValueError("bad video")))
