"""Checkpoint files: the one place that knows upstream file names, key prefixes and renames.

Loading is strict. Every tensor the module expects must come from a file, with the right shape,
and nothing may be left over; otherwise a `CheckpointError` names the file, the first few missing,
unexpected and mismatched tensors with their counts, and what to download. Checkpoint tensors are
copied into the module's own parameters, which converts them to the module's dtype and device
(a module built on the meta device is materialised first and then entirely overwritten). Files are
read lazily: names and shapes from the header, then one tensor at a time. `.safetensors` is
preferred; `.pth` is read only with `torch.load(weights_only=True)`.

Layout (the reference download, checkpoints/README.md; model-stack-spec §8):
    InSpatio-World-1.3B/InSpatio-World-1.3B.safetensors
    Wan2.1-T2V-1.3B/{config.json, *diffusion*.safetensors, models_t5_umt5-xxl-enc-bf16.{safetensors,pth},
                     Wan2.1_VAE.pth, google/umt5-xxl/}
    taehv/taew2_1.pth
"""
from __future__ import annotations

import json
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"

WAN_DIR = "Wan2.1-T2V-1.3B"
WAN_CONFIG = f"{WAN_DIR}/config.json"
DIT_BASE_GLOB = "*diffusion*.safetensors"                       # every match is merged, as the reference does
INSPATIO_FILE = "InSpatio-World-1.3B/InSpatio-World-1.3B.safetensors"
T5_FILES = (f"{WAN_DIR}/models_t5_umt5-xxl-enc-bf16.safetensors", f"{WAN_DIR}/models_t5_umt5-xxl-enc-bf16.pth")
TOKENIZER_DIR = f"{WAN_DIR}/google/umt5-xxl"
VAE_FILE = f"{WAN_DIR}/Wan2.1_VAE.pth"
TAE_FILE = "taehv/taew2_1.pth"

GET_WAN = "get it with: python main.py download --only dit (Wan-AI/Wan2.1-T2V-1.3B)"
GET_INSPATIO = "get it with: python main.py download --only dit (inspatio/world)"
GET_TAE = "get it with: python main.py download --only tae (madebyollin/taehv)"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not hold what the model needs."""


@dataclass(frozen=True)
class KeyMap:
    """How a file's tensor names become module names. Applied key by key; copies nothing."""
    strip_prefixes: tuple[str, ...] = ()      # removed from the front, repeatedly (wrapper attributes)
    drop_substrings: tuple[str, ...] = ()     # keys containing any of these are not loaded
    renames: tuple[tuple[str, str], ...] = ()  # (regex, replacement) on the stripped name, first match wins
    take_last_rows: tuple[str, ...] = ()      # module names whose file tensor may have extra leading rows

    def target(self, key: str) -> str | None:
        """Module name for a file key, or None when the key is dropped."""
        while prefix := next((p for p in self.strip_prefixes if key.startswith(p)), None):
            key = key[len(prefix):]
        if any(s in key for s in self.drop_substrings):
            return None
        for pattern, replacement in self.renames:
            if re.fullmatch(pattern, key):
                return re.sub(pattern, replacement, key)
        return key


WRAPPER_PREFIXES = ("generator.", "model.", "_orig_mod.")
# base_checkpoint_filter_list: the base file's 16-channel patch embedding cannot fill the 36-channel layer
DIT_BASE_KEYMAP = KeyMap(WRAPPER_PREFIXES, ("img_emb.", "cross_attn.k_img", "cross_attn.v_img",
                                            "cross_attn.norm_k_img", "patch_embedding"))
DIT_INSPATIO_KEYMAP = KeyMap(WRAPPER_PREFIXES)   # the reference needs `model.`; unprefixed keys are accepted too
PLAIN_KEYMAP = KeyMap()
_B = r"blocks\.(\d+)\."
_HF = r"encoder.block.\1.layer."
UMT5_KEYMAP = KeyMap(renames=(                    # wan/modules/t5.py names -> transformers UMT5EncoderModel
    (r"token_embedding\.weight", "shared.weight"),
    (_B + r"attn\.([qkvo])\.weight", _HF + r"0.SelfAttention.\2.weight"),
    (_B + r"pos_embedding\.embedding\.weight", _HF + "0.SelfAttention.relative_attention_bias.weight"),
    (_B + r"norm1\.weight", _HF + "0.layer_norm.weight"),
    (_B + r"norm2\.weight", _HF + "1.layer_norm.weight"),
    (_B + r"ffn\.gate\.0\.weight", _HF + "1.DenseReluDense.wi_0.weight"),
    (_B + r"ffn\.fc1\.weight", _HF + "1.DenseReluDense.wi_1.weight"),
    (_B + r"ffn\.fc2\.weight", _HF + "1.DenseReluDense.wo.weight"),
    (r"norm\.weight", "encoder.final_layer_norm.weight"),
))


