"""roam's command line: parse it (cli/parser.py), load the config, run the command. Bad input
becomes one line and exit code 2; a stop signal (Ctrl-C, SIGTERM, ...) exit code 128 + its number
(cli/stop_signals.py). `python main.py ...` and the `roam` command both come here."""
from __future__ import annotations

import os
import sys

COMMAND_MODULES = {"play": "cli.play", "build": "cli.build", "render": "cli.render.command",
                   "bench": "cli.bench", "doctor": "cli.doctor", "download": "cli.download",
                   "cache": "cli.cache"}


def main(argv: list[str] | None = None) -> int:
    from cli.stop_signals import Interrupted, StopSignals
    with StopSignals() as stop:                     # before anything starts SDL (see cli/stop_signals.py)
        try:
            return run_command(argv, stop)
        except Interrupted as err:                  # a stop signal outside a session: unwound like Ctrl-C
            print("roam: interrupted", file=sys.stderr)
            return err.exit_code


def run_command(argv: list[str] | None, stop) -> int:
    """Parse `argv` and run its command; `stop`: the process's StopSignals, for play's session."""
    from cli.bytecode_cache import use_bytecode_cache
    use_bytecode_cache()                            # before anything imports torch
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")   # no banner when pygame is imported
    from cli.parser import COMMANDS, build_parser
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(token in COMMANDS for token in argv) and not {"-h", "--help"} & set(argv):
        argv = ["play", *argv]                      # play is the default command
    args = parser.parse_args(argv)
    args.argv = argv                                # as typed, for the run records (runtime.telemetry.run_record)
    args.stop = stop                                # StopSignals: play's session ends cleanly on the first one
    args.config = args.config_sub or args.config
    args.overrides = [*args.overrides, *args.overrides_sub]
    return dispatch(args)


def dispatch(args) -> int:
    import importlib

    from cli.errors import UserError
    from runtime.config import ConfigError, load_config
    from scenes.atomic import file_problem
    from scenes.errors import SceneInputError
    try:
        cfg = load_config(args.config, args.overrides)
        return importlib.import_module(COMMAND_MODULES[args.command]).run(cfg, args)
    except (ConfigError, UserError, SceneInputError) as err:      # bad input: one line, exit 2
        print(f"roam: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:                  # an unusable folder, a full disk: one line, exit 2
        if (problem := file_problem(err)) is None:
            raise
        print(f"roam: error: {problem}", file=sys.stderr)
        return 2


def exit_process(code: int) -> None:
    """Exit with `code`. A generation worker still inside a torch op (stopped mid-block when the
    session ended) would make Python's shutdown abort ("terminate called without an active
    exception", exit 134), so with such a thread alive the process ends without that shutdown; every
    output is finished and flushed by then."""
    import logging
    import threading
    if threading.active_count() == 1:
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run() -> None:
    """The `roam` console command."""
    exit_process(main())
