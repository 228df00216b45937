"""The README and the manual (docs/) stay true: every config key is in the config reference, every CLI
command has an example on the front page or in the manual, and the manual's code runs as written."""

from __future__ import annotations

import typing
from pathlib import Path

from pydantic import BaseModel

from forgetlab.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CONFIG_REFERENCE = (ROOT / "docs" / "runs.md").read_text() + (ROOT / "docs" / "probes.md").read_text()
"""The config reference: docs/runs.md, and the probes' own sections in docs/probes.md."""
MANUAL = README + "".join(path.read_text() for path in sorted((ROOT / "docs").glob("*.md")))
"""The front page and every page of the manual, where commands and code are shown."""


def _section_model(annotation) -> type[BaseModel] | None:
    """The config section class behind a field's annotation (`Optional[Section]` included)."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def config_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Every leaf key, dotted, down to the probes' own sections."""
    keys = []
    for name, field in model.model_fields.items():
        section = _section_model(field.annotation)
        keys += config_keys(section, f"{prefix}{name}.") if section else [f"{prefix}{name}"]
    return keys


def test_every_config_key_is_documented():
    missing = [key for key in config_keys() if f"`{key}`" not in CONFIG_REFERENCE]
    assert not missing, f"the config reference (docs/runs.md, docs/probes.md) lacks {missing}"


def test_every_cli_command_has_an_example():
    import typer.main

    from forgetlab.cli import app

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        assert f"forgetlab {name}" in README, f"the README's commands table lacks forgetlab {name}"
        if hasattr(
            command, "commands"
        ):  # a group (typer vendors its own click): e.g. `forgetlab base build`, `forgetlab probes fixtures`
            for sub in command.commands:
                assert f"forgetlab {name} {sub}" in MANUAL, f"neither the README nor docs/ shows forgetlab {name} {sub}"


def python_block(containing: str) -> str:
    """The ```python block of the README or the manual that contains `containing`, dedented as a user would paste it."""
    import re
    import textwrap

    blocks = [
        textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)^\s*```", MANUAL, re.DOTALL | re.MULTILINE)
    ]
    [block] = [block for block in blocks if containing in block]
    return block


def test_the_adapter_reload_snippet_works_as_written(workdir):
    """The snippet once called download_artifacts without the store: no run found, and a stray ./mlflow.db."""
    import subprocess
    import sys

    from tiny import R4, TINY_BASE

    from forgetlab.config import load_run_config
    from forgetlab.finetune.recipe import execute_run

    result = execute_run(load_run_config(R4, [*TINY_BASE, "train.steps=2", "train.eval_every=1"]), progress=False)
    snippet = python_block('runs:/{run_id}/adapter"')
    # What a user fills in: the id the run printed, and the run's model.name (the tests' tiny base).
    script = snippet.replace('"<run id>"', f'"{result.run_id}"').replace('name="embedded"', 'name="embedded-tiny"')
    script += "\nassert {'default'} == set(tuned.peft_config) and tuned.base_model.model is base\nprint(type(tuned).__name__)\n"
    before = set(workdir.iterdir())
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True, timeout=900
    )  # a guard against a hang only
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "PeftModelForCausalLM"
    assert set(workdir.iterdir()) == before, "the snippet left files behind (a stray mlflow.db?)"


def shown_commands() -> list[str]:
    """Every `forgetlab ...` line of the ```bash blocks in the README and the manual, comments cut."""
    import re

    lines = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)^```", MANUAL, re.DOTALL | re.MULTILINE):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line.strip().removeprefix("$ "))
            for part in re.split(r"\s*(?:&&|;|\|)\s*", line):
                if part.startswith("forgetlab "):
                    lines.append(part)
    return lines


def test_every_command_shown_in_the_manual_exists_with_its_options():
    """A command shown in the README or docs/ names a real command and only options it has."""
    import shlex

    import typer.main

    from forgetlab.cli import app

    group = typer.main.get_command(app)
    shown = shown_commands()
    assert len(shown) > 30, "the command examples were not found: did the code blocks change fence?"
    wrong = []
    for line in shown:
        words = shlex.split(line.replace("\\", ""), posix=True)[1:]
        command, rest = group, words
        while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
            if rest[0] not in command.commands:
                wrong.append(f"{line}: no command {rest[0]!r}")
                break
            command, rest = command.commands[rest[0]], rest[1:]
        else:
            options = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
            options |= {"--help"}
            unknown = [word.split("=")[0] for word in rest if word.startswith("-") and word.split("=")[0] not in options
                       and not word.lstrip("-").replace(".", "").isdigit()]  # fmt: skip
            if unknown:
                wrong.append(f"{line}: {command.name} has no {', '.join(unknown)}")
    assert not wrong, "\n".join(wrong)
