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
