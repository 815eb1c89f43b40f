"""The built-in sample scene: a procedural courtyard rendered offscreen with moderngl (EGL, headless),
with exact depth, intrinsics and poses, so `python main.py` shows something real with no video and no
weights, and the tests have ground truth for novel views.

Frames are 5 s at 24 fps of a sideways dolly with slight yaw past crates, pillars, a brick wall and
buildings under a sky dome, while a ball bounces across. Lighting is Lambert plus ambient from a fixed
sun (no specular, no fog), so a surface point has the same colour from every view.

Poses are re-anchored so the first camera is the identity, as depth/pose estimators anchor real
videos: the scene's world frame is the first camera's OpenCV frame, and `render_sample_view` takes
poses in that frame. `scene.meta["up"]` is the gravity-up direction in it.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from scenes.config import SampleConfig, ScenesConfig
from scenes.errors import SceneInputError
from scenes.glcamera import gl_projection_from_K, gl_view_from_c2w, linearize_depth
from scenes.sample_world import (BALL_RADIUS, LIGHT_DIR, ball_center_stage, ball_mesh, ball_model_matrix,
                                 camera_path_stage, make_static_meshes, make_textures)
from scenes.memory import require_memory
from scenes.scene import for_storage, Scene, SceneCache, scene_cache_key

NEAR_M, FAR_M = 0.05, 400.0          # clip planes; the sky dome (150 m) lies well inside
HFOV_DEG = 60.0                      # horizontal field of view of the sample camera
AMBIENT = 0.5                        # share of light that does not depend on the surface normal
CAPTION = ("A sunny courtyard paved with a checkered stone floor, with wooden crates, stone pillars, a red "
           "brick wall and buildings under a blue sky, while a colourful beach ball bounces across the ground.")
GENERATOR_FILES = ("sample.py", "sample_world.py", "glcamera.py")   # their bytes key the cache
SAMPLE_BYTES_PER_PIXEL = 14        # peak memory per pixel of every frame: colour (3) and depth (4), each twice while stored

VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
uniform mat3 normal_to_stage;
in vec3 in_pos;
in vec3 in_normal;
in vec2 in_uv;
out vec3 v_normal;
out vec2 v_uv;
void main() {
    gl_Position = mvp * vec4(in_pos, 1.0);
    v_normal = normal_to_stage * in_normal;
    v_uv = in_uv;
}
"""
FRAGMENT_SHADER = """
#version 330
uniform sampler2D tex;
uniform vec3 light_dir;
uniform float ambient;
uniform float emissive;
in vec3 v_normal;
in vec2 v_uv;
out vec4 f_color;
void main() {
    float lambert = max(dot(normalize(v_normal), light_dir), 0.0);
    float shade = mix(ambient + (1.0 - ambient) * lambert, 1.0, emissive);
    f_color = vec4(texture(tex, v_uv).rgb * shade, 1.0);
}
"""


class SampleRenderError(SceneInputError):
    """The offscreen OpenGL context for the sample scene could not be created."""


# ---------------------------------------------------------------- geometry of the scene frame

def stage_from_scene() -> np.ndarray:
    """Scene frame (the first camera's OpenCV frame) -> stage frame (+y up, ground y = 0). [4, 4]"""
    return camera_path_stage(1)[0]


def sample_intrinsics(width: int, height: int) -> np.ndarray:
    """Pinhole K of the sample camera: square pixels, HFOV_DEG wide, principal point at (W/2, H/2)
    as depth estimators report it. -> float32 [3, 3]"""
    f = 0.5 * width / np.tan(np.radians(HFOV_DEG) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float32)


def sample_poses(cfg: SampleConfig) -> np.ndarray:
    """Camera-to-world poses of the sample's frames in the scene frame (frame 0 = identity).
    -> float32 [N, 4, 4]"""
    c2w = np.linalg.inv(stage_from_scene()) @ camera_path_stage(cfg.frames)
    c2w[0] = np.eye(4)                                  # exact, not identity up to rounding
    return c2w.astype(np.float32)


def sample_up() -> np.ndarray:
    """Gravity-up unit vector in the scene frame. -> [3]"""
    return stage_from_scene()[:3, :3].T @ np.array([0.0, 1.0, 0.0])


def ground_plane() -> tuple[np.ndarray, float]:
    """The ground as (n, d) with n . p + d = 0 for scene-frame points p on it; n points up."""
    n = sample_up()
    origin = np.linalg.inv(stage_from_scene()) @ np.array([0.0, 0.0, 0.0, 1.0])
    return n, float(-n @ origin[:3])


