"""The one error type scenes/ raises for bad user input (files, flags, frame counts).

Messages are single lines that name the file (and line or key) and what was expected, so the CLI
can print them as they are. Internal invariants use `assert`, never this class."""


class SceneInputError(ValueError):
    """Bad input to scenes/: a missing or malformed file, an impossible frame count or index."""
