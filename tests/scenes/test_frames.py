"""Freeze, adaptive frame count and the latent chain against parity/geometry section 3."""
import pytest

from scenes import frames as fm
from scenes.errors import SceneInputError


def test_freeze_indices(frames_fixture):
    cases = frames_fixture["freeze"]
    assert len(cases) == 20
    for c in cases:
        got = fm.freeze_indices(c["N"], c["freeze_repeat"], c["freeze_frame"])
        assert got == c["indices"], c
        assert len(got) == c["length"] == c["render_poses_count"]


def test_freeze_default_is_the_middle_and_repeats_f_plus_one_times():
    assert fm.freeze_indices(5, 2) == [0, 1, 2, 2, 2, 3, 4]
    assert fm.freeze_indices(247, 150).count(123) == 151


def test_out_of_range_freeze_frame_clamps_by_default_and_raises_when_strict():
    assert fm.freeze_indices(5, 4, 10) == [0, 1, 2, 3, 4, 4, 4, 4, 4]
    assert fm.freeze_indices(5, 1, -3) == [0, 0, 1, 2, 3, 4]
    with pytest.raises(SceneInputError, match=r"freeze_frame 10 is outside the clip's frames 0\.\.4"):
        fm.freeze_indices(5, 4, 10, strict=True)
    with pytest.raises(SceneInputError, match="freeze_frame -1"):
        fm.freeze_indices(5, 1, -1, strict=True)
    assert fm.freeze_indices(5, 0, 99, strict=True) == [0, 1, 2, 3, 4]     # no freeze, nothing to check


def test_adaptive_frame_indices(frames_fixture):
    cases = frames_fixture["adaptive"]
    assert len(cases) == 16
    for c in cases:
        args = dict(freeze_repeat=c["freeze_repeat"], freeze_frame=c["freeze_frame"], adaptive=c["adaptive"],
                    total_angle_deg=c["total_angle_deg"])
        if "error" in c:           # N = 1: the reference divides by zero and its loader retries forever
            with pytest.raises(SceneInputError, match="1-frame clip"):
                fm.dataset_frames(c["N"], **args)
            continue
        got = fm.dataset_frames(c["N"], **args)
        assert got.source_index == c["source_frame_index"], c["trajectory"]
        assert got.render_index == c["render_frame_index"], c["trajectory"]
        assert len(got.render_index) == c["final_frames"]
        if c["adaptive"]:
            bounds = fm.adaptive_bounds(c["aligned_frames_before_adaptive"], c["total_angle_deg"])
            assert bounds == (c["min_needed"], c["max_needed"])


def test_bounce_indices_direct(frames_fixture):
    for c in frames_fixture["bounce_indices_direct"]:
        if "error" in c:
            with pytest.raises(SceneInputError, match="1-frame clip"):
                fm.bounce_indices(c["n_source"], c["n_target"])
        else:
            assert fm.bounce_indices(c["n_source"], c["n_target"]) == c["indices"], c


def test_latent_chain(frames_fixture):
    rows = frames_fixture["latent_chain"]
    assert len(rows) == 9
    for r in rows:
        c = fm.latent_chain(r["T"])
        assert r["vae_latents"] == r["tae_latents"] == r["mask_latents"] == c.latents
        assert (c.latents_used, c.blocks) == (r["latents_used"], r["blocks"])
        assert c.pred_frames == r["pred_frames_tae"]
        if r["pred_frames_vae"] is not None:
            assert c.pred_frames == r["pred_frames_vae"]
        assert c.frames == r["source_and_render_output_frames"]
    edge = fm.latent_chain(5)               # no whole block: the reference VAE decoder raises
    assert (edge.latents, edge.latents_used, edge.blocks, edge.pred_frames) == (2, 0, 0, 0)


@pytest.mark.parametrize("n, freeze, adaptive, total, T, L, L_used, pred", [
    (247, 0, False, 240.0, 247, 62, 60, 237),      # pipeline-spec section 9, the shipped examples
    (247, 150, False, 240.0, 397, 100, 99, 393),
    (300, 0, True, 240.0, 301, 76, 75, 297),
    (300, 0, True, 0.0, 300, 75, 75, 297),
])
def test_shipped_example_counts(n, freeze, adaptive, total, T, L, L_used, pred):
    got = fm.dataset_frames(n, freeze_repeat=freeze, adaptive=adaptive, total_angle_deg=total)
    chain = fm.latent_chain(len(got.render_index))
    assert (chain.frames, chain.latents, chain.latents_used, chain.pred_frames) == (T, L, L_used, pred)


@pytest.mark.parametrize("call, match", [
    (lambda: fm.freeze_indices(0), "frame count must be an integer >= 1"),
    (lambda: fm.freeze_indices(5, -1), "freeze_repeat must be an integer >= 0"),
    (lambda: fm.adaptive_indices(0, 10.0), "frame count"),
    (lambda: fm.latent_chain(0), "frame count T"),
    (lambda: fm.bounce_indices(3, 0), "target frame count"),
])
def test_bad_counts(call, match):
    with pytest.raises(SceneInputError, match=match):
        call()
