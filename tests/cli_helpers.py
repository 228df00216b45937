"""Running the CLI in-process and reading what it prints, as a user sees it."""

from __future__ import annotations

import sys

from forgetlab.cli import main


def invoke(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """`forgetlab ARGS` through the console entry point, in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["forgetlab", *args])
    code = 0
    try:
        main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def summary_text(result) -> str:
    """The table `forgetlab run` prints at the end of a run, as plain text."""
    from rich.console import Console

    from forgetlab.commands.run import print_summary

    console = Console(record=True, width=200)
    print_summary(result, console)
    return console.export_text()
