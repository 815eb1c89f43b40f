"""The documentation of every config key, in one place: the comment on its dataclass field
(runtime/config.py, controllers/config.py, scenes/config.py, model/config.py). config.yaml repeats
each comment word for word; tests/runtime/test_config_docs.py checks that they agree.

    python3 -m runtime.config_docs          # list the keys whose comments differ or are missing
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import sys
import tokenize
import typing
from pathlib import Path

from runtime.config import DEFAULT_CONFIG_PATH, AppConfig

YAML_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_]\w*):(?P<rest>.*)$")


def field_comments(cls=AppConfig, prefix: str = "") -> dict[str, str]:
    """'runtime.rig.walk_speed' -> the comment on that field of its dataclass ('' when none), for
    every field of `cls` and of the dataclasses below it."""
    source = inspect.getsource(cls)
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    lines = {node.target.id: range(node.lineno, node.end_lineno + 1)
             for node in ast.parse(source).body[0].body if isinstance(node, ast.AnnAssign)}
    hints = typing.get_type_hints(cls)
    out = {}
    for field in dataclasses.fields(cls):
        key = prefix + field.name
        out[key] = next((comments[i] for i in lines[field.name] if i in comments), "")
        if dataclasses.is_dataclass(hints[field.name]):
            out.update(field_comments(hints[field.name], key + "."))
    return out


def yaml_comments(path: Path = DEFAULT_CONFIG_PATH) -> dict[str, str]:
    """'runtime.rig.walk_speed' -> its comment in config.yaml ('' when none)."""
    out, stack = {}, []
    for line in path.read_text().splitlines():
        m = YAML_KEY.match(line)
        if not m:
            continue
        depth = len(m["indent"]) // 2
        stack[depth:] = [m["key"]]
        comment = re.search(r"\s#\s?(.*)$", m["rest"])
        out[".".join(stack)] = comment.group(1).strip() if comment else ""
    return out


def differences() -> list[str]:
    """Keys whose comments differ, or are missing (a section may go without one in both places)."""
    fields, yaml = field_comments(), yaml_comments()
    sections = {key.rsplit(".", 1)[0] for key in fields if "." in key}
    out = [f"{key}: not in config.yaml" for key in fields if key not in yaml]
    out += [f"{key}: in config.yaml, no such field" for key in yaml if key not in fields]
    for key, doc in fields.items():
        if key in yaml and (doc != yaml[key] or not (doc or key in sections)):
            out.append(f"{key}:\n    field: {doc or '(no comment)'}\n    yaml:  {yaml[key] or '(no comment)'}")
    return out


if __name__ == "__main__":
    found = differences()
    print("\n".join(found) or "config.yaml's comments are the dataclass fields' comments")
    sys.exit(1 if found else 0)
