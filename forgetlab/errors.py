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


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run, raised once the run is marked KILLED in the tracking store.

    It carries what a user needs to continue: the CLI prints the run id and the command that
    resumes it, and exits 130 (the shell's code for Ctrl-C), with no traceback.
    """

    def __init__(self, run_id: str, run_name: str, step: int, tracking_uri: str):
        super().__init__(f"run {run_name} {run_id} interrupted at step {step}")
        self.run_id = run_id
        self.run_name = run_name
        self.step = step
        self.tracking_uri = tracking_uri