class TensorFile:
    """One checkpoint file: names and shapes from its header, tensors read one at a time."""

    def __init__(self, path: Path | str, get: str):
        self.path, self.get = Path(path), get
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: file not found; {get}")
        if self.path.suffix == ".safetensors":
            self._open_safetensors()
        elif self.path.suffix in (".pth", ".pt"):
            self._open_pth()
        else:
            raise CheckpointError(f"{self.path}: unknown checkpoint format (expected .safetensors or .pth); {get}")

    def _open_safetensors(self) -> None:
        try:
            self._file = safe_open(str(self.path), framework="pt", device="cpu")
            self.shapes = {k: tuple(self._file.get_slice(k).get_shape()) for k in self._file.keys()}
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{self.path}: unreadable safetensors file ({e}); it may be truncated: {self.get}") from e
        self.tensor = self._file.get_tensor

    def _open_pth(self) -> None:
        try:
            try:      # mmap: shapes without reading the data
                sd = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                sd = torch.load(self.path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"{self.path}: unreadable .pth file ({str(e).split('. ')[0][:160]}); "
                                  f"it may be truncated or not a plain state dict: {self.get}") from e
        for wrapper in ("state_dict", "model"):          # utils/convert_pth_to_safetensors.py unwraps these
            if isinstance(sd, dict) and set(sd) == {wrapper} and isinstance(sd[wrapper], dict):
                sd = sd[wrapper]
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"{self.path}: not a state dict of tensors; {self.get}")
        self.shapes = {k: tuple(v.shape) for k, v in sd.items()}
        self.tensor = sd.__getitem__


def _preview(names: Iterable[str], n: int = 4) -> str:
    names = sorted(names)
    return f"{len(names)} ({', '.join(names[:n])}{', ...' if len(names) > n else ''})"


def match_file(f: TensorFile, km: KeyMap, expected: dict[str, tuple]) -> tuple[dict[str, str], list[str]]:
    """Module name -> file key for one file, and its problems against `expected` (name -> shape):
    unexpected tensors, wrong shapes, and names that collide after prefix stripping."""
    mapping, duplicates = {}, []
    for key in f.shapes:
        if (name := km.target(key)) is not None:
            duplicates += [name] if name in mapping else []
            mapping[name] = key
    unexpected = mapping.keys() - expected.keys()
    wrong = [f"{n}: file {f.shapes[k]} vs model {expected[n]}" for n, k in sorted(mapping.items())
             if n in expected and not _shape_fits(f.shapes[k], expected[n], n in km.take_last_rows)]
    return mapping, [f"unexpected {_preview(unexpected)}" if unexpected else "",
                     f"wrong shape {len(wrong)} ({'; '.join(wrong[:3])})" if wrong else "",
                     f"duplicate after prefix stripping {_preview(duplicates)}" if duplicates else ""]


def map_file(f: TensorFile, km: KeyMap, expected: dict[str, tuple], *, require_all: bool) -> dict[str, str]:
    """match_file, raising a CheckpointError on any problem (and on missing names if require_all)."""
    mapping, issues = match_file(f, km, expected)
    missing = expected.keys() - mapping.keys() if require_all else set()
    _raise_if(f"{f.path}", [f"missing {_preview(missing)}" if missing else "", *issues], f.get)
    return mapping


def _raise_if(where: str, issues: list[str], get: str) -> None:
    if any(issues):
        raise CheckpointError(f"{where}: {', '.join(i for i in issues if i)}; {get}")


def _shape_fits(have: tuple, want: tuple, may_cut_rows: bool) -> bool:
    return have == want or (may_cut_rows and have[1:] == want[1:] and have[0] >= want[0])


def expected_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's own tensors by state-dict name: parameters (tied ones once) and persistent buffers."""
    tensors = dict(module.named_parameters())
    tensors.update((n, b) for n, b in module.state_dict(keep_vars=True).items()
                   if n not in tensors and not isinstance(b, nn.Parameter))
    return tensors


