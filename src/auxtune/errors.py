"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from auxtune.config import ConfigError


class UserError(Exception):
    """Bad input (a file, an address, a value): the message says what is wrong and how to fix it."""


class DataError(UserError):
    """A dataset file is missing or malformed; the message names the file and what was expected."""


# A ConfigError is a user error too; the CLI catches both through this tuple.
USER_ERRORS = (UserError, ConfigError)
