"""What `main.py doctor` says about the model stack's checkpoints (the DiT, umT5, VAE, TAE): each file
missing, present, verified or invalid, with a one-line reason and the feature it enables.

Verification reads file headers (names, shapes), never whole tensors, and compares them with what
the loader will build from the same tree: at the official sizes, the reference's manifests
(model/manifests/); at any other size (a tree from benchmarks/fake_checkpoints.py), the tensors of
roam's module at the size the tree declares (config.json for the DiT, the file's shapes for umT5 and
the VAE), which the tests check against those manifests at the official size.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from model import checkpoint as ck
from model.dit import CausalWanModel, DiTConfig
from model.tae import TAEConfig, TAEHV
from model.text import T5Config
from model.vae import VAEConfig, WanVAE

ENABLES_DIT = "DiT refiner (runtime.refiner: dit, or auto)"
ENABLES_TEXT = "prompt embeddings for newly built scenes"
ENABLES_VAE = "Wan VAE codec (model.use_tae: false; reference parity)"
ENABLES_TAE = "TAE codec (model.use_tae: true; real time)"
WAN_CONFIG_VALUES = {"model_type": "t2v", "dim": 1536, "ffn_dim": 8960, "num_heads": 12, "num_layers": 30,
                     "freq_dim": 256, "text_len": 512, "out_dim": 16, "eps": 1e-6}  # in_dim 16 is overridden to 36


class DoctorRow(NamedTuple):
    name: str
    path: str
    status: str                      # missing | present | verified | invalid
    detail: str
    enables: str


def shapes_of(module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(t.shape) for n, t in ck.expected_tensors(module).items()}


def size_note(official: bool, what: str) -> str:
    return "the official size" if official else f"not the official size ({what})"


def doctor_report(checkpoint_dir: Path | str, manifest_dir: Path = ck.MANIFEST_DIR) -> list[DoctorRow]:
    """One row per checkpoint file (or folder) of the model stack."""
    files = ck.discover(checkpoint_dir)
    config_row, dit_cfg = _wan_config_row(files)
    t5_row, t5_cfg = _umt5_row(files, manifest_dir)
    if dit_cfg is not None and t5_cfg is not None and t5_cfg.dim != dit_cfg.text_dim:
        t5_row = t5_row._replace(status="invalid", detail=f"a {t5_cfg.dim}-wide encoder, but the DiT's config.json "
                                                          f"expects text_dim {dit_cfg.text_dim}; {ck.GET_WAN}")
    return [config_row, *_dit_rows(files, dit_cfg, manifest_dir), t5_row, _tokenizer_row(files, t5_cfg),
            _vae_row(files, manifest_dir), _tae_row(files, manifest_dir)]


def _verify(name, path, get, enables, km, expected, note) -> DoctorRow:
    try:
        mapped = ck.map_file(ck.TensorFile(path, get), km, expected, require_all=True)
    except ck.CheckpointError as e:
        return DoctorRow(name, str(path), "invalid", str(e), enables)
    return DoctorRow(name, str(path), "verified", f"all {len(mapped)} tensors, {note}", enables)


def _wan_config_row(files: ck.CheckpointFiles) -> tuple[DoctorRow, DiTConfig | None]:
    name, path = "Wan2.1 DiT config", files.wan_config or files.root / ck.WAN_CONFIG
    if files.wan_config is None:
        return DoctorRow(name, str(path), "missing", ck.GET_WAN, ENABLES_DIT), None
    try:
        cfg = DiTConfig(**ck.wan_dit_size(path))
    except (ck.CheckpointError, TypeError, ValueError) as e:
        return DoctorRow(name, str(path), "invalid", str(e).replace("\n", " "), ENABLES_DIT), None
    note = size_note(cfg == DiTConfig(), f"dim {cfg.dim}, {cfg.num_layers} layers, text_dim {cfg.text_dim}")
    return DoctorRow(name, str(path), "verified", f"Wan2.1-T2V-1.3B config, {note}", ENABLES_DIT), cfg


def _dit_rows(files: ck.CheckpointFiles, cfg: DiTConfig | None, manifest_dir: Path) -> list[DoctorRow]:
    """The base files and the InSpatio file are checked one by one; the InSpatio file must hold the
    36-channel patch embedding, and together they must assign every DiT tensor."""
    expected = None if cfg is None else ck.load_manifest("dit_1.3b_keys", manifest_dir) if cfg == DiTConfig() \
        else shapes_of(CausalWanModel(cfg, device="meta"))
    base, base_names = _dit_file_row("Wan2.1 DiT base weights", files.dit_base, ck.DIT_BASE_KEYMAP, ck.GET_WAN,
                                     expected, files.root / ck.WAN_DIR / "diffusion_pytorch_model.safetensors")
    insp, insp_names = _dit_file_row("InSpatio-World DiT weights", (files.dit_inspatio,) if files.dit_inspatio else (),
                                     ck.DIT_INSPATIO_KEYMAP, ck.GET_INSPATIO, expected, files.root / ck.INSPATIO_FILE)
    if insp.status == "verified":
        missing = expected.keys() - base_names - insp_names
        if not {"patch_embedding.weight", "patch_embedding.bias"} <= insp_names:
            insp = insp._replace(status="invalid", detail=f"no 36-channel patch_embedding.{{weight,bias}}; {ck.GET_INSPATIO}")
        elif base.status == "verified" and missing:
            insp = insp._replace(status="invalid", detail=f"with the base weights still missing {ck._preview(missing)}")
        elif base.status == "verified":
            insp = insp._replace(detail=f"{insp.detail}; with the base weights all {len(expected)} are assigned")
    return [base, insp]


def _dit_file_row(name, paths, km, get, expected, default_path) -> tuple[DoctorRow, set[str]]:
    path = paths[0] if paths else default_path
    if not paths:
        return DoctorRow(name, str(path), "missing", get, ENABLES_DIT), set()
    if expected is None:
        return DoctorRow(name, str(path), "present", f"not verified: no valid {ck.WAN_CONFIG}", ENABLES_DIT), set()
    try:
        names = {n for p in paths for n in ck.map_file(ck.TensorFile(p, get), km, expected, require_all=False)}
    except ck.CheckpointError as e:
        return DoctorRow(name, str(path), "invalid", str(e), ENABLES_DIT), set()
    return DoctorRow(name, str(path), "verified", f"{len(names)} of {len(expected)} DiT tensors", ENABLES_DIT), names


def _umt5_row(files: ck.CheckpointFiles, manifest_dir: Path) -> tuple[DoctorRow, T5Config | None]:
    name, path = "umT5-XXL text encoder", files.t5 or files.root / ck.T5_FILES[1]
    if files.t5 is None:
        return DoctorRow(name, str(path), "missing", ck.GET_WAN, ENABLES_TEXT), None
    try:
        cfg = T5Config(**ck.umt5_size(ck.TensorFile(path, ck.GET_WAN)))
    except ck.CheckpointError as e:
        return DoctorRow(name, str(path), "invalid", str(e), ENABLES_TEXT), None
    official = cfg == T5Config()
    expected = ck.load_manifest("t5_umt5_xxl_keys", manifest_dir) if official else ck.umt5_reference_shapes(cfg)
    note = size_note(official, f"width {cfg.dim}, {cfg.num_layers} layers, vocabulary {cfg.vocab_size}")
    return _verify(name, path, ck.GET_WAN, ENABLES_TEXT, ck.PLAIN_KEYMAP, expected, note), cfg


def _tokenizer_row(files: ck.CheckpointFiles, t5: T5Config | None) -> DoctorRow:
    """tokenizer.json read with the tokenizers library: umT5's pad (0) and EOS (1) ids, and no id past
    the encoder's vocabulary. A folder with only spiece.model is left to transformers."""
    name, path = "umT5 tokenizer", files.tokenizer or files.root / ck.TOKENIZER_DIR
    if files.tokenizer is None or not path.is_dir():
        return DoctorRow(name, str(path), "missing", ck.GET_WAN, ENABLES_TEXT)
    if not (path / "tokenizer.json").is_file():
        if (path / "spiece.model").is_file():
            return DoctorRow(name, str(path), "present", "spiece.model (loaded by transformers when used)", ENABLES_TEXT)
        return DoctorRow(name, str(path), "invalid", f"no tokenizer.json or spiece.model; {ck.GET_WAN}", ENABLES_TEXT)
    try:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    except ImportError:
        return DoctorRow(name, str(path), "present", "not verified: tokenizers is not installed", ENABLES_TEXT)
    except Exception as e:                   # the Rust library raises plain Exception on a bad file
        return DoctorRow(name, str(path), "invalid", f"tokenizer.json unreadable ({str(e)[:120]}); {ck.GET_WAN}",
                         ENABLES_TEXT)
    ids = {t: tok.token_to_id(t) for t in ("<pad>", "</s>")}
    if ids != {"<pad>": 0, "</s>": 1}:
        return DoctorRow(name, str(path), "invalid", f"special token ids {ids}, not umT5's <pad> 0 and </s> 1",
                         ENABLES_TEXT)
    if t5 is not None and tok.get_vocab_size() > t5.vocab_size:
        return DoctorRow(name, str(path), "invalid", f"{tok.get_vocab_size()} tokens, more than the encoder's "
                                                     f"{t5.vocab_size} embeddings; {ck.GET_WAN}", ENABLES_TEXT)
    return DoctorRow(name, str(path), "verified", f"{tok.get_vocab_size()} tokens, umT5's special ids", ENABLES_TEXT)