def load_module(module: nn.Module, files: list[tuple[TensorFile, KeyMap]], *, device=None) -> None:
    """Fill every parameter and persistent buffer of `module` from `files` (later files override
    earlier ones) and check the union covers all of them. A module on the meta device is
    materialised on `device` first. Raises CheckpointError before anything is copied."""
    want = expected_tensors(module)
    shapes = {n: tuple(t.shape) for n, t in want.items()}
    sources, issues, gets = {}, [], []
    for f, km in files:
        mapping, found = match_file(f, km, shapes)
        sources.update({n: (f, k, n in km.take_last_rows) for n, k in mapping.items()})
        issues += [f"{f.path.name}: {i}" if len(files) > 1 else i for i in found if i]
        gets += [f.get] if any(found) and f.get not in gets else []
    missing = shapes.keys() - sources.keys()
    _raise_if(" + ".join(str(f.path) for f, _ in files), [f"missing {_preview(missing)}" if missing else "", *issues],
              "; ".join(gets) or files[-1][0].get)
    if any(t.is_meta for t in want.values()):
        want = _materialise(module, device)
    with torch.no_grad():
        for name, dst in want.items():
            f, key, cut = sources[name]
            src = f.tensor(key)
            dst.copy_(src[-dst.shape[0]:] if cut else src)        # copy_ casts to dst's dtype and device


def _materialise(module: nn.Module, device) -> dict[str, torch.Tensor]:
    """to_empty() on `device`, keeping tied parameters tied; every tensor is overwritten afterwards."""
    if device is None:
        raise ValueError("a module on the meta device needs device= to be loaded")
    persistent = module.state_dict(keep_vars=True).keys()
    if lost := [n for n, _ in module.named_buffers() if n not in persistent]:
        raise ValueError(f"non-persistent buffers {lost[:3]} would stay uninitialised; build the module on {device}")
    aliases, first = [], {}
    for name, p in module.named_parameters(remove_duplicate=False):
        if id(p) in first:
            aliases.append((name, first[id(p)]))
        first.setdefault(id(p), name)
    module.to_empty(device=device)
    for alias, name in aliases:                            # to_empty gives each alias its own tensor
        owner, _, attr = alias.rpartition(".")
        setattr(module.get_submodule(owner), attr, module.get_parameter(name))
    return expected_tensors(module)


# --- the model stack's files ---------------------------------------------------------------

def load_vae(vae: nn.Module, path: Path, *, device=None) -> None:
    load_module(vae, [(TensorFile(path, GET_WAN), PLAIN_KEYMAP)], device=device)


def tae_keymap(tgrow_names: Iterable[str]) -> KeyMap:
    return KeyMap(take_last_rows=tuple(tgrow_names))


def load_tae(tae: nn.Module, path: Path, *, device=None) -> None:
    """TGrow weights with more output channels than the layer keep their LAST rows (taehv
    `patch_tgrow_layers`)."""
    load_module(tae, [(TensorFile(path, GET_TAE), tae_keymap(tae.tgrow_weight_names()))], device=device)


def load_umt5(encoder: nn.Module, path: Path, *, device=None) -> None:
    """Reference umT5 names (wan/modules/t5.py) into a transformers UMT5EncoderModel."""
    load_module(encoder, [(TensorFile(path, GET_WAN), UMT5_KEYMAP)], device=device)


def load_dit(dit: nn.Module, base_paths: list[Path], inspatio_path: Path, *, device=None) -> None:
    """Base Wan2.1 diffusion weights (all files merged, minus the filter list), then the InSpatio
    file on top; every DiT tensor must come from one of them (the reference's strict=False would
    leave the rest uninitialised)."""
    if not base_paths:
        raise CheckpointError(f"no {DIT_BASE_GLOB} in checkpoints/{WAN_DIR}; {GET_WAN}")
    files = [(TensorFile(p, GET_WAN), DIT_BASE_KEYMAP) for p in base_paths]
    load_module(dit, files + [(TensorFile(inspatio_path, GET_INSPATIO), DIT_INSPATIO_KEYMAP)], device=device)


# --- model sizes from the files (the tree's own config.json and tensor shapes) --------------

DIT_CONFIG_KEYS = ("dim", "ffn_dim", "num_heads", "num_layers", "freq_dim", "text_len", "text_dim", "out_dim", "eps")


