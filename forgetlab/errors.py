"""The one exception type the CLI turns into a single line and exit code 2.

Everything a user can get wrong (a config key, a missing file, bad SQL, too few points to fit)
raises `UserError` with a message that names the problem *and* the fix. The CLI prints that
message alone, with no traceback, and exits with `exit_code`.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, reported as one line; never a bug in forgetlab."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message
