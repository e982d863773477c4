"""Exceptions the core raises; the CLI turns them into one line on stderr and an exit code."""


class TokeconError(Exception):
    """Bad input from the user (unknown name, malformed option, broken catalog): exit code 2."""

    exit_code = 2


class CatalogError(TokeconError):
    """A catalog file is malformed; the message names the file, the entry and the field."""


class DoesNotFitError(TokeconError):
    """The model cannot be held by the requested devices even at batch 1."""
