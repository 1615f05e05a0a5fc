"""User-facing errors: the CLI prints them as one line (no traceback) and exits non-zero."""


class UserError(Exception):
    """Bad input from the user. The message names what is wrong and how to fix it."""
