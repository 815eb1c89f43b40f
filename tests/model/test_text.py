"""umT5 text encoder through transformers: the reference weights load through the name map and
reproduce the t5_tiny fixture; cleaning, tokenizing and padding; the full-size layout."""
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import checkpoint
from model.text import (T5Config, TextEncoder, build_umt5, check_umt5_config, clean_text, encode_ids, encode_prompt,
                        load_text_encoder, umt5_config)

pytest.importorskip("transformers")
TOL = 3e-5  # parity/README.md tolerance table: t5_tiny


@pytest.fixture(scope="module")
def t5_io(parity_dir, tmp_path_factory):
    """(model, io): a tiny UMT5EncoderModel built on meta and loaded from a file in the reference
    layout (the fixture's 22 float16 weights) into float32."""
    tensors = load_file(parity_dir / "t5_tiny.safetensors")
    path = tmp_path_factory.mktemp("t5") / "models_t5_tiny.safetensors"
    save_file({k: v for k, v in tensors.items() if not k.startswith("io.")}, path)
    model = build_umt5(T5Config.tiny(), device="meta", dtype=torch.float32)
    checkpoint.load_umt5(model, path, device="cpu")
    return model, {k[3:]: v for k, v in tensors.items() if k.startswith("io.")}


def close(a, b, tol=TOL):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a - b).abs().max().item()
    assert err <= tol, f"max abs error {err:.3g} > {tol}"


@torch.no_grad()
def test_encoder_matches_reference(t5_io):
    model, io = t5_io
    close(model(input_ids=io["ids"], attention_mask=io["mask"]).last_hidden_state, io["encoder_out_raw"])
    embeds = encode_ids(model, io["ids"], io["mask"])
    close(embeds, io["prompt_embeds"])
    assert (embeds[0, 150:] == 0).all() and (embeds[1, 37:] == 0).all()


def test_relative_position_buckets_and_bias_match_reference(t5_io):
    model, io = t5_io
    attn = model.encoder.block[0].layer[0].SelfAttention
    pos = torch.arange(io["ids"].shape[1])
    assert torch.equal(attn._relative_position_bucket(pos[None, :] - pos[:, None]), io["rel_bucket"])
    close(attn.compute_bias(len(pos), len(pos))[0].detach(), io["pos_bias_layer0"])


def test_embedding_stays_tied_after_loading_on_meta(t5_io):
    model, _ = t5_io
    assert model.shared.weight is model.encoder.embed_tokens.weight
    assert not any(p.is_meta for p in model.parameters())


def test_config_check_rejects_a_different_encoder():
    cfg = T5Config.tiny()
    check_umt5_config(umt5_config(cfg), cfg)
    hf = umt5_config(cfg)
    hf.dense_act_fn = "gelu"                                              # exact GELU instead of tanh
    with pytest.raises(ValueError, match="dense_act_fn"):
        check_umt5_config(hf, cfg)
    with pytest.raises(ValueError, match="layer_norm_epsilon"):
        check_umt5_config(umt5_config(T5Config(eps=1e-5)), T5Config())


def test_clean_text_unescapes_twice_and_collapses_whitespace():
    assert clean_text("  a &amp;amp; b\n\t c  ") == "a & b c"


def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    words = ["<pad>", "</s>", "<unk>", "a", "cat", "walks", "&"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def test_tokenize_pads_to_text_len_and_zeroes_rows_after_the_prompt(t5_io):
    encoder = TextEncoder(t5_io[0], word_tokenizer(), T5Config.tiny())
    ids, mask = encoder.tokenize(["  a  cat &amp;amp; walks "])
    assert ids.shape == (1, 160) and ids[0, :6].tolist() == [3, 4, 6, 5, 1, 0] and int(mask.sum()) == 5
    embeds = encoder("a cat walks")                                       # 4 tokens with EOS
    assert embeds.shape == (1, 160, 64)
    assert (embeds[0, 4:] == 0).all() and (embeds[0, :4].abs().sum(-1) > 0).all()
    encoder.free()
    with pytest.raises(RuntimeError, match="freed"):
        encoder("a cat")


@pytest.fixture
def t5_tree(parity_dir, tmp_path):
    """A checkpoint folder with the fixture's encoder under the official names and a word tokenizer."""
    tensors = load_file(parity_dir / "t5_tiny.safetensors")
    (tmp_path / checkpoint.WAN_DIR).mkdir()
    save_file({k: v for k, v in tensors.items() if not k.startswith("io.")}, tmp_path / checkpoint.T5_FILES[0])
    word_tokenizer().save_pretrained(tmp_path / checkpoint.TOKENIZER_DIR)
    return tmp_path


def test_the_encoder_loads_with_the_architecture_of_its_file(t5_tree, t5_io):
    encoder = load_text_encoder(t5_tree, device="cpu", dtype=torch.float32)
    assert encoder.cfg == T5Config(**{**T5Config.tiny().__dict__, "text_len": T5Config().text_len})
    ids, mask = encoder.tokenize(["a cat walks"])
    assert ids.shape == (1, 512)                                          # the reference pads to 512 tokens
    torch.testing.assert_close(encoder("a cat walks")[:, :160], encode_ids(t5_io[0], ids[:, :160], mask[:, :160]))


def test_encode_prompt_returns_bf16_on_the_cpu_and_says_how_long_it_took(t5_tree):
    said = []
    embeds = encode_prompt(t5_tree, "a cat walks", device="cpu", report=said.append)
    assert embeds.shape == (1, 512, 64) and embeds.dtype == torch.bfloat16 and embeds.device.type == "cpu"
    assert (embeds[0, 4:] == 0).all() and (embeds[0, :4] != 0).any()
    assert "on the CPU (no GPU)" in said[0] and "encoded by umT5 on cpu in" in said[-1] and "freed" in said[-1]


def test_full_size_encoder_matches_the_manifest_through_the_name_map():
    model = build_umt5(T5Config(), device="meta", dtype=torch.bfloat16)
    want = {n: tuple(t.shape) for n, t in checkpoint.expected_tensors(model).items()}
    manifest = checkpoint.load_manifest("t5_umt5_xxl_keys")
    assert {checkpoint.UMT5_KEYMAP.target(k): v for k, v in manifest.items()} == want
    assert len(manifest) == 242 and sum(p.numel() for p in model.parameters()) == 5_680_910_336


def test_missing_transformers_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match="pip install transformers"):
        build_umt5(T5Config.tiny(), device="meta")