def ball_center(t_s: float) -> np.ndarray:
    """Centre of the bouncing ball at time t, in the scene frame. [3]"""
    p = np.linalg.inv(stage_from_scene()) @ np.append(ball_center_stage(t_s), 1.0)
    return p[:3]


def ball_radius() -> float:
    return BALL_RADIUS


# ---------------------------------------------------------------- renderer

def _create_context():
    import moderngl
    try:
        return moderngl.create_standalone_context(backend="egl")
    except Exception as egl_err:        # moderngl/glcontext raise plain Exception subclasses here
        try:
            return moderngl.create_standalone_context()
        except Exception as err:
            raise SampleRenderError(
                f"cannot create an offscreen OpenGL context for the sample scene (EGL: {egl_err}; "
                f"default: {err}); install Mesa's EGL and GL drivers (apt-get install libegl1 libgl1-mesa-dri)"
            ) from err


class SampleRenderer:
    """Renders the sample scene from any camera at any time, offscreen.

    Use as a context manager (or call release()); each instance owns one GL context."""

    def __init__(self, width: int, height: int, seed: int = 0):
        import moderngl
        self.width, self.height = int(width), int(height)
        self.ctx = _create_context()
        self.prog = self.ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
        self.prog["light_dir"].value = tuple(LIGHT_DIR)
        self.prog["ambient"].value = AMBIENT
        self.textures = {name: self._texture(img, wrap_v=name != "sky") for name, img in make_textures(seed).items()}
        self.meshes = [(m, self._vao(m.vertices)) for m in [*make_static_meshes(seed), ball_mesh()]]
        self.color = self.ctx.texture((self.width, self.height), 4)
        self.depth = self.ctx.depth_texture((self.width, self.height))
        self.fbo = self.ctx.framebuffer(color_attachments=[self.color], depth_attachment=self.depth)
        self.ctx.enable(moderngl.DEPTH_TEST)
        self.ctx.disable(moderngl.CULL_FACE)            # we look at the dome from inside

    def _texture(self, image: np.ndarray, wrap_v: bool):
        import moderngl
        tex = self.ctx.texture((image.shape[1], image.shape[0]), 3, np.ascontiguousarray(image).tobytes())
        tex.build_mipmaps()
        tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)   # no anisotropy: 6x slower on llvmpipe
        tex.repeat_y = wrap_v
        return tex

    def _vao(self, vertices: np.ndarray):
        vbo = self.ctx.buffer(np.ascontiguousarray(vertices, dtype="f4").tobytes())
        return self.ctx.vertex_array(self.prog, [(vbo, "3f 3f 2f", "in_pos", "in_normal", "in_uv")])

    def render(self, c2w: np.ndarray, t_s: float, K: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One view. c2w: [4, 4] OpenCV camera-to-world in the scene frame; t_s: scene time in seconds;
        K: [3, 3] pixel intrinsics (default: sample_intrinsics).
        -> rgb uint8 [H, W, 3], depth float32 [H, W] (camera z in metres, every pixel finite)"""
        K = sample_intrinsics(self.width, self.height) if K is None else np.asarray(K, dtype=np.float64)
        c2w_stage = stage_from_scene() @ np.asarray(c2w, dtype=np.float64)
        view_proj = gl_projection_from_K(K, self.width, self.height, NEAR_M, FAR_M) @ gl_view_from_c2w(c2w_stage)
        self.fbo.use()
        self.ctx.viewport = (0, 0, self.width, self.height)
        self.fbo.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
        for mesh, vao in self.meshes:
            model = ball_model_matrix(t_s) if mesh.name == "ball" else np.eye(4)
            self.prog["mvp"].write((view_proj @ model).T.astype("f4").tobytes())        # GL is column-major
            self.prog["normal_to_stage"].write(np.ascontiguousarray(model[:3, :3].T, dtype="f4").tobytes())
            self.prog["emissive"].value = mesh.emissive
            self.textures[mesh.texture].use(0)
            vao.render()
        rgb = np.frombuffer(self.fbo.read(components=3), dtype=np.uint8).reshape(self.height, self.width, 3)
        window_depth = np.frombuffer(self.depth.read(), dtype=np.float32).reshape(self.height, self.width)
        depth = linearize_depth(window_depth, NEAR_M, FAR_M).astype(np.float32)
        return rgb[::-1].copy(), depth[::-1].copy()                                    # GL rows are bottom-up

    def release(self) -> None:
        self.ctx.release()

    def __enter__(self) -> "SampleRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def render_sample_view(c2w, time_index: float, cfg: SampleConfig = SampleConfig(), width: int = 832,
                       height: int = 480, K=None, renderer: SampleRenderer | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth of the sample scene from any camera at any (fractional) frame index.

    c2w: [4, 4] OpenCV camera-to-world in the scene frame (as in the sample Scene's c2w);
    time_index: frame index at cfg.fps; K: [3, 3] (default: the sample's intrinsics at this size).
    Pass `renderer` (a SampleRenderer of this size and seed) to avoid creating a GL context per call.
    -> rgb uint8 [H, W, 3], depth float32 [H, W] (camera z, metres)"""
    c2w = c2w.detach().cpu().numpy() if isinstance(c2w, torch.Tensor) else np.asarray(c2w)
    K = K.detach().cpu().numpy() if isinstance(K, torch.Tensor) else K
    own = renderer is None
    renderer = SampleRenderer(width, height, cfg.seed) if own else renderer
    try:
        rgb, depth = renderer.render(c2w, time_index / cfg.fps, K)
    finally:
        if own:
            renderer.release()
    return torch.from_numpy(rgb), torch.from_numpy(depth)


# ---------------------------------------------------------------- building the Scene

def sample_settings(cfg: SampleConfig, width: int, height: int) -> dict:
    return {"kind": "sample", "width": width, "height": height, "frames": cfg.frames, "fps": cfg.fps, "seed": cfg.seed}


def build_sample_scene(cfg: SampleConfig, width: int, height: int, progress: bool = False) -> Scene:
    """Render the whole sample. -> Scene with N = cfg.frames frames of width x height"""
    if cfg.frames < 1 or cfg.fps <= 0 or width < 2 or height < 2:
        raise SceneInputError(f"sample scene: need frames >= 1, fps > 0 and a size of at least 2x2, got "
                              f"frames={cfg.frames}, fps={cfg.fps}, size={width}x{height}")
    require_memory(cfg.frames * width * height * SAMPLE_BYTES_PER_PIXEL,
                   f"the sample scene's {cfg.frames} frames at {width}x{height}",
                   "lower scenes.sample.frames or scenes.width/height")
    c2w = sample_poses(cfg)                                                         # [N, 4, 4]
    K = sample_intrinsics(width, height)
    frames = np.empty((cfg.frames, height, width, 3), dtype=np.uint8)
    depth = np.empty((cfg.frames, height, width), dtype=np.float32)
    steps = range(cfg.frames)
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, desc="building the sample scene", unit="frame", file=sys.stderr)
    with SampleRenderer(width, height, cfg.seed) as renderer:
        gl_renderer = renderer.ctx.info.get("GL_RENDERER", "unknown")
        for i in steps:
            frames[i], depth[i] = renderer.render(c2w[i], i / cfg.fps, K)
    meta = {"source": "roam built-in sample scene", "settings": sample_settings(cfg, width, height),
            "up": [float(x) for x in sample_up()], "gl_renderer": gl_renderer}
    return Scene(frames=torch.from_numpy(frames), depth=torch.from_numpy(depth),
                 K=torch.from_numpy(K).expand(cfg.frames, 3, 3).clone(), c2w=torch.from_numpy(c2w),
                 fps=float(cfg.fps), caption=CAPTION, meta=meta)


def generator_hash() -> str:
    """sha256 over the sample generator's source files, so editing them invalidates cached samples."""
    h = hashlib.sha256()
    for name in GENERATOR_FILES:
        h.update((Path(__file__).with_name(name)).read_bytes())
    return "sha256:" + h.hexdigest()


def load_sample_scene(cfg: ScenesConfig, cache_dir: Path | str | None = None, progress: bool = True) -> Scene:
    """The sample at cfg.width x cfg.height with cfg.sample's settings, from the Scene cache
    (`cache_dir`, default cfg.cache_dir), rendered and stored on first use."""
    key = scene_cache_key(generator_hash(), {**sample_settings(cfg.sample, cfg.width, cfg.height), "storage": cfg.storage})
    cache = SceneCache(cache_dir if cache_dir is not None else cfg.cache_dir, cfg.storage)
    return cache.get_or_build(key, lambda: for_storage(build_sample_scene(cfg.sample, cfg.width, cfg.height, progress),
                                                       cfg.storage))
