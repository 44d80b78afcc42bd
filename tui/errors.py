"""Errors a user can cause: the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """A problem the user can fix (a missing path, a bad filter, a locked archive).

    The message is shown as is, on one line, without a traceback.
    """
