"""Frame upload into the presenter's texture: the plain PBO path with host and tensor frames, the
factory's choice, CUDA-OpenGL interop on a GPU, and the worker keeping frames where they were made."""
import moderngl
import numpy as np
import pytest
import torch

from model.refiners import GeometryRefiner
from runtime.gl_interop import CudaTextureUploader, TextureUploader, make_uploader
from runtime.present import HeadlessPresenter
from runtime.worker import BlockRequest, GenerationWorker, SceneTensors
from tests.runtime.test_session import plane_scene


@pytest.fixture
def ctx():
    ctx = moderngl.create_standalone_context(backend="egl")
    yield ctx
    ctx.release()


def texture_array(uploader) -> np.ndarray:
    w, h = uploader.size
    return np.frombuffer(uploader.texture.read(alignment=1), dtype=np.uint8).reshape(h, w, 3)


def random_frames(n: int, size, device="cpu") -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8).to(device) for _ in range(n)]


def test_plain_uploader_takes_tensor_frames(ctx):
    up = TextureUploader(ctx, (17, 9))
    for frame in random_frames(4, (17, 9)):
        up.upload(frame)
        assert np.array_equal(texture_array(up), frame.numpy())
    up.release()


def test_factory_gives_the_plain_uploader_off_cuda(ctx):
    up = make_uploader(ctx, (32, 24), torch.device("cpu"))
    assert type(up) is TextureUploader
    up.release()


@pytest.mark.skipif(torch.cuda.is_available(), reason="interop may work here")
def test_factory_falls_back_with_one_warning_when_interop_fails(ctx, caplog):
    with caplog.at_level("WARNING", logger="runtime.gl_interop"):
        up = make_uploader(ctx, (32, 24), torch.device("cuda"))
    assert type(up) is TextureUploader and len(caplog.records) == 1
    assert "interop unavailable" in caplog.records[0].getMessage()
    frame = random_frames(1, (32, 24))[0]
    up.upload(frame)
    assert np.array_equal(texture_array(up), frame.numpy())
    up.release()


def worker(keep_on_device: bool, device: str) -> GenerationWorker:
    return GenerationWorker(SceneTensors(plane_scene(), torch.device(device)), GeometryRefiner(),
                            on_block=lambda block: None, keep_on_device=keep_on_device)


def block(worker: GenerationWorker):
    marks = []
    worker._mark = lambda block_id, stage, t: marks.append((stage, t))
    request = BlockRequest(block_id=0, source_indices=(0, 1, 2), target_c2w=np.tile(np.eye(4), (3, 1, 1)),
                           restart=True, input_sampled_s=0.0, command_tick=0)
    return worker.run_block(request).frames, marks


def test_keeping_frames_on_the_device_changes_nothing_on_the_cpu():
    frames, marks = block(worker(True, "cpu"))
    plain, plain_marks = block(worker(False, "cpu"))
    assert frames.device.type == "cpu" and torch.equal(frames, plain)
    assert [s for s, _ in marks] == [s for s, _ in plain_marks] == ["start", "render", "decode"]
    assert [t for _, t in marks] == sorted(t for _, t in marks)


def test_headless_presenter_gets_host_frames(tmp_path):
    from runtime.config import load_config
    from runtime.session import Session
    presenter = HeadlessPresenter(tmp_path, 24, 80, 48)
    session = Session(load_config(), plane_scene(), GeometryRefiner(), presenter, device=torch.device("cpu"))
    assert presenter.accepts_device_frames is False and session.worker.keep_on_device is False


@pytest.mark.gpu
def test_recorder_and_headless_presenter_take_device_frames(tmp_path):
    from runtime.recorder import Recorder
    frame = random_frames(1, (80, 48), "cuda")[0]
    recorder, presenter = Recorder(tmp_path / "rec", 24, 80, 48), HeadlessPresenter(tmp_path / "out", 24, 80, 48)
    recorder.log_frame(frame, 0, np.eye(4))
    presenter.present(frame, None)
    recorder.close()
    presenter.close()
    assert recorder.frames == 1 and presenter.frames_presented == 1 and (tmp_path / "out" / "video.mp4").is_file()


@pytest.mark.gpu
def test_worker_hands_out_finished_device_frames():
    frames, marks = block(worker(True, "cuda"))
    plain, _ = block(worker(False, "cuda"))
    # the CUDA splat sums with float atomics, so two renders may differ by one level in rare pixels
    assert frames.is_cuda and (frames.cpu().int() - plain.int()).abs().max() <= 1
    assert [t for _, t in marks] == sorted(t for _, t in marks)


@pytest.mark.gpu
@pytest.mark.parametrize("size", [(832, 480), (17, 9)])
def test_cuda_frames_reach_the_texture_by_interop(size):
    from benchmarks.gl_interop_check import nvidia_egl_context
    ctx = nvidia_egl_context()
    try:
        up = make_uploader(ctx, size, torch.device("cuda"))
        assert isinstance(up, CudaTextureUploader), "interop fell back to the host path (see the warning)"
        for frame in random_frames(5, size, "cuda") + random_frames(1, size):   # more frames than the ring
            up.upload(frame)
            assert np.array_equal(texture_array(up), frame.cpu().numpy())
        up.release()
        assert up.resources == []
    finally:
        ctx.release()
