"""Size and shape of roam's source: files, lines, function lengths, import circles, capability
probes and the share of tensor-making lines in model/ and scenes/ that carry a shape comment.

    python3 -m benchmarks.code_metrics [--list-unshaped]

Counts every .py file of the source packages and main.py (tests apart). An import circle is a
strongly connected group of our modules, counting imports inside functions too. A probe is a call
to hasattr() or a three-argument getattr(). A tensor-making line is a statement whose value calls a
creating or reshaping function (torch.zeros, .view, .permute, ...; numpy's too); it has a shape
comment when a comment on one of its lines holds a bracketed shape such as `# [B, F, C, h, w]`.
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
MAKERS = {"zeros", "ones", "empty", "full", "arange", "linspace", "tensor", "as_tensor", "from_numpy", "randn",
          "rand", "randint", "cat", "stack", "zeros_like", "ones_like", "empty_like", "full_like", "randn_like",
          "eye", "meshgrid", "concatenate", "array", "asarray", "view", "reshape", "permute", "transpose",
          "unsqueeze", "squeeze", "flatten", "unflatten", "expand", "expand_as", "repeat", "repeat_interleave",
          "movedim", "view_as", "reshape_as", "broadcast_to", "pad", "interpolate", "contiguous_view", "tile"}
SHAPE = re.compile(r"#.*[\[(][^\])]*[\])]")


def source_files() -> list[Path]:
    files = [REPO / "main.py"] if (REPO / "main.py").exists() else []
    for top in sorted(REPO.iterdir()):
        if top.is_dir() and top.name not in SKIP and not top.name.startswith(".") and (top / "__init__.py").exists():
            files += sorted(top.rglob("*.py"))
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(files: list[Path]) -> dict[str, set[str]]:
    """module -> modules of ours it imports (anywhere in the file)."""
    names = {module_name(p) for p in files}
    graph = {}
    for path in files:
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
        graph[module_name(path)] = {m for m in found if m in names} - {module_name(path)}
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


def probes(files: list[Path]) -> list[str]:
    found = []
    for p in files:
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and (
                    n.func.id == "hasattr" or (n.func.id == "getattr" and len(n.args) == 3)):
                found.append(f"{p.relative_to(REPO)}:{n.lineno}")
    return found


def called_name(call: ast.Call) -> str | None:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


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
        if any(isinstance(c, ast.Call) and called_name(c) in MAKERS for c in ast.walk(node.value)):
            shaped = any(SHAPE.search(comments.get(line, "")) for line in range(node.lineno, node.end_lineno + 1))
            out.append((node.lineno, shaped))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--list-unshaped", action="store_true", help="print each tensor-making line without a shape comment")
    args = p.parse_args(argv)
    files = source_files()
    lengths = sorted(function_lengths(files))
    found_circles = circles(import_graph(files))
    found_probes = probes(files)
    shaped_files = [f for f in files if f.relative_to(REPO).parts[0] in SHAPED_DIRS]
    lines = [(f, n, s) for f in shaped_files for n, s in tensor_lines(f)]
    share = sum(s for _, _, s in lines) / max(1, len(lines))
    result = {"files": len(files), "lines": sum(len(f.read_text().splitlines()) for f in files),
              "functions": len(lengths), "median_function_lines": statistics.median(lengths),
              "p90_function_lines": lengths[int(0.9 * (len(lengths) - 1))],
              "import_circles": len(found_circles), "modules_in_circles": sum(map(len, found_circles)),
              "probes": len(found_probes), "tensor_lines": len(lines), "shape_comment_share": round(share, 3)}
    for key, value in result.items():
        print(f"{key:<22} {value}")
    for group in found_circles:
        print("circle:", " <-> ".join(group))
    for where in found_probes:
        print("probe:", where)
    if args.list_unshaped:
        for f, n, s in lines:
            if not s:
                print(f"unshaped: {f.relative_to(REPO)}:{n}")
    return result


if __name__ == "__main__":
    main()
