"""Which runs may share one law, and what happens to points that mix runs that may not.

Runs of different base models (`model`, `base_fingerprint`), context lengths, learning rates or
step budgets (`steps`, which shapes the schedule) give different curves; pooling them gave a
newcomer R² 0.15 and c = −0.45 without a word. One rule says which runs may be pooled
(`varying_columns`: every comparability column must hold one value), and the caller names the
policy for points that break it:

- REFUSE (`forgetlab fit`): one line naming the first mixed column, its values and the fix
  (`--param model=...`, or `--by model` to fit them apart);
- SPLIT (`forgetlab report`): each combination of the mixed columns' values is its own set,
  labelled after the data set, e.g. 'code · steps=3000' for a long-N arm.

`plot` applies the same rule (`mixed_column`) to the runs it would average into one line.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Union

from forgetlab.errors import UserError

# Columns of the points whose values must agree for runs to share one law.
COMPARABILITY = ("model", "base_fingerprint", "context_length", "lr", "steps")
REFUSE = "refuse"
SPLIT = "split"
POLICIES = (REFUSE, SPLIT)


def label(value: Any) -> str:
    """A value as the refusal and the split sets' labels print it (NULL for missing)."""
    if value is None or value != value:
        return "NULL"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _skipped(skip: Union[str, Iterable[str], None]) -> set[str]:
    return {skip} if isinstance(skip, str) else set(skip or ())


def _in_order(text: str) -> tuple:
    """Numbers by value (900 before 3000), then other labels by name."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def varying_columns(
    rows, columns: tuple[str, ...] = COMPARABILITY, skip: Union[str, Iterable[str], None] = None
) -> list[tuple[str, list[str]]]:
    """Each of `columns` whose values differ within `rows`, with those values as sorted labels; [] when all agree."""
    found, skipped = [], _skipped(skip)
    for column in columns:
        if column in skipped or column not in rows.columns:
            continue
        values = sorted({label(v) for v in rows[column].tolist()}, key=_in_order)
        if len(values) >= 2:
            found.append((column, values))
    return found


def mixed_column(
    rows, columns: tuple[str, ...] = COMPARABILITY, skip: Union[str, Iterable[str], None] = None
) -> Optional[tuple[str, list[str]]]:
    """The first of `columns` whose values differ within `rows`, with those values; None when all agree."""
    found = varying_columns(rows, columns, skip)
    return found[0] if found else None


def value_to_keep(values: list[str]) -> str:
    """The value a refusal suggests keeping: the first that is not NULL."""
    return next((v for v in values if v != "NULL"), values[0])


def comparable_sets(
    rows, where: str, policy: str, skip: Union[str, Iterable[str], None] = None
) -> list[tuple[str, Any]]:
    """`rows` as sets of runs that may share one law: (label suffix, rows) per set.

    Rows that agree are one set with suffix ''. Otherwise REFUSE raises a UserError naming `where`,
    the first mixed column, its values and the fix; SPLIT gives one set per combination of the mixed
    columns' values, suffixed ' · column=value' for each, in the order of first appearance.
    `skip` are columns the caller splits on itself (`fit --by`) or that the law pools (`LawForm.pools`).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r}: one of {', '.join(POLICIES)}")
    varying = varying_columns(rows, skip=skip)
    if not varying:
        return [("", rows)]
    if policy == REFUSE:
        column, values = varying[0]
        pooling = laws_that_pool(column)
        raise UserError(
            f"{where}: the points mix runs that cannot share one law: {column} = {', '.join(values)}; "
            f"fit one with --param {column}={value_to_keep(values)}, or fit them apart with --by {column}"
            + (f", or fit them together with --law {pooling[0]} (it has a term for it)" if pooling else "")
        )
    import pandas as pd

    suffix = pd.Series("", index=rows.index, dtype=object)
    for column, _ in varying:
        suffix = suffix + f" · {column}=" + rows[column].map(label)
    return [(name, rows[suffix == name]) for name in dict.fromkeys(suffix.tolist())]


def laws_that_pool(column: str) -> list[str]:
    """The registered laws that may pool runs differing in `column` (`LawForm.pools`)."""
    from forgetlab.laws.forms import get_law, law_names

    return [name for name in law_names() if column in get_law(name).pools]


def shared_keys(rows) -> dict[str, Any]:
    """The comparability columns' values shared by all `rows` (one set of `comparable_sets`); a
    column a law pooled, whose values differ, is left out (`varying_columns` gives them)."""
    found = {}
    for column in COMPARABILITY:
        if column in rows.columns and len(rows) and rows[column].nunique(dropna=False) == 1:
            value = rows[column].iloc[0]
            found[column] = (
                None if value is None or value != value else (value.item() if hasattr(value, "item") else value)
            )
    return found
