"""The README stays true: every config key and every CLI command it must document is in it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from forgetlab.config import RunConfig

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def config_keys() -> list[str]:
    keys = []
    for name, field in RunConfig.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += [f"{name}.{sub}" for sub in annotation.model_fields]
        else:
            keys.append(name)
    return keys


def test_every_config_key_is_documented():
    missing = [key for key in config_keys() if f"`{key}`" not in README]
    assert not missing, f"README's config reference lacks {missing}"


def test_every_cli_command_has_an_example():
    from forgetlab.cli import app

    import typer.main

    group = typer.main.get_command(app)
    for name in group.commands:
        assert f"forgetlab {name}" in README, name
