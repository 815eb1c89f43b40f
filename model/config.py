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
    compile: bool = True               # torch.compile the DiT on a GPU (static shapes; slow first start, cached after)
    compile_codec: bool = True         # also torch.compile the tiny autoencoder's encoder and decoder (GPU)
    compile_scope: str = "blocks"      # blocks: one transformer block compiled, shared by all layers | passes: whole passes
    aot_packages: bool = True          # DiT block (bf16) and TAE from AOTInductor packages: later starts load them instead of tracing
    compile_cache_dir: str = "compile"  # torch.compile's kernel cache (TORCHINDUCTOR_CACHE_DIR) and AOT packages, reused across runs (relative: inside the user's cache folder)
    compile_row_limit: int = 2048      # row reductions (norms) up to this wide compile to one-pass kernels; 0: PyTorch's 1024
    cuda_graphs: bool = True           # replay each DiT pass as one CUDA graph (GPU only; no launch gaps)
    fp8: bool = False                  # FP8 mode: FP8 matmuls in the DiT's linear layers (Hopper/Ada; faster, less exact)
    fp8_attention: bool = True         # in FP8 mode, self-attention in FP8 too where the kernel exists (Hopper, cuDNN frontend)
    rope: str = "float32"              # RoPE arithmetic: float64 (the reference's, bitwise) | float32 (faster, ~1 bf16 ulp on 2e-5 of elements)
    source_latent_cache_mb: float = 1024  # GPU memory for exact reuse of source latents on pauses and replays (0: off)

    def __post_init__(self):
        if self.rope not in ("float64", "float32"):
            raise ValueError(f"rope: {self.rope!r} is not float64 or float32")
        if self.compile_scope not in ("blocks", "passes"):
            raise ValueError(f"compile_scope: {self.compile_scope!r} is not blocks or passes")
        if self.dtype not in ("bfloat16", "float32"):
            raise ValueError(f"dtype: {self.dtype!r} is not bfloat16 or float32")
        if self.source_latent_cache_mb < 0:
            raise ValueError(f"source_latent_cache_mb: {self.source_latent_cache_mb} < 0; use 0 to switch it off")
    seed: int = 0                      # seed of the DiT's noise generator (same seed, same frames)
    random_weights: bool = False       # benchmarks only: full-size DiT and codec with random weights (output is noise)

    RANGES: ClassVar[dict] = {"compile_row_limit": (0, 65_536, "elements of a row"),
                              "source_latent_cache_mb": (0, 1_048_576, "MB of GPU memory"),
                              "seed": (0, 2**63 - 1, "a random seed")}
