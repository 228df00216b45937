"""The run configs, sweeps and SQL queries that ship with forgetlab, in a checkout or installed.

In the repository they stay where users meet them (`lightning_configs/`, `queries/`); building
a wheel copies them into the package as `forgetlab/_shipped/<folder>/` (setup.py's build step),
so one set of files in git serves both. Lookups try the installed copy first, then the checkout.
"""

from __future__ import annotations

from pathlib import Path

from forgetlab.errors import UserError

# kind -> (folder, file pattern)
SHIPPED: dict[str, tuple[str, str]] = {"configs": ("lightning_configs", "*.yaml"), "queries": ("queries", "*.sql")}
_PACKAGE = Path(__file__).resolve().parent


def shipped_folder(kind: str) -> Path:
    """Where the shipped files of a kind are: inside the installed package, else in the checkout."""
    folder, _ = SHIPPED[kind]
    for candidate in (_PACKAGE / "_shipped" / folder, _PACKAGE.parent / folder):
        if candidate.is_dir():
            return candidate
    raise UserError(f"the shipped {kind} are missing from this installation ({folder}/); reinstall forgetlab")


def shipped_files(kind: str) -> list[Path]:
    folder, pattern = SHIPPED[kind]
    return sorted(shipped_folder(kind).glob(pattern))


def find_shipped(name: str) -> Path:
    """A shipped file by name (`r4`, `r4.yaml`, `laws.sql`, `lightning_configs/r4.yaml`)."""
    wanted = Path(name).name
    for kind, (_, pattern) in SHIPPED.items():
        suffix = pattern.removeprefix("*")
        for path in shipped_files(kind):
            if wanted in (path.name, path.name.removesuffix(suffix)):
                return path
    known = ", ".join(path.name for kind in SHIPPED for path in shipped_files(kind))
    raise UserError(f"no shipped config or query named '{name}'; one of: {known} (see `forgetlab configs list`)")


def given_or_shipped(path: Path, kind: str) -> Path:
    """`path` as given when it exists; else, for a relative path like `queries/curves.sql`, the
    shipped copy (the checkout's or the wheel's), so what forgetlab prints works from any folder."""
    if path.exists() or path.is_absolute():
        return path
    shipped = shipped_folder(kind).parent / path
    return shipped if shipped.exists() else path


def shipped_query_path(name: str) -> Path:
    """A shipped query file, e.g. `shipped_query_path("laws.sql")` (the default points of `fit`)."""
    path = shipped_folder("queries") / name
    if not path.is_file():
        raise UserError(f"no shipped query '{name}'; see `forgetlab configs list`")
    return path


def description(path: Path, limit: int = 110) -> str:
    """The first sentence of a shipped file's header comment (at most `limit` characters): what it is for."""
    words: list[str] = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped.startswith(("#", "--")) or stripped.lstrip("#-").startswith("  "):
            break  # the end of the header, or an indented usage example
        words.extend(stripped.lstrip("#-").split())
        sentence = " ".join(words) + " "
        for end in (". ", "? "):
            if end in sentence:
                words = (sentence.split(end)[0] + end.strip()).split()
                break
        else:
            continue
        break
    text = " ".join(words)
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _sweep_base(path: Path) -> str | None:
    """The `base:` a shipped sweep file names, if it is one."""
    import yaml

    if path.suffix != ".yaml":
        return None
    content = yaml.safe_load(path.read_text())
    return content.get("base") if isinstance(content, dict) and "grid" in content else None


def copy_shipped(name: str, destination: Path, force: bool = False) -> list[Path]:
    """Copy a shipped file (and, for a sweep, its base run config when missing there); return what was written."""
    source = find_shipped(name)
    target = destination / source.name if destination.is_dir() else destination
    if target.exists() and not force:
        raise UserError(f"{target} exists; pass --force to overwrite it or give another destination")
    if not target.parent.is_dir():
        raise UserError(f"no folder {target.parent}; create it first or give an existing folder")
    target.write_text(source.read_text())
    written = [target]
    base = _sweep_base(source)
    if base and not (target.parent / base).exists() and (source.parent / base).is_file():
        (target.parent / base).write_text((source.parent / base).read_text())
        written.append(target.parent / base)
    return written
