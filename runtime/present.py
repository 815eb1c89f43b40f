"""Presenters: the only windowing/GL code. `WindowPresenter` shows frames in a pygame window through a
moderngl texture with a HUD; `HeadlessPresenter` writes them to an MP4 and a contact sheet."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from runtime.gl_interop import CudaTextureUploader, make_uploader
from scenes.video import BackgroundVideoWriter, write_contact_sheet

QUAD_VS = """
#version 330
in vec2 in_pos;
out vec2 uv;
void main() { uv = vec2(in_pos.x * 0.5 + 0.5, 0.5 - in_pos.y * 0.5); gl_Position = vec4(in_pos, 0.0, 1.0); }
"""
QUAD_FS = """
#version 330
uniform sampler2D tex;
in vec2 uv;
out vec4 color;
void main() { color = texture(tex, uv); }
"""


def has_display() -> bool:
    """True when a window can be opened (an X11/Wayland display, or a non-dummy SDL driver)."""
    if os.environ.get("SDL_VIDEODRIVER", "") in ("dummy", "offscreen"):
        return False
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@dataclass
class HudState:
    """What the HUD shows; the session updates it every frame."""
    lines: list[str] = field(default_factory=list)
    visible: bool = True


class HeadlessPresenter:
    """Writes every presented frame to OUT/video.mp4 (H.264 at x264 `preset`, durable: it plays up to
    about a second before a crash or SIGKILL) and keeps a few for the contact sheet
    (OUT/contact_sheet.png, a grid of frames with their timestamps)."""
    accepts_device_frames = False     # encodes from host memory: the worker copies frames to the host

    def __init__(self, out_dir: Path, fps: float, width: int, height: int, sheet_tiles: int = 12,
                 preset: str = "medium"):
        self.out_dir, self.fps, self.sheet_tiles = Path(out_dir), fps, sheet_tiles
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writer = BackgroundVideoWriter(self.out_dir / "video.mp4", fps=fps, width=width, height=height,
                                            preset=preset, durable=True)
        self._sheet: list[tuple[float, np.ndarray]] = []   # every `_stride`-th frame, at most 2 x tiles
        self._stride = 1
        self.frames_presented = 0
        self._ctx = None

    @property
    def ctx(self):
        """An offscreen OpenGL context (EGL) for drawing the world, made on first use."""
        if self._ctx is None:
            import moderngl
            self._ctx = moderngl.create_standalone_context(backend="egl", require=430)
        return self._ctx

    def events(self) -> list:
        """Events of an initialised pygame display (kiosk pads, tests on the dummy driver); none otherwise."""
        import pygame
        return pygame.event.get() if pygame.display.get_init() else []

    def present_texture(self, texture, hud: HudState, read: bool = True) -> np.ndarray:
        """A frame drawn on the GPU (RGBA8 texture, rows top first): read back and written. -> the
        frame uint8 [H, W, 3]"""
        w, h = texture.size
        array = np.frombuffer(texture.read(alignment=1), np.uint8).reshape(h, w, 4)[..., :3].copy()
        self._write(array)
        return array

    def present(self, frame: torch.Tensor, hud: HudState) -> None:
        """frame: uint8 [H, W, 3]."""
        self._write(frame.cpu().numpy())

    def _write(self, array: np.ndarray) -> None:
        self.writer.write(array)
        if self.frames_presented % self._stride == 0:
            self._sheet.append((self.frames_presented / self.fps, array.copy()))
            if len(self._sheet) >= 2 * self.sheet_tiles:     # bounded however long the session runs
                self._sheet, self._stride = self._sheet[::2], self._stride * 2
        self.frames_presented += 1

    def show_status(self, lines: list[str]) -> None:
        """Start-up status: a headless run has nowhere to show it (play prints it)."""

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.release()
        self.writer.finalize()
        if self._sheet:
            keep = np.unique(np.linspace(0, len(self._sheet) - 1, self.sheet_tiles).round().astype(int))
            picked = [self._sheet[i] for i in keep]          # evenly over the whole session, last frame included
            write_contact_sheet(np.stack([f for _, f in picked]), [t for t, _ in picked],
                                self.out_dir / "contact_sheet.png", tile_width=416)


class WindowPresenter:
    """A pygame window with a moderngl context: the frame goes to a texture drawn on a full-screen quad,
    the HUD is text rendered by pygame into a second, blended texture. With a CUDA `device` the frames
    reach the texture through CUDA-OpenGL interop when it works here (see `accepts_device_frames`)."""

    def __init__(self, width: int, height: int, title: str = "roam", out_dir: Path | None = None,
                 fullscreen: bool = False, device: torch.device | str = "cpu"):
        import moderngl
        import pygame
        # SDL makes the window's GL context through EGL, as the offscreen contexts are made (the sample
        # scene's, the headless display's): an EGL context made before a GLX window breaks the GLX
        # context on Mesa (X error BadAccess in glXMakeCurrent, e.g. `play` building the sample first)
        os.environ.setdefault("SDL_VIDEO_X11_FORCE_EGL", "1")
        pygame.init()
        pygame.display.set_caption(title)
        self.pygame, self.moderngl, self.size, self.fullscreen = pygame, moderngl, (width, height), fullscreen
        flags = pygame.OPENGL | pygame.DOUBLEBUF | (pygame.FULLSCREEN if fullscreen else pygame.RESIZABLE)
        try:                                  # swap with the display's refresh where the driver can
            self.surface = pygame.display.set_mode(self.size, flags, vsync=1)
        except pygame.error:
            self.surface = pygame.display.set_mode(self.size, flags)
        if fullscreen:
            pygame.mouse.set_visible(False)
        self.ctx = moderngl.create_context()
        self.ctx.enable(moderngl.BLEND)
        self.ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        self.program = self.ctx.program(vertex_shader=QUAD_VS, fragment_shader=QUAD_FS)
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4")
        self.vao = self.ctx.vertex_array(self.program, [(self.ctx.buffer(quad.tobytes()), "2f", "in_pos")])
        self.frames = make_uploader(self.ctx, self.size, device)
        self.hud_tex = self.ctx.texture(self.size, 4)
        self.font = pygame.font.SysFont("monospace", 16, bold=True)
        self.frames_presented = 0
        self.out_dir = Path(out_dir) if out_dir is not None else Path(".")
        self._screenshot_wanted = False
        self.screenshots: list[Path] = []

    @property
    def accepts_device_frames(self) -> bool:
        """True when frames can stay on the GPU: they are uploaded by CUDA-OpenGL interop."""
        return isinstance(self.frames, CudaTextureUploader)

    def events(self) -> list:
        """Pending window events (keyboard, mouse, pads, close), for the controllers."""
        return self.pygame.event.get()

    def request_screenshot(self) -> None:
        """Save the next presented frame, HUD included, as OUT/screenshot-N.png."""
        self._screenshot_wanted = True

    def present(self, frame: torch.Tensor, hud: HudState) -> None:
        """frame: uint8 [H, W, 3] on the host or the GPU. Uploads, draws the frame and the HUD, swaps."""
        h, w = frame.shape[:2]
        if (w, h) != self.frames.size:
            device = self.frames.device if self.accepts_device_frames else "cpu"
            self.frames.release()
            self.frames = make_uploader(self.ctx, (w, h), device)
        self.frames.upload(frame)
        self._draw(self.frames.texture, hud)
        self.pygame.display.flip()
        self.frames_presented += 1

    def _draw(self, texture, hud: HudState) -> None:
        """The frame texture over the window, the HUD over it, and the screenshot if one is asked for."""
        self.ctx.screen.use()
        self.ctx.viewport = (0, 0, *self.pygame.display.get_window_size())
        self.ctx.clear(0.0, 0.0, 0.0)
        self.ctx.enable(self.moderngl.BLEND)
        texture.use(0)
        self.vao.render(mode=4 + 1)          # TRIANGLE_STRIP
        if hud.visible and hud.lines:
            self._draw_hud(hud.lines)
        if self._screenshot_wanted:
            self._screenshot_wanted = False
            self.screenshots.append(self.screenshot(self.out_dir / f"screenshot-{len(self.screenshots)}.png"))

    def present_texture(self, texture, hud: HudState, read: bool = False) -> np.ndarray | None:
        """A frame drawn on the GPU (texture of this context, rows top first): drawn with the HUD,
        swapped. -> the frame uint8 [H, W, 3] when `read` (for a recording), else None."""
        self._draw(texture, hud)
        array = None
        if read:
            w, h = texture.size
            array = np.frombuffer(texture.read(alignment=1), np.uint8).reshape(h, w, texture.components)[..., :3].copy()
        self.pygame.display.flip()
        self.frames_presented += 1
        return array

    def show_status(self, lines: list[str]) -> None:
        """Before the first frame (warm-up): the lines on a dark window, so it is visibly alive."""
        self.ctx.viewport = (0, 0, *self.pygame.display.get_window_size())
        self.ctx.clear(0.08, 0.08, 0.1)
        self._draw_hud(lines)
        self.pygame.display.flip()

    def _draw_hud(self, lines: list[str]) -> None:
        pg = self.pygame
        overlay = pg.Surface(self.size, pg.SRCALPHA)
        pad, line_h = 8, self.font.get_linesize()
        box_w = max(self.font.size(line)[0] for line in lines) + 2 * pad
        overlay.fill((0, 0, 0, 150), pg.Rect(0, 0, box_w, line_h * len(lines) + 2 * pad))
        for i, line in enumerate(lines):
            overlay.blit(self.font.render(line, True, (255, 255, 255)), (pad, pad + i * line_h))
        self.hud_tex.write(pg.image.tobytes(overlay, "RGBA"))
        self.hud_tex.use(0)
        self.vao.render(mode=4 + 1)

    def toggle_fullscreen(self) -> None:
        self.pygame.display.toggle_fullscreen()
        self.fullscreen = not self.fullscreen

    def screenshot(self, path: Path) -> Path:
        """Save what the window shows now (frame and HUD) as a PNG."""
        w, h = self.pygame.display.get_window_size()
        data = self.ctx.screen.read(viewport=(0, 0, w, h), components=3)
        image = np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3)[::-1]
        surface = self.pygame.image.frombuffer(np.ascontiguousarray(image).tobytes(), (w, h), "RGB")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.pygame.image.save(surface, str(path))
        return path

    def close(self) -> None:
        self.pygame.display.quit()
