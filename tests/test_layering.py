"""The one-way data flow of DESIGN.md: scenes/ and model/ never import runtime/, controllers/ or each
other; controllers/ imports none of our packages; only main.py imports runtime/."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = {"controllers", "runtime", "scenes", "model", "benchmarks"}
ALLOWED = {
    "controllers": set(),
    "scenes": set(),
    "model": set(),
    "runtime": {"controllers", "scenes", "model"},
    "benchmarks": {"runtime", "controllers", "scenes", "model"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


def test_import_edges_follow_the_design():
    bad = []
    for package, allowed in ALLOWED.items():
        for path in (REPO / package).rglob("*.py"):
            for dep in imported_packages(path) - allowed - {package}:
                bad.append(f"{path.relative_to(REPO)} imports {dep}")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_modules_stay_small():
    long = [f"{p.relative_to(REPO)}: {n} lines" for package in ALLOWED
            for p in (REPO / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600]
    assert not long, "modules over 600 lines:\n" + "\n".join(long)
