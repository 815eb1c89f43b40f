"""Things several tests make: real media files and stand-ins for parts that cannot run here."""
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_test_video(path, frames, fps=24, *, codec="libx264", pix_fmt="yuv420p", rotation=None, fmt=None,
                     container_options=None, stream_options=None, pts=None, mutate=None) -> Path:
    """Frames uint8 [n, h, w, 3] written with PyAV directly (not through roam's VideoWriter), so tests
    can make the files roam must cope with: pts per frame in 1/1000 s (variable frame rate), a display
    rotation, another container, and `mutate(packet) -> packet | None` to corrupt or drop packets."""
    container = av.open(str(path), "w", format=fmt, options=container_options or {})
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
    stream.options = {"g": "4", "preset": "ultrafast", **(stream_options or {})}
    if rotation is not None:
        stream.set_display_rotation(rotation)
    if pts is not None:
        stream.codec_context.time_base = Fraction(1, 1000)
    packets = []
    for i, f in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(f, format="rgb24")
        frame.pts = i if pts is None else pts[i]
        if pts is not None:
            frame.time_base = Fraction(1, 1000)
        packets += stream.encode(frame)
    packets += stream.encode()
    if not len(frames):
        container.start_encoding()
    for p in packets:
        p = mutate(p) if mutate else p
        if p is not None:
            container.mux(p)
    container.close()
    return Path(path)


def write_audio_only_mp4(path, frames: int = 10) -> None:
    """A real MP4 holding one AAC stream and no video."""
    container = av.open(str(path), "w")
    stream = container.add_stream("aac", rate=44100)
    for i in range(frames):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, i * 1024
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


class FakeDA3:
    """Stands in for DepthAnything3.inference (its weights cannot be downloaded here): depth 2 + the
    frame's mean brightness, K with the principal point at the centre, a camera sliding along +x by
    0.1 per frame (w2c), and a record of the batch sizes it saw."""

    def __init__(self):
        self.batches = []

    def inference(self, images, use_ray_pose=False):
        n, (h, w) = len(images), images[0].shape[:2]
        self.batches.append((n, h, w))
        w2c = np.tile(np.eye(4)[:3], (n, 1, 1))
        w2c[:, 0, 3] = -0.1 * np.arange(n)
        K = np.tile(np.array([[300.0, 0, w / 2], [0, 300.0, h / 2], [0, 0, 1]]), (n, 1, 1))
        depth = np.stack([np.full((h, w), 2.0 + im.mean() / 255) for im in images]).astype(np.float32)
        return type("Prediction", (), {"depth": depth, "intrinsics": K, "extrinsics": w2c})


def write_tiny_checkpoints(root, seed: int = 0):
    """A checkpoint tree in the official layout and formats with small widths and seeded random
    weights: Wan's config.json, the base DiT file (16-channel patch embedding and image keys, which the
    loader filters), the InSpatio file (`model.` prefix), the umT5 encoder under the reference's names
    with a word-level tokenizer, the Wan VAE (.pth) and the TAE (.pth). -> root"""
    import json
    from pathlib import Path
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    from model import checkpoint as ck
    from model.dit import CausalWanModel, DiTConfig
    from model.tae import TAEHV
    from model.text import T5Config
    from model.vae import VAEConfig, WanVAE
    root, g = Path(root), torch.Generator().manual_seed(seed)
    rand = lambda shape: (torch.randn(shape, generator=g) * 0.05).to(torch.bfloat16)
    t5 = T5Config.tiny()
    dit_cfg = DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=t5.dim)
    dit = {k: rand(v.shape) for k, v in CausalWanModel(dit_cfg, device="meta").state_dict().items()}
    (root / ck.WAN_DIR).mkdir(parents=True, exist_ok=True)
    config = {"_class_name": "WanModel", "model_type": "t2v", "in_dim": 16, "dim": dit_cfg.dim, "ffn_dim": dit_cfg.ffn_dim,
              "freq_dim": dit_cfg.freq_dim, "num_heads": dit_cfg.num_heads, "num_layers": dit_cfg.num_layers,
              "out_dim": 16, "text_len": 512, "text_dim": t5.dim, "eps": 1e-6}
    (root / ck.WAN_CONFIG).write_text(json.dumps(config))
    base = {k: v for k, v in dit.items() if not k.startswith("patch_embedding")}
    base |= {"patch_embedding.weight": rand((dit_cfg.dim, 16, 1, 2, 2)), "patch_embedding.bias": rand((dit_cfg.dim,)),
             "img_emb.proj.1.weight": rand((4, 4))}
    save_file(base, root / ck.WAN_DIR / "diffusion_pytorch_model.safetensors")
    (root / ck.INSPATIO_FILE).parent.mkdir(parents=True, exist_ok=True)
    save_file({f"model.{k}": v for k, v in dit.items()}, root / ck.INSPATIO_FILE)
    names = [f"blocks.{i}.{n}" for i in range(t5.num_layers) for n in
             ("norm1.weight", "attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight", "norm2.weight",
              "ffn.gate.0.weight", "ffn.fc1.weight", "ffn.fc2.weight", "pos_embedding.embedding.weight")]
    shapes = {"norm1.weight": (t5.dim,), "norm2.weight": (t5.dim,), "ffn.gate.0.weight": (t5.dim_ffn, t5.dim),
              "ffn.fc1.weight": (t5.dim_ffn, t5.dim), "ffn.fc2.weight": (t5.dim, t5.dim_ffn),
              "pos_embedding.embedding.weight": (t5.num_buckets, t5.num_heads)}
    enc = {n: rand(shapes.get(n.split(".", 2)[2], (t5.dim_attn, t5.dim))) for n in names}
    enc |= {"token_embedding.weight": rand((t5.vocab_size, t5.dim)), "norm.weight": rand((t5.dim,))}
    save_file(enc, root / ck.T5_FILES[0])
    words = ["<pad>", "</s>", "<unk>", *"a an the cat dog walks runs street table cup of with on in".split()]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(root / ck.TOKENIZER_DIR)
    torch.save({k: rand(v.shape) for k, v in WanVAE(VAEConfig.tiny(), device="meta").state_dict().items()},
               root / ck.VAE_FILE)
    (root / ck.TAE_FILE).parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: rand(v.shape).half() for k, v in TAEHV(device="meta").state_dict().items()}, root / ck.TAE_FILE)
    return root
