"""main.py doctor, as a user runs it: part by part, the command and size of what is missing, what
roam does without it, and one line per broken file; exit 1 when something is invalid."""
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def doctor(root) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", "doctor", "--set", f"model.checkpoint_dir={root}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_an_empty_folder_names_each_parts_command_size_and_fallback(tmp_path):
    proc = doctor(tmp_path)
    assert proc.returncode == 0, proc.stderr
    for part, size in (("dit", "23.3"), ("depth", "6.8"), ("captions", "1.6"), ("tae", "0.02")):
        assert f"\n{part} (missing): " in proc.stdout
        assert f"  get it:     python main.py download --only {part}   (about {size} GB)" in proc.stdout
    assert "without it: the weight-free `estimate` depth" in proc.stdout
    assert "without it: the geometry refiner" in proc.stdout
    assert "DiT refiner: not available" in proc.stdout


def test_the_tiny_tree_is_complete_then_broken_files_are_named(tiny_checkpoints, tmp_path):
    proc = doctor(tiny_checkpoints)
    assert proc.returncode == 0, proc.stderr
    assert all(f"\n{part} (complete): " in proc.stdout for part in ("dit", "depth", "captions", "tae"))
    assert "get it:" not in proc.stdout and "DiT refiner: ready" in proc.stdout

    root = shutil.copytree(tiny_checkpoints, tmp_path / "checkpoints")
    (root / "Wan2.1-T2V-1.3B/Wan2.1_VAE.pth").unlink()
    da3 = root / "DA3/model.safetensors"
    da3.write_bytes(da3.read_bytes()[:4096])
    (root / "Florence-2-large/config.json").write_text('{"auto_map": {}, "model_type": "florence2"}')
    proc = doctor(root)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert "  missing   Wan2.1 VAE                  Wan2.1-T2V-1.3B/Wan2.1_VAE.pth" in lines
    assert any(l.startswith("  invalid   DA3 depth") and "truncated" in l and "--only depth" in l for l in lines)
    assert any(l.startswith("  invalid   Florence-2 captions") and "microsoft's original" in l for l in lines)
    assert "\ndit (incomplete): " in proc.stdout and "\ntae (complete): " in proc.stdout
