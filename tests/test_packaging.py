"""forgetlab as an installed tool: the wheel carries the shipped configs and queries, and works outside the checkout.

The wheel is built from a copy of the repository and installed into a fresh virtual
environment; that environment reaches the dependencies (torch, mlflow, ...) through a `.pth`
line naming the test interpreter's site-packages, whose own `.pth` files (such as an editable
install of this checkout) are not read. Commands run from a folder outside the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from synthetic_store import build_store

REPO = Path(__file__).resolve().parents[1]


def _run(command: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in __import__("os").environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The `bin/` folder of a fresh venv holding only the built forgetlab wheel."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", "mlruns", "build", "dist", "*.egg-info", "__pycache__"),
    )
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "wheel", "."],
        source,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (root / "wheel").glob("forgetlab-*.whl")
    venv = root / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", venv], root).returncode == 0
    site = Path(
        _run(
            [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], root
        ).stdout.strip()
    )
    (site / "shared-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    done = _run(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "-q", wheel], root
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin"


@pytest.mark.slow
def test_the_installed_wheel_lists_configs_and_fits_outside_the_checkout(installed, tmp_path):
    where = _run([installed / "python", "-c", "import forgetlab; print(forgetlab.__file__)"], tmp_path)
    assert where.stdout.startswith(str(installed.parent)), where.stdout + where.stderr  # not the checkout

    version = _run([installed / "forgetlab", "--version"], tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == "forgetlab 0.1.0"

    listed = _run([installed / "forgetlab", "configs", "list"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    shipped = sorted(p.name for p in (REPO / "lightning_configs").glob("*.yaml")) + sorted(
        p.name for p in (REPO / "queries").glob("*.sql")
    )
    assert all(name in listed.stdout for name in shipped)

    copied = _run([installed / "forgetlab", "configs", "copy", "sweep-smoke.yaml", "."], tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "sweep-smoke.yaml").read_text() == (REPO / "lightning_configs" / "sweep-smoke.yaml").read_text()
    assert (tmp_path / "r4.yaml").is_file()  # its base came along

    printed = _run([installed / "forgetlab", "run", "--config", "r4.yaml", "lora.rank=8", "--print-config"], tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert "rank: 8" in printed.stdout and not (tmp_path / "mlruns").exists()  # printed, ran nothing

    build_store(tmp_path)
    assert _run([installed / "forgetlab", "export"], tmp_path).returncode == 0
    fitted = _run(
        [installed / "forgetlab", "fit", "--law", "linear", "-B", "20", "--no-validation", "--no-store"], tmp_path
    )
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    assert "kjv · linear" in fitted.stdout and "64 points, 8 runs" in fitted.stdout  # the default query, from the wheel


def test_a_command_module_that_cannot_be_imported_is_an_error(monkeypatch):
    """A packaging slip that loses a command module stops the CLI with its name, not one command fewer."""
    import forgetlab.commands as commands

    monkeypatch.setitem(sys.modules, "forgetlab.commands.plot", None)  # what importing a missing module meets
    with pytest.raises(ImportError, match=r"forgetlab\.commands\.plot cannot be imported .*reinstall forgetlab"):
        commands.load_command_modules()


def test_the_cli_does_not_start_without_one_of_its_command_modules(tmp_path):
    script = "import sys; sys.modules['forgetlab.commands.plot'] = None; import forgetlab.cli"
    result = _run([sys.executable, "-c", script], cwd=tmp_path, timeout=120)
    assert result.returncode != 0 and "forgetlab.commands.plot cannot be imported" in result.stderr


def test_every_command_module_is_loaded():
    """A module added under forgetlab/commands/ is listed in COMMAND_MODULES (else its commands never appear)."""
    from forgetlab.commands import COMMAND_MODULES

    on_disk = {path.stem for path in (REPO / "forgetlab" / "commands").glob("*.py") if path.stem != "__init__"}
    assert set(COMMAND_MODULES) == on_disk
