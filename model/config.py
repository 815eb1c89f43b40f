"""Config of the neural stack (section `model` of config.yaml).

Checkpoint-fixed architecture values live in the per-network dataclasses as defaults, not in yaml.
"""
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class ModelConfig:
    checkpoint_dir: str = "checkpoints"  # root of the weight folders (layout in checkpoints/README.md)
    use_tae: bool = True               # TAEHV tiny autoencoder instead of the Wan VAE in play
    dtype: str = "bfloat16"            # bfloat16 | float32 for the DiT on GPU
    compile: bool = True               # torch.compile the DiT (and the TAE: compile_codec) on a GPU: a slow first start, cached for later ones
    compile_codec: bool = True         # also torch.compile the tiny autoencoder's encoder and decoder on a GPU
    aot_packages: bool = True          # with compile: load the bf16 DiT block and the TAE from AOTInductor packages (compile_cache_dir/packages) instead of tracing them; a start without them builds them in the background for the next one
    compile_cache_dir: str = "compile"  # torch.compile's kernel cache and the AOT packages (packages/), reused by later runs (time to first frame); relative: inside the user's cache folder
    compile_row_limit: int = 2048      # LayerNorm/RMSNorm rows up to this wide compile to one-pass kernels (the DiT's are 1536); 0: PyTorch's 1024
    cuda_graphs: bool = True           # replay each DiT pass as one CUDA graph on a GPU (no launch gaps; ~4 static graphs)
    fp8: bool = False                  # FP8 mode: FP8 matmuls in the DiT's linear layers (Hopper/Ada GPUs; faster, less exact)
    fp8_attention: bool = True         # in FP8 mode, self-attention in FP8 too where its kernel exists (Hopper + pip install --no-deps -r requirements-fp8.txt); false keeps bf16 attention
    rope: str = "float32"              # RoPE arithmetic: float32 (faster, ~1 bf16 ulp on 2e-5 of elements) | float64 (the reference's, bitwise)
    source_latent_cache_mb: float = 1024  # GPU memory for exact reuse of source latents on pauses and replays (0: off); an entry holds a block's encoder state

    def __post_init__(self):
        if self.rope not in ("float64", "float32"):
            raise ValueError(f"rope: {self.rope!r} is not float64 or float32")
        if self.dtype not in ("bfloat16", "float32"):
            raise ValueError(f"dtype: {self.dtype!r} is not bfloat16 or float32")
        if self.source_latent_cache_mb < 0:
            raise ValueError(f"source_latent_cache_mb: {self.source_latent_cache_mb} < 0; use 0 to switch it off")
    seed: int = 0                      # seed of the DiT's noise generator (same seed, same frames)

    RANGES: ClassVar[dict] = {"compile_row_limit": (0, 65_536, "elements of a row"),
                              "source_latent_cache_mb": (0, 1_048_576, "MB of GPU memory"),
                              "seed": (0, 2**63 - 1, "a random seed")}
