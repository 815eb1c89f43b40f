"""The command line's parser with one-line errors, and its flags' numbers, range-checked as the config's are."""
from __future__ import annotations

import argparse

from runtime.config import out_of_range


class Parser(argparse.ArgumentParser):
    """argparse with roam's one-line errors: `roam: error: ...`, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"roam: error: {message}; see python3 {self.prog} --help\n")


def number_flag(kind: type, low: float, high: float, why: str):
    """A command-line flag's argparse `type`: an int or float in [low, high]; anything else is
    argparse's error naming the value, the range and why."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if problem := out_of_range(value, low, high, why):
            raise argparse.ArgumentTypeError(f"{text} {problem}")
        return value
    parse.__name__ = kind.__name__                # argparse names the type in some messages
    return parse