def wan_dit_size(config_path: Path) -> dict:
    """DiTConfig field values from Wan2.1-T2V-1.3B/config.json (the keys WanModel takes; in_dim is
    InSpatio's 36 whatever the file says, text_dim defaults to umT5-XXL's 4096 when absent)."""
    try:
        raw = json.loads(Path(config_path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config_path}: unreadable JSON ({e}); {GET_WAN}") from None
    if raw.get("model_type") != "t2v":
        raise CheckpointError(f"{config_path}: model_type {raw.get('model_type')!r}, not a Wan2.1 T2V config; {GET_WAN}")
    return {k: raw[k] for k in DIT_CONFIG_KEYS if k in raw}


def umt5_reference_shapes(cfg) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the reference umT5 encoder file (wan/modules/t5.py names) for a
    T5Config-like `cfg`: 242 tensors at umT5-XXL's size."""
    D, A, Fd = cfg.dim, cfg.dim_attn, cfg.dim_ffn
    shapes = {"token_embedding.weight": (cfg.vocab_size, D)}
    for i in range(cfg.num_layers):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (D,), b + "attn.q.weight": (A, D), b + "attn.k.weight": (A, D),
                       b + "attn.v.weight": (A, D), b + "attn.o.weight": (D, A), b + "norm2.weight": (D,),
                       b + "ffn.gate.0.weight": (Fd, D), b + "ffn.fc1.weight": (Fd, D), b + "ffn.fc2.weight": (D, Fd),
                       b + "pos_embedding.embedding.weight": (cfg.num_buckets, cfg.num_heads)})
    shapes["norm.weight"] = (D,)
    return shapes


def umt5_size(f: TensorFile) -> dict:
    """T5Config field values read off a reference umT5 file's shapes (its header only)."""
    s = f.shapes
    try:
        vocab, dim = s["token_embedding.weight"]
        buckets, heads = s["blocks.0.pos_embedding.embedding.weight"]
        size = dict(vocab_size=vocab, dim=dim, dim_attn=s["blocks.0.attn.q.weight"][0],
                    dim_ffn=s["blocks.0.ffn.fc1.weight"][0], num_heads=heads, num_buckets=buckets)
    except (KeyError, ValueError):
        raise CheckpointError(f"{f.path}: not a umT5 encoder file (no token_embedding / blocks.0 tensors of the "
                              f"reference's names); {f.get}") from None
    size["num_layers"] = len({k.split(".")[1] for k in s if k.startswith("blocks.")})
    return size


def wan_vae_size(f: TensorFile) -> dict:
    """VAEConfig field values read off a Wan VAE file's shapes: its base width."""
    if "encoder.conv1.weight" not in f.shapes:
        raise CheckpointError(f"{f.path}: not a Wan VAE file (no encoder.conv1.weight); {f.get}")
    return {"dim": f.shapes["encoder.conv1.weight"][0]}


def load_manifest(name: str, manifest_dir: Path = MANIFEST_DIR) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from model/manifests/<name>.json (the parity `*_keys.json` layout:
    {"keys": [{"name", "shape"}, ...]}, or a plain {name: shape} mapping)."""
    raw = json.loads((manifest_dir / f"{name}.json").read_text())
    entries = raw["keys"] if isinstance(raw, dict) and "keys" in raw else raw
    if isinstance(entries, dict):
        return {k: tuple(v) for k, v in entries.items()}
    return {e["name"]: tuple(e["shape"]) for e in entries}


# --- discovery ----------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckpointFiles:
    """What exists under a checkpoint folder (None / empty: not found)."""
    root: Path
    wan_config: Path | None
    dit_base: tuple[Path, ...]
    dit_inspatio: Path | None
    t5: Path | None                  # .safetensors preferred over .pth
    tokenizer: Path | None
    vae: Path | None
    tae: Path | None


def discover(checkpoint_dir: Path | str) -> CheckpointFiles:
    root = Path(checkpoint_dir)
    found = {rel: root / rel for rel in (WAN_CONFIG, INSPATIO_FILE, *T5_FILES, TOKENIZER_DIR, VAE_FILE, TAE_FILE)
             if (root / rel).exists()}
    return CheckpointFiles(root, found.get(WAN_CONFIG), tuple(sorted((root / WAN_DIR).glob(DIT_BASE_GLOB))),
                           found.get(INSPATIO_FILE), next((found[r] for r in T5_FILES if r in found), None),
                           found.get(TOKENIZER_DIR), found.get(VAE_FILE), found.get(TAE_FILE))
