"""Size and shape of roam's source: files, lines, function lengths, import circles, capability
probes and the share of tensor-making lines in model/ and scenes/ that carry a shape comment.

    python3 -m benchmarks.code_metrics [TREE ...] [--list-unshaped]

TREE: a checkout of roam (default: this one); with several, one column each. An older commit:
`d=$(mktemp -d) && git archive COMMIT | tar -x -C $d && python3 -m benchmarks.code_metrics $d .`

Counts every .py file of a tree's source packages and main.py (tests apart). An import circle is a
strongly connected group of our modules, counting imports inside functions too. A probe is a call
to hasattr() or a three-argument getattr(). A tensor-making line is an assignment or return whose
value calls a creator of torch, numpy or torch.nn.functional (torch.zeros, np.stack, F.pad, ...) or a
reshaping method (.view, .permute, ...), unless it turns the result into a Python number; it has a
shape comment when a comment on one of its lines holds a bracketed shape such as `# [B, F, C, h, w]`.
"""
from __future__ import annotations

import argparse
import ast
import io
import re
import statistics
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SKIP = {"tests", ".git", ".cache", "out", "checkpoints", "traj", "docs", ".ci"}
SHAPED_DIRS = ("model", "scenes")
LIBRARIES = {"torch", "np", "numpy", "F"}          # creators count when called from these
CREATORS = {"zeros", "ones", "empty", "full", "arange", "linspace", "tensor", "as_tensor", "from_numpy", "randn",
            "rand", "randint", "cat", "stack", "zeros_like", "ones_like", "empty_like", "full_like", "randn_like",
            "eye", "meshgrid", "concatenate", "array", "asarray", "pad", "interpolate", "einsum", "polar", "tile",
            "broadcast_to", "pixel_shuffle", "pixel_unshuffle", "conv2d", "conv3d", "where"}
RESHAPERS = {"view", "reshape", "permute", "transpose", "unsqueeze", "squeeze", "flatten", "unflatten", "expand",
             "expand_as", "repeat", "repeat_interleave", "movedim", "view_as", "reshape_as", "new_zeros", "new_ones",
             "new_empty", "new_full", "new_tensor"}
SCALARS = {"float", "int", "bool", "item", "tolist", "len"}   # a value turned into Python numbers is no tensor
SHAPE = re.compile(r"#.*[\[(][^\])]*[\])]")


def source_files(root: Path = REPO) -> list[Path]:
    """main.py and every .py file of the tree's packages (top-level folders with an __init__.py)."""
    files = [root / "main.py"] if (root / "main.py").exists() else []
    for top in sorted(root.iterdir()):
        if top.is_dir() and top.name not in SKIP and not top.name.startswith(".") and (top / "__init__.py").exists():
            files += sorted(top.rglob("*.py"))
    return files


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(files: list[Path], root: Path = REPO) -> dict[str, set[str]]:
    """module -> modules of ours it imports (anywhere in the file)."""
    names = {module_name(p, root) for p in files}
    graph = {}
    for path in files:
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
        graph[module_name(path, root)] = {m for m in found if m in names} - {module_name(path, root)}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def function_lengths(files: list[Path]) -> list[int]:
    return [n.end_lineno - n.lineno + 1 for p in files for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def probes(files: list[Path], root: Path = REPO) -> list[str]:
    """file:line of each hasattr() and three-argument getattr()."""
    found = []
    for p in files:
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and (
                    n.func.id == "hasattr" or (n.func.id == "getattr" and len(n.args) == 3)):
                found.append(f"{p.relative_to(root)}:{n.lineno}")
    return found


def called_name(call: ast.Call) -> str | None:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def makes_array(call: ast.Call) -> bool:
    """A library creator (torch.zeros, np.stack, F.pad, ...) or a reshaping method (.view, .permute, ...)."""
    f = call.func
    if not isinstance(f, ast.Attribute):
        return False
    if f.attr in RESHAPERS:
        return True
    owner = f.value
    while isinstance(owner, ast.Attribute):        # torch.nn.functional.pad -> torch
        owner = owner.value
    return f.attr in CREATORS and isinstance(owner, ast.Name) and owner.id in LIBRARIES


def tensor_lines(path: Path) -> list[tuple[int, bool]]:
    """(first line, has a shape comment) of each statement in `path` whose value makes or reshapes an array."""
    text = path.read_text()
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
    out = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Return)) or node.value is None:
            continue
        top = node.value
        if isinstance(top, ast.Call) and called_name(top) in SCALARS:
            continue
        if any(isinstance(c, ast.Call) and makes_array(c) for c in ast.walk(top)):
            shaped = any(SHAPE.search(comments.get(line, "")) for line in range(node.lineno, node.end_lineno + 1))
            out.append((node.lineno, shaped))
    return out


def metrics(root: Path) -> tuple[dict, list[list[str]], list[str], list[str]]:
    """The figures of one tree, its import circles, its probes and its tensor lines without a shape comment."""
    files = source_files(root)
    lengths = sorted(function_lengths(files))
    found_circles = circles(import_graph(files, root))
    found_probes = probes(files, root)
    lines = [(f, n, s) for f in files if f.relative_to(root).parts[0] in SHAPED_DIRS for n, s in tensor_lines(f)]
    result = {"files": len(files), "lines": sum(len(f.read_text().splitlines()) for f in files),
              "functions": len(lengths), "median_function_lines": statistics.median(lengths),
              "p90_function_lines": lengths[int(0.9 * (len(lengths) - 1))],
              "import_circles": len(found_circles), "modules_in_circles": sum(map(len, found_circles)),
              "probes": len(found_probes), "tensor_lines": len(lines),
              "shape_comment_share": round(sum(s for _, _, s in lines) / max(1, len(lines)), 3)}
    unshaped = [f"{f.relative_to(root)}:{n}" for f, n, s in lines if not s]
    return result, found_circles, found_probes, unshaped


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("trees", nargs="*", type=Path, default=[REPO], help="checkouts of roam (default: this one)")
    p.add_argument("--list-unshaped", action="store_true", help="print each tensor-making line without a shape comment")
    args = p.parse_args(argv)
    for tree in args.trees:
        if not (tree / "main.py").is_file():
            raise SystemExit(f"code_metrics: {tree} is not a roam checkout (no main.py); pass the tree's folder")
    found = [metrics(tree.resolve()) for tree in args.trees]
    print(f"{'':<22}" + "".join(f"{str(tree):>24}" for tree in args.trees))
    for key in found[0][0]:
        print(f"{key:<22}" + "".join(f"{result[key]:>24}" for result, *_ in found))
    for tree, (_, found_circles, found_probes, unshaped) in zip(args.trees, found):
        for group in found_circles:
            print(f"{tree}: circle:", " <-> ".join(group))
        for where in found_probes:
            print(f"{tree}: probe:", where)
        for where in unshaped if args.list_unshaped else ():
            print(f"{tree}: unshaped:", where)
    return [result for result, *_ in found]


if __name__ == "__main__":
    main()
