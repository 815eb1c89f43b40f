"""Video I/O on real files written by the tests with PyAV: round trips, odd sizes, rotation metadata,
empty, audio-only, broken and non-video files, the atomic writer and contact sheets."""
import warnings

import av
import numpy as np
import pytest
import torch

from tests.makers import write_audio_only_mp4, write_test_video as write_raw
from scenes.frame_fit import resize_frames
from scenes.video import (VideoDecodeWarning, VideoError, VideoWriter, decode_video, probe_video,
                          write_contact_sheet)


def gradient_frames(n=12, h=48, w=64) -> np.ndarray:
    """Smooth moving gradients with a block: compressible, but every frame differs. uint8 [n, h, w, 3]"""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(n):
        r = 128 + 100 * np.sin((x + 3 * i) / 9.0)
        g = 128 + 100 * np.cos((y - 2 * i) / 7.0)
        b = np.full_like(x, 40.0 + 10 * i)
        f = np.stack([r, g, b], -1)
        f[h // 4: h // 2, w // 4: w // 2] = (250, 250, 250)
        frames.append(f)
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)




def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.float() - b.float()) ** 2).mean().item()
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def test_writer_decoder_round_trip(tmp_path):
    frames = gradient_frames()
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=24, width=64, height=48, crf=16) as writer:
        writer.write_frames(torch.from_numpy(frames))
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    info = probe_video(path)
    assert (info.width, info.height, info.fps, info.num_frames, info.codec) == (64, 48, 24.0, 12, "h264")
    assert info.duration_s == pytest.approx(0.5) and info.rotation_deg == 0 and not info.has_audio
    decoded, fps = decode_video(path, width=64, height=48)
    assert decoded.shape == (12, 48, 64, 3) and decoded.dtype == torch.uint8 and fps == 24.0
    assert psnr(decoded, torch.from_numpy(frames)) > 30.0


def test_decode_resizes_like_the_reference_and_honours_max_frames(tmp_path):
    frames = gradient_frames(n=6, h=90, w=160)
    path = write_raw(tmp_path / "wide.mp4", frames, fps=30)
    decoded, fps = decode_video(path, width=832, height=480, max_frames=4)
    assert decoded.shape == (4, 480, 832, 3) and fps == 30.0
    native, _ = decode_video(path, width=160, height=90)
    expected = torch.nn.functional.interpolate(native.permute(0, 3, 1, 2).float(), size=(480, 832), mode="bilinear",
                                               antialias=True, align_corners=False)
    expected = expected.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(decoded, expected[:4])


def test_small_chunks_give_the_same_frames(tmp_path, monkeypatch):
    import scenes.video as video
    path = write_raw(tmp_path / "v.mp4", gradient_frames(n=7))
    whole, _ = decode_video(path, 32, 24)
    monkeypatch.setattr(video, "CHUNK_PIXELS", 64 * 48 * 2)                # two frames per chunk
    chunked, _ = decode_video(path, 32, 24)
    assert torch.equal(whole, chunked)


def test_odd_sized_input(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 9, 17, 3), dtype=np.uint8)
    path = write_raw(tmp_path / "odd.mp4", frames, pix_fmt="yuv444p")        # yuv420p needs even sizes
    info = probe_video(path)
    assert (info.width, info.height) == (17, 9)
    native, _ = decode_video(path, width=17, height=9)
    assert native.shape == (5, 9, 17, 3)
    assert decode_video(path, width=40, height=30)[0].shape == (5, 30, 40, 3)


def test_writer_pads_odd_sizes_to_even(tmp_path):
    frames = gradient_frames(n=3, h=9, w=17)
    with VideoWriter(tmp_path / "odd.mp4", fps=24, width=17, height=9) as writer:
        writer.write_frames(frames)
    info = probe_video(tmp_path / "odd.mp4")
    assert (info.width, info.height, info.num_frames) == (18, 10, 3)


@pytest.mark.parametrize("rotation, turns", [(90, 1), (-90, 3), (180, 2)])
def test_rotation_metadata_is_applied(tmp_path, rotation, turns):
    frames = np.zeros((3, 48, 64, 3), dtype=np.uint8)
    frames[:, :24, :32] = 255                                               # top-left quadrant white
    path = write_raw(tmp_path / "rot.mp4", frames, rotation=rotation)
    info = probe_video(path)
    assert info.rotation_deg == rotation % 360
    size = (48, 64) if turns % 2 else (64, 48)
    assert (info.width, info.height) == size
    decoded, _ = decode_video(path, width=size[0], height=size[1])
    expected = torch.rot90(torch.from_numpy(frames), turns, dims=(1, 2))   # counter-clockwise quarter turns
    assert (decoded.float() - expected.float()).abs().mean() < 8.0
    bright = decoded[0, ..., 0].float()
    quadrant = {1: bright[32:, :24], 3: bright[:32, 24:], 2: bright[24:, 32:]}[turns]
    assert quadrant.mean() > 200                                            # the white corner moved there


def test_missing_directory_and_non_video_files(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        decode_video(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="not a file"):
        probe_video(tmp_path)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video at all " * 50)
    with pytest.raises(VideoError, match="not a video"):
        decode_video(junk)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="empty.mp4"):
        probe_video(empty)


