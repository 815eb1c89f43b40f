"""benchmarks/code_metrics.py on a small tree written here: the figures it prints are the tree's."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_code_metrics_measures_the_tree_it_is_given(tmp_path):
    tree = tmp_path / "old"
    write(tree / "main.py", "from app import a\n")
    write(tree / "app" / "__init__.py", "")
    write(tree / "app" / "a.py", "from app import b\n\n\ndef f(x):\n    return hasattr(x, 'y')\n")
    write(tree / "app" / "b.py", "def g():\n    from app import a\n    return a\n")          # a circle through a function
    write(tree / "model" / "__init__.py", "")
    write(tree / "model" / "m.py", "import torch\n\n\ndef h(x):\n    y = x.view(2, 3)      # [2, 3]\n"
                                   "    z = torch.zeros(4)\n    return y, z\n")
    write(tree / "tests" / "test_x.py", "def test():\n    assert hasattr(1, 'real')\n")   # tests do not count
    proc = subprocess.run([sys.executable, "-m", "benchmarks.code_metrics", str(tree), "--list-unshaped"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    figures = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()[1:] if len(line.split()) == 2}
    assert figures["files"] == "6" and figures["functions"] == "3" and figures["median_function_lines"] == "3"
    assert figures["import_circles"] == "1" and figures["modules_in_circles"] == "2" and figures["probes"] == "1"
    assert figures["tensor_lines"] == "2" and figures["shape_comment_share"] == "0.5"
    assert f"{tree}: circle: app.a <-> app.b" in proc.stdout and f"{tree}: probe: app/a.py:5" in proc.stdout
    assert f"{tree}: unshaped: model/m.py:6" in proc.stdout


def test_code_metrics_says_what_a_tree_must_be(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.code_metrics", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "not a roam checkout (no main.py)" in proc.stderr
