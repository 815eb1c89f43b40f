"""The error every command raises for bad input from the user."""


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""