def test_zero_frame_videos(tmp_path):
    path = write_raw(tmp_path / "zero.mp4", np.zeros((0, 48, 64, 3), dtype=np.uint8))
    with pytest.raises(VideoError, match="no video frames"):
        decode_video(path)

    def garbage(packet):                                                    # a video stream nothing decodes from
        bad = av.Packet(b"\x00\x00\x01\xff" * 8)
        bad.pts, bad.dts, bad.time_base, bad.stream = packet.pts, packet.dts, packet.time_base, packet.stream
        return bad
    path = write_raw(tmp_path / "undecodable.mkv", gradient_frames(n=2), fmt="matroska", mutate=garbage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VideoDecodeWarning)
        with pytest.raises(VideoError, match="zero decodable video frames"):
            decode_video(path)


def test_audio_only_mp4(tmp_path):
    path = tmp_path / "audio.mp4"
    write_audio_only_mp4(path, frames=20)
    with pytest.raises(VideoError, match="audio only"):
        decode_video(path)


def test_corrupt_packets_in_the_middle_are_skipped_with_a_warning(tmp_path):
    def corrupt(packet):
        if packet.pts in (6, 7):
            bad = av.Packet(bytes(np.random.default_rng(int(packet.pts)).integers(0, 256, packet.size, dtype=np.uint8)))
            bad.pts, bad.dts, bad.time_base, bad.stream = packet.pts, packet.dts, packet.time_base, packet.stream
            return bad
        return packet
    path = write_raw(tmp_path / "mid.mp4", gradient_frames(n=16), mutate=corrupt)
    with pytest.warns(VideoDecodeWarning, match=r"frame"):
        decoded, _ = decode_video(path, 64, 48)
    assert 8 <= len(decoded) < 16


def test_truncated_file_keeps_the_good_frames(tmp_path):
    path = write_raw(tmp_path / "fs.mp4", gradient_frames(n=20), container_options={"movflags": "faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.warns(VideoDecodeWarning, match=r"decoded \d+ of the 20 frames"):
        decoded, _ = decode_video(path, 64, 48)
    assert 5 <= len(decoded) < 20


def test_writer_leaves_nothing_on_exception(tmp_path):
    path = tmp_path / "rec.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, fps=24, width=64, height=48) as writer:
            writer.write_frames(gradient_frames(n=3))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_finalize_after_ctrl_c_leaves_a_playable_file(tmp_path):
    path = tmp_path / "rec.mp4"
    writer = VideoWriter(path, fps=24, width=64, height=48)
    with pytest.raises(KeyboardInterrupt):
        try:
            for frame in gradient_frames(n=5):
                writer.write(frame)
            raise KeyboardInterrupt
        finally:
            assert writer.finalize() == path
    assert writer.finalize() == path                                        # idempotent
    assert [p.name for p in tmp_path.iterdir()] == ["rec.mp4"]
    assert len(decode_video(path, 64, 48)[0]) == 5
    with pytest.raises(VideoError, match="after the writer was finalized"):
        writer.write(gradient_frames(n=1)[0])


def test_writer_rejects_wrong_frames_and_empty_recordings(tmp_path):
    writer = VideoWriter(tmp_path / "x.mp4", fps=24, width=64, height=48)
    with pytest.raises(VideoError, match="expected a uint8 frame of shape \\[48, 64, 3\\]"):
        writer.write(np.zeros((48, 64, 3), dtype=np.float32))
    assert writer.finalize() is None and list(tmp_path.iterdir()) == []


def test_contact_sheet(tmp_path):
    import pygame
    frames = gradient_frames(n=5)
    path = write_contact_sheet(frames, [0.0, 0.5, 1.0, 1.5, 2.0], tmp_path / "sheet.png", cols=2)
    sheet = pygame.image.load(str(path))
    assert sheet.get_size() == (2 * 64, 3 * 48)
    pixels = pygame.surfarray.array3d(sheet).transpose(1, 0, 2)             # [H, W, 3]
    assert np.abs(pixels[40:48, 40:64].astype(int) - frames[0, 40:48, 40:64]).max() == 0   # away from the label
    assert not np.array_equal(pixels[2:12, 2:30], frames[0, 2:12, 2:30])   # the label is drawn
    assert np.all(pixels[2 * 48:, 64:] == 16)                              # empty tile stays background
    small = write_contact_sheet(torch.from_numpy(frames), range(5), tmp_path / "small.png", tile_width=32)
    assert pygame.image.load(str(small)).get_size() == (4 * 32, 2 * 24)
    with pytest.raises(VideoError, match="timestamps"):
        write_contact_sheet(frames, [0.0], tmp_path / "bad.png")


def test_resize_frames_is_identity_at_the_same_size():
    frames = torch.from_numpy(gradient_frames(n=2))
    assert resize_frames(frames, 64, 48) is frames


def test_background_writer_encodes_every_frame_in_order_off_the_calling_thread(tmp_path):
    """write() only queues a copy (the caller may reuse its buffer); finalize() drains the queue and
    renames atomically; bad frames fail at once."""
    from scenes.video import BackgroundVideoWriter
    path = tmp_path / "bg.mp4"
    writer = BackgroundVideoWriter(path, fps=24, width=64, height=48, max_queued=2)
    buffer = np.zeros((48, 64, 3), np.uint8)
    for i in range(30):
        buffer[:] = i * 8                                   # reused buffer: the queue must hold copies
        writer.write(buffer)
    with pytest.raises(VideoError, match="uint8 frame of shape"):
        writer.write(np.zeros((10, 10, 3), np.uint8))
    assert not path.exists()                                # only the hidden temporary file so far
    assert writer.finalize() == path and writer.finalize() == path
    with av.open(str(path)) as container:
        means = [f.to_ndarray(format="rgb24").mean() for f in container.decode(video=0)]
    assert len(means) == 30 and np.all(np.diff(means) > 4)  # every frame, in order
    with pytest.raises(VideoError, match="after the writer was finalized"):
        writer.write(buffer)
