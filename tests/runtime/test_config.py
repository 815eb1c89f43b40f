"""config.yaml loads strictly into the dataclasses; overrides work; bad keys and values are clear errors."""
import dataclasses
import re
import subprocess
import sys

import pytest
import yaml

from runtime.config import DEFAULT_CONFIG_PATH, AppConfig, ConfigError, load_config, with_cache_paths

REPO = DEFAULT_CONFIG_PATH.parent


def test_default_config_loads_and_matches_dataclass_defaults():
    assert load_config() == with_cache_paths(AppConfig())


def test_relative_cache_folders_live_in_the_users_cache_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("ROAM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cfg = load_config(None, [f"model.compile_cache_dir={tmp_path / 'mine'}"])
    assert cfg.scenes.cache_dir == str(tmp_path / "xdg" / "roam" / "scenes")
    assert cfg.model.compile_cache_dir == str(tmp_path / "mine")                      # absolute: as given
    monkeypatch.setenv("ROAM_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert load_config().scenes.cache_dir == str(tmp_path / "elsewhere" / "scenes")


def _leaf_paths(obj, prefix=()):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaf_paths(value, prefix + (f.name,))
        else:
            yield prefix + (f.name,)


def test_every_default_is_written_in_config_yaml_with_a_comment():
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    missing = []
    for path in _leaf_paths(AppConfig()):
        node = raw
        for part in path:
            if not isinstance(node, dict) or part not in node:
                missing.append(".".join(path))
                break
            node = node[part]
    assert not missing, f"config.yaml lacks keys: {missing}"
    uncommented = [line for line in DEFAULT_CONFIG_PATH.read_text().splitlines()
                   if re.match(r"^\s*[a-z_0-9]+:\s*\S", line) and "#" not in line]
    assert not uncommented, f"config.yaml keys without a comment: {uncommented}"


def test_override_changes_a_nested_value_and_converts_types():
    cfg = load_config(overrides=["runtime.loop.fps=30", "scenes.width=416"])
    assert cfg.runtime.loop.fps == 30.0 and isinstance(cfg.runtime.loop.fps, float)
    assert cfg.scenes.width == 416


@pytest.mark.parametrize("override, message", [
    ("runtime.loop.fsp=30", "--set runtime.loop: unknown keys ['fsp']"),
    ("runtime.loop.fps=fast", "--set runtime.loop.fps: expected float"),
    ("scenes.width=1.5", "--set scenes.width: expected int"),
    ("runtime.loop.tick_hz=0", "--set runtime.loop.tick_hz=0 is out of range: expected 1 to 1000"),
    ("runtime.loop.fps", "expected KEY=VALUE"),
    ("nosuch.key=1", "unknown keys ['nosuch']"),
])
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(overrides=[override])


def test_unknown_key_in_file_is_an_error(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("runtime:\n  loop:\n    tick_hz: 60\n  turbo: true\n")
    with pytest.raises(ConfigError, match=r"^config.yaml: runtime: unknown keys \['turbo'\]"):
        load_config(bad)


def test_a_bad_value_is_blamed_on_the_file_and_a_set_can_mend_it(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("runtime:\n  loop:\n    tick_hz: 0\n")
    with pytest.raises(ConfigError, match=r"^mine.yaml: runtime.loop.tick_hz=0 is out of range"):
        load_config(mine, ["runtime.loop.fps=30"])
    assert load_config(mine, ["runtime.loop.tick_hz=120"]).runtime.loop.tick_hz == 120


def test_cli_reports_config_errors_in_one_line():
    proc = subprocess.run([sys.executable, "main.py", "--set", "runtime.loop.fps=abc", "doctor"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "runtime.loop.fps" in lines[0]


def test_doctor_says_whether_fp8_attention_can_run_here():
    import torch
    from model.fp8_attention import fp8_attention_unavailable
    proc = subprocess.run([sys.executable, "main.py", "doctor"], cwd=REPO, capture_output=True, text=True, timeout=120)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("FP8 attention (model.fp8):"))
    reason = fp8_attention_unavailable(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    assert line.endswith(": available") if reason is None else (reason in line and "not available" in line)
