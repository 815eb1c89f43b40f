"""The text side of a fake checkpoint tree (benchmarks/fake_checkpoints.py): the umT5 tokenizer folder
and Florence-2, written with the libraries that read them (tokenizers, transformers).

Both tokenizers are trained here, with the `tokenizers` library, on a seeded corpus of caption-like
sentences: a Unigram model with umT5's special tokens (pad 0, eos 1, unk 2; EOS appended) and a
byte-level BPE with BART's (bos 0, pad 1, eos 2, unk 3) plus Florence-2's `<image>` token. Florence-2
is transformers' own Florence2ForConditionalGeneration built from a Florence2Config, saved with its
processor by save_pretrained, as transformers 5 reads it. Its weights are random except one rule: the
decoder's last LayerNorm bias and the EOS embedding point the same way, so generation ends at the
first free token instead of running to max_new_tokens (1024 steps without a KV cache on a CPU).
"""
from __future__ import annotations

import random
from pathlib import Path

import torch

WORDS = ("the a an image shows view of room table chair window light wall floor street car tree sky person "
         "people walking standing sitting with and in on near large small red blue green white black wooden "
         "glass open door kitchen city park water river mountain camera moves slowly left right forward").split()


def caption_corpus(seed: int, lines: int = 2000) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20))) + "." for _ in range(lines)]


def write_umt5_tokenizer(folder: Path, seed: int, vocab_size: int) -> None:
    """tokenizer.json + tokenizer_config.json (T5Tokenizer) of a Unigram tokenizer with umT5's ids."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import T5TokenizerFast
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.train_from_iterator(caption_corpus(seed), trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                    extra_ids=0).save_pretrained(str(folder))


def bart_tokenizer(seed: int, vocab_size: int):
    """A byte-level BPE with BART's special tokens and Florence-2's <image>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import BartTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(caption_corpus(seed), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return BartTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                             unk_token="<unk>", mask_token="<mask>", extra_special_tokens={"image_token": "<image>"})


def florence_config(size: str, image_token_id: int):
    """Florence-2-large's architecture (DaViT vision tower, BART-large text model) or a tiny one."""
    from transformers import BartConfig, Florence2Config, Florence2VisionConfig
    if size == "full":
        text = dict(vocab_size=51289, d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16,
                    decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096)
        vision = dict(embed_dim=[256, 512, 1024, 2048], depths=[1, 1, 9, 1], num_heads=[8, 16, 32, 64],
                      num_groups=[8, 16, 32, 64], projection_dim=1024)
    else:
        text = dict(vocab_size=512, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                    decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64)
        vision = dict(embed_dim=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                      num_groups=[1, 2, 4, 8], projection_dim=32)
    text_cfg = BartConfig(**text, max_position_embeddings=1024, bos_token_id=0, pad_token_id=1, eos_token_id=2,
                          decoder_start_token_id=2, forced_eos_token_id=2)
    return Florence2Config(text_config=text_cfg, vision_config=Florence2VisionConfig(**vision),
                           image_token_id=image_token_id)


def image_processor():
    """Florence-2's preprocessing: 768 x 768 bicubic, ImageNet mean and std, 577 image tokens."""
    from transformers import CLIPImageProcessor
    proc = CLIPImageProcessor(do_resize=True, size={"height": 768, "width": 768}, resample=3, do_center_crop=False,
                              do_rescale=True, do_normalize=True, do_convert_rgb=True,
                              image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    proc.image_seq_length = 577
    return proc


def write_florence(folder: Path, size: str, seed: int, device: str) -> None:
    """config.json, generation_config.json, model.safetensors (float16) and the processor's files."""
    from transformers import Florence2ForConditionalGeneration, Florence2Processor
    tokenizer = bart_tokenizer(seed, vocab_size=400)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Florence2ForConditionalGeneration(florence_config(size, tokenizer.image_token_id))
    stop_at_once(model, tokenizer.eos_token_id)
    model.to(torch.float16).save_pretrained(str(folder))
    Florence2Processor(image_processor=image_processor(), tokenizer=tokenizer).save_pretrained(str(folder))


@torch.no_grad()
def stop_at_once(model, eos_id: int) -> None:
    """Make EOS the most likely next token whatever the input: the decoder's output is a LayerNorm
    whose bias is added last, and the LM head is the (tied) token embedding."""
    decoder = model.model.language_model.decoder
    last_norm = decoder.layers[-1].final_layer_norm
    direction = torch.ones_like(last_norm.bias)
    last_norm.bias.copy_(3 * direction)
    model.get_input_embeddings().weight[eos_id].copy_(0.5 * direction)
