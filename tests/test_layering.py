"""The layering of docs/architecture.md: every import between our packages is an edge its table
allows, and no module imports itself back through others (imports inside functions count)."""
import re
from pathlib import Path

from benchmarks.code_metrics import REPO, circles, import_graph, source_files

TABLE_ROW = re.compile(r"^\| `(\w+)/` \|[^|]*\| ([^|]*) \|$")


def allowed_edges() -> dict[str, set[str]]:
    """package -> packages it may import, read from docs/architecture.md's table."""
    rows = {}
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        if m := TABLE_ROW.match(line.strip()):
            rows[m.group(1)] = {p.strip() for p in m.group(2).split(",")} - {"(none)", ""}
    rows["main"] = {"cli"}
    return rows


def test_the_table_covers_every_package():
    packages = {p.relative_to(REPO).parts[0] for p in source_files()} - {"main.py"}
    assert packages == set(allowed_edges()) - {"main"}


def test_import_edges_follow_the_architecture():
    allowed = allowed_edges()
    bad = []
    for module, deps in import_graph(source_files()).items():
        package = module.split(".")[0]
        for dep in deps:
            if dep.split(".")[0] not in allowed[package] | {package}:
                bad.append(f"{module} imports {dep}")
    assert not bad, "imports docs/architecture.md does not allow:\n" + "\n".join(sorted(bad))


def test_no_import_circles():
    found = circles(import_graph(source_files()))
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(group) for group in found)


def test_modules_stay_small():
    long = [f"{p.relative_to(REPO)}: {n} lines" for p in source_files() if (n := len(p.read_text().splitlines())) > 600]
    assert not long, "modules over 600 lines:\n" + "\n".join(long)
