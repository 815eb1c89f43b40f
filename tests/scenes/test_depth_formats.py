"""Depth and camera files against parity/geometry section 6, plus bad-input errors."""
import base64
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from scenes.depth import formats as df
from scenes.errors import SceneInputError


def test_float_rgba_encoding_is_little_endian_bytes(codec_fixture):
    f = codec_fixture["float_rgba"]
    depth = np.array(f["depth_f32"], dtype=np.float32).reshape(f["shape_hw"])
    assert [format(b, "08x") for b in depth.view(np.uint32).ravel()] == f["depth_f32_bits_hex"]
    np.testing.assert_array_equal(df.encode_float_rgba(depth).reshape(-1, 4), f["rgba_u8"])
    assert df.encode_float_rgba(np.ones((1, 1), np.float32)).tolist() == [[[0, 0, 128, 63]]]


def test_float_rgba_png_reads_bit_exact_and_writes_the_same_pixels(codec_fixture, geometry_dir, tmp_path):
    f = codec_fixture["float_rgba"]
    want = np.array(f["decoded_f32"], dtype=np.float32).reshape(f["shape_hw"])
    got = df.read_float_depth_png(geometry_dir / f["file"])
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    df.write_float_depth_png(tmp_path / "d.png", want)
    with Image.open(tmp_path / "d.png") as ours, Image.open(io.BytesIO(base64.b64decode(f["png_base64"]))) as ref:
        assert ours.mode == ref.mode == "RGBA" and ours.size == tuple(f["png_size_wh"])
        np.testing.assert_array_equal(np.array(ours), np.array(ref))
    np.testing.assert_array_equal(df.read_float_depth_png(tmp_path / "d.png").view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("case", ["pi3_two_frames", "pi3_constant"])
def test_pi3_uint16_codec(case, codec_fixture, geometry_dir, tmp_path):
    c = codec_fixture["pi3_uint16"][case]
    depth = np.array(c["input_depth_f32"], dtype=np.float32).reshape(-1, *c["shape_hw"])
    u16, lo, hi = df.encode_pi3(depth)
    np.testing.assert_array_equal(u16.reshape(len(depth), -1), c["uint16"])
    assert (lo, hi) == (c["global_min"], c["global_max"])
    ref_u16, ref_lo, ref_hi = df.read_pi3_depth(geometry_dir / c["folder"])
    np.testing.assert_array_equal(ref_u16, u16)
    assert (ref_lo, ref_hi) == (lo, hi)
    decoded = df.decode_pi3(ref_u16, ref_lo, ref_hi)
    np.testing.assert_allclose(decoded.reshape(len(depth), -1), c["decoded_f64"], rtol=1e-12, atol=0)
    assert decoded[0].min() == c["first_frame_min_decoded"]
    df.write_pi3_depth(tmp_path / case, depth)
    assert (tmp_path / case / "metadata.txt").read_text() == c["metadata_txt"]
    with Image.open(tmp_path / case / "depth" / "000000.png") as img:
        assert img.mode == c["png_mode"]
    np.testing.assert_array_equal(df.read_pi3_depth(tmp_path / case)[0], u16)


def test_camera_text_files(geometry_dir):
    K = df.read_matrix_txt(geometry_dir / "warper_e2e" / "input" / "intrinsic.txt", 3)
    w2c = df.read_matrix_txt(geometry_dir / "source_extrinsic.txt", 4)
    assert K.shape == (5, 3, 3) and w2c.shape == (49, 3, 4)
    assert K[0].tolist() == [[70.3, 0, 40.4], [0, 63.7, 23.8], [0, 0, 1]]


# --- bad input -------------------------------------------------------------------------------

def test_missing_and_wrong_depth_pngs(tmp_path):
    with pytest.raises(SceneInputError, match="not found"):
        df.read_float_depth_png(tmp_path / "none.png")
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(SceneInputError, match="expected a RGBA PNG, found mode RGB"):
        df.read_float_depth_png(tmp_path / "rgb.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(SceneInputError, match="junk.png: not a readable PNG"):
        df.read_float_depth_png(tmp_path / "junk.png")


@pytest.mark.parametrize("meta", ["", "1.0\n", "2.0 1.0\n", "a b\n", "0 nan\n"])
def test_bad_pi3_metadata(tmp_path, geometry_dir, meta):
    shutil.copytree(geometry_dir / "depth_codec" / "pi3_two_frames", tmp_path / "p")
    (tmp_path / "p" / "metadata.txt").write_text(meta)
    with pytest.raises(SceneInputError, match=r"metadata.txt: expected one line '<min> <max>'"):
        df.read_pi3_depth(tmp_path / "p")


def test_pi3_folder_without_pngs(tmp_path):
    (tmp_path / "metadata.txt").write_text("0.5 2.0\n")
    with pytest.raises(SceneInputError, match="no PNG files"):
        df.read_pi3_depth(tmp_path)


@pytest.mark.parametrize("text, match", [
    ("1 2 3\n4 5 6\n", "3 rows of 3 numbers per frame"),
    ("1 2 3 4\n1 2 3 4\n1 2 3 4\n", "3 rows of 3 numbers per frame"),
    ("1 2 x\n", "not a numeric text matrix"),
    ("1 0 0\n0 1 0\n0 0 nan\n", "NaN or inf"),
])
def test_bad_camera_text(tmp_path, text, match):
    (tmp_path / "intrinsic.txt").write_text(text)
    with pytest.raises(SceneInputError, match=match):
        df.read_matrix_txt(tmp_path / "intrinsic.txt", 3)


def test_depth_stage_folder_errors(tmp_path, geometry_dir):
    with pytest.raises(SceneInputError, match="not found"):
        df.read_depth_stage_dir(tmp_path / "none")
    stage = tmp_path / "stage"
    shutil.copytree(geometry_dir / "warper_e2e" / "input", stage)
    (stage / "depth" / "0004.png").unlink()
    with pytest.raises(SceneInputError, match="found 5 and 4"):
        df.read_depth_stage_dir(stage)
    shutil.copy(stage / "depth" / "0003.png", stage / "depth" / "0004.png")
    (stage / "extrinsic.txt").write_text("\n".join((stage / "extrinsic.txt").read_text().splitlines()[:12]) + "\n")
    with pytest.raises(SceneInputError, match="extrinsic.txt has 4 poses for 5 frames"):
        df.read_depth_stage_dir(stage)
