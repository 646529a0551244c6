"""Errors that the CLI turns into one line and exit code 2."""


class InputError(ValueError):
    """Bad input from the user: the message says what is wrong and how to fix it, in one line."""


class UsageError(InputError):
    """A bad combination of options or arguments."""