def _vae_row(files: ck.CheckpointFiles, manifest_dir: Path) -> DoctorRow:
    name, path = "Wan2.1 VAE", files.vae or files.root / ck.VAE_FILE
    if files.vae is None:
        return DoctorRow(name, str(path), "missing", ck.GET_WAN, ENABLES_VAE)
    try:
        cfg = VAEConfig(**ck.wan_vae_size(ck.TensorFile(path, ck.GET_WAN)))
    except ck.CheckpointError as e:
        return DoctorRow(name, str(path), "invalid", str(e), ENABLES_VAE)
    official = cfg == VAEConfig()
    expected = ck.load_manifest("wan_vae_keys", manifest_dir) if official else shapes_of(WanVAE(cfg, device="meta"))
    return _verify(name, path, ck.GET_WAN, ENABLES_VAE, ck.PLAIN_KEYMAP, expected,
                   size_note(official, f"width {cfg.dim}"))


def _tae_row(files: ck.CheckpointFiles, manifest_dir: Path) -> DoctorRow:
    name, path = "TAEHV taew2_1", files.tae or files.root / ck.TAE_FILE
    if files.tae is None:
        return DoctorRow(name, str(path), "missing", ck.GET_TAE, ENABLES_TAE)
    km = ck.tae_keymap(TAEHV(TAEConfig(), device="meta").tgrow_weight_names())
    return _verify(name, path, ck.GET_TAE, ENABLES_TAE, km, ck.load_manifest("taew2_1_keys", manifest_dir),
                   "the official size")
