"""The README stays true: every config key and every CLI command it must document is in it."""

from __future__ import annotations

import typing
from pathlib import Path

from pydantic import BaseModel

from forgetlab.config import RunConfig

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


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
    missing = [key for key in config_keys() if f"`{key}`" not in README]
    assert not missing, f"README's config reference lacks {missing}"


def test_every_cli_command_has_an_example():
    from forgetlab.cli import app

    import typer.main

    import click

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        assert f"forgetlab {name}" in README, name
        if isinstance(command, click.Group):  # e.g. `forgetlab base build`, `forgetlab probes fixtures`
            for sub in command.commands:
                assert f"forgetlab {name} {sub}" in README, f"{name} {sub}"


def python_block(containing: str) -> str:
    """The README's ```python block that contains `containing`, dedented as a user would paste it."""
    import re
    import textwrap

    blocks = [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)^\s*```", README, re.DOTALL | re.MULTILINE)]
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
    done = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True, timeout=900)  # a guard against a hang only
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "PeftModelForCausalLM"
    assert set(workdir.iterdir()) == before, "the snippet left files behind (a stray mlflow.db?)"
