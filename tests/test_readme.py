"""The README stays true: its two commands are the ones CI runs, every command line it shows parses with
today's flags and config keys, every file it links exists, and it stays short enough to read."""
import re
import shlex
from pathlib import Path

import pytest

from cli.parser import COMMANDS, build_parser
from runtime.config import load_config

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def shown_command_lines() -> list[str]:
    """Every `python3 main.py ...` the README shows, in code spans and code blocks."""
    spans = re.findall(r"`([^`\n]+)`", README) + re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [line.strip() for span in spans for line in span.splitlines()]
    return sorted({line[line.index("main.py"):] for line in lines if line.startswith("python3 main.py")})


def test_the_two_commands_come_first_and_the_second_is_what_ci_runs():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()
    assert first_block[0] == "python3 -m pip install -r requirements.txt && python3 main.py"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert first_block[1] in ci, f"the README's test command {first_block[1]!r} is not the one .ci/run runs"
    commands = [line for line in ci if line and not line.startswith(("#", "set ", "cd ", "export "))]
    assert commands == [first_block[1]], f".ci/run runs more than the README's test command: {commands}"


def test_the_readme_is_short():
    assert len(README.splitlines()) <= 200


@pytest.mark.parametrize("line", shown_command_lines())
def test_every_command_line_shown_parses(line):
    argv = [token for token in shlex.split(line)[1:] if token not in ("-h", "--help")]
    if not any(token in COMMANDS for token in argv):
        argv = ["play", *argv]
    args = build_parser().parse_args(argv)
    load_config(overrides=[*args.overrides, *args.overrides_sub])


def test_every_flag_named_after_a_command_exists():
    """Spans such as `play --record` or `build --depth auto|sample`: the command has that option."""
    commands = build_parser()._subparsers._group_actions[0].choices
    named = [(span.split()[0], flag) for span in re.findall(r"`([a-z]+ --[^`]+)`", README)
             for flag in re.findall(r"(?:^|\s)(--[a-z_-]+)", span)]
    assert named
    missing = [f"{command} {flag}" for command, flag in named
               if command in commands and flag not in commands[command]._option_string_actions]
    assert not missing, f"the README names options that do not exist: {missing}"


def test_every_option_mentioned_exists_somewhere():
    commands = build_parser()._subparsers._group_actions[0].choices
    known = {flag for parser in commands.values() for flag in parser._option_string_actions}
    roam_text = re.sub(r"python3 -m pip install[^&\n`]*", "", README)          # pip's own options are not roam's
    mentioned = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*)", roam_text))
    unknown = sorted(mentioned - known)
    assert not unknown, f"the README mentions options no command has: {unknown}"


def test_every_set_key_shown_exists():
    for key, value in re.findall(r"--set ([a-z_.]+)=([^\s`]+)", README):
        load_config(overrides=[f"{key}={value}"])


def test_every_linked_file_exists():
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)", README) if not t.startswith("http")]
    assert targets and not [t for t in targets if not (REPO / t).exists()]
