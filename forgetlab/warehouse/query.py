"""Run SQL against the warehouse, read-only, with named parameters and one-line errors.

Queries are files of DuckDB SQL whose `--` header says what they answer and declares parameter
defaults (`-- param: min_step = 50  # why`); DuckDB has no defaults for `$name` parameters, so
they are filled in here and overridden by `--param name=value`. The connection is read-only and
only reading statements are run: a query can never change the warehouse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import duckdb
import pyarrow as pa

from forgetlab.errors import UserError
from forgetlab.locations import default_warehouse_path
from forgetlab.warehouse.reader import connect_read_only

_PARAM_LINE = re.compile(r"^--\s*param:\s*(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<value>.*?)\s*(?:#.*)?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_READING = {"SELECT", "EXPLAIN", "PRAGMA", "SET", "VARIABLE_SET"}


@dataclass(frozen=True)
class QueryFile:
    """A query and what its header declares."""

    sql: str
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def parse_value(text: str) -> Any:
    """`50` -> 50, `0.5` -> 0.5, `'x'` or `"x"` -> x, anything else stays text."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if _NUMBER.match(text):
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    return text


def parse_query(sql: str) -> QueryFile:
    """Read the leading `--` comment block: description lines and `param:` defaults."""
    defaults: dict[str, Any] = {}
    description: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        match = _PARAM_LINE.match(stripped)
        if match:
            defaults[match["name"]] = parse_value(match["value"])
        else:
            description.append(stripped[2:].strip())
    return QueryFile(sql=sql, defaults=defaults, description="\n".join(description).strip())


def load_query(path: Union[str, Path]) -> QueryFile:
    """A query file as given, else the shipped one of that name (`queries/curves.sql` from any folder)."""
    from forgetlab.shipped import given_or_shipped

    path = given_or_shipped(Path(path), "queries")
    try:
        return parse_query(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no query file {path}: pass a .sql file (see queries/) or -e 'SELECT ...'") from None


def parse_param(assignment: str) -> tuple[str, Any]:
    """`name=value` from the command line."""
    name, sep, value = assignment.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_]\w*", name.strip()):
        raise UserError(f"--param {assignment!r}: expected NAME=VALUE, e.g. --param min_step=50")
    return name.strip(), parse_value(value)


def one_line(error: Exception, line_offset: int = 0) -> str:
    """DuckDB's message on one line; its `LINE n: ... ^` pointer becomes (line n, column c).

    `line_offset` shifts line numbers from the statement's own text to the whole query's.
    """
    lines = str(error).splitlines()
    message: list[str] = []
    for index, line in enumerate(lines):
        found = re.match(r"^LINE (\d+):", line)
        if not found:
            if line.strip():
                message.append(line.strip())
            continue
        where = f"line {int(found.group(1)) + line_offset}"
        if index + 1 < len(lines) and "^" in lines[index + 1]:
            column = lines[index + 1].index("^") - len(found.group(0))  # the pointer, after "LINE n: "
            where += f", column {max(column, 1)}"
        return f"{'; '.join(message)} ({where})"
    return "; ".join(message) or type(error).__name__


def _located_error(
    connection: duckdb.DuckDBPyConnection, query: str, bound: dict[str, Any], first: duckdb.Error
) -> duckdb.Error:
    """`connection.sql` errors carry no position; the DB-API path reports it, so ask it (reads only)."""
    try:
        connection.execute(query, bound or None)
    except duckdb.Error as error:
        return error
    try:
        connection.abort()  # it ran this time: drop the unread result so the connection stays usable
    except duckdb.Error:
        pass
    return first


def _line_offsets(sql: str, queries: list[str]) -> list[int]:
    """How many lines of `sql` precede each statement's text."""
    offsets, cursor = [], 0
    for query in queries:
        position = sql.find(query, cursor)
        if position < 0:
            offsets.append(0)
            continue
        offsets.append(sql.count("\n", 0, position))
        cursor = position + len(query)
    return offsets


def check_query(sql: str, params: Optional[Mapping[str, Any]] = None) -> list:
    """Parse `sql` without a database: UserError for a syntax error, an empty query, a statement
    that would write, or a --param the query does not use. Returns the statements."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise UserError(f"SQL error: {one_line(error)}") from None
    if not statements:
        raise UserError("the query is empty; give a SELECT (e.g. -e 'SELECT * FROM final')")
    for number, statement in enumerate(statements, 1):
        kind = statement.type.name
        if kind not in _READING:
            raise UserError(
                f"forgetlab query is read-only: refusing the {kind} statement (statement {number}); "
                "use SELECT, or write results with --output"
            )
    used = set().union(*(statement.named_parameters for statement in statements))
    unused = set(params or {}) - used
    if unused:
        raise UserError(
            f"--param {', '.join(sorted(unused))}: the query has no such parameter"
            + (f" (it uses {', '.join('$' + p for p in sorted(used))})" if used else "; drop the --param")
        )
    return statements


def run_query(
    sql: str,
    params: Optional[Mapping[str, Any]] = None,
    db_path: Union[str, Path, None] = None,
    *,
    connection: Optional[duckdb.DuckDBPyConnection] = None,
) -> pa.Table:
    """Run `sql` (one or more statements; the last one's rows are returned) on the warehouse.

    Parameter values are the header's `-- param:` defaults overridden by `params`. Raises
    `UserError` with one line for bad SQL, a missing parameter, an unused one, or a statement
    that would write.
    """
    query = parse_query(sql)
    values = {**query.defaults, **dict(params or {})}
    statements = check_query(sql, params)

    offsets = _line_offsets(sql, [statement.query for statement in statements])
    own = connection is None
    if own:
        path = Path(db_path) if db_path is not None else default_warehouse_path()
        if not path.exists():
            raise UserError(f"no warehouse at {path}: run `forgetlab export` first")
        connection = connect_read_only(path)
    try:
        table: Optional[pa.Table] = None
        for statement, offset in zip(statements, offsets):
            bound = {name: values[name] for name in statement.named_parameters if name in values}
            missing = set(statement.named_parameters) - set(bound)
            if missing:
                raise UserError(
                    f"the query needs {', '.join('$' + m for m in sorted(missing))}: pass "
                    + " ".join(f"--param {m}=VALUE" for m in sorted(missing))
                    + " or declare a default in its header (-- param: NAME = VALUE)"
                )
            try:
                relation = connection.sql(statement.query, params=bound or None)
                table = relation.to_arrow_table() if relation is not None else None
            except duckdb.Error as error:
                located = _located_error(connection, statement.query, bound, error)
                raise UserError(f"SQL error: {one_line(located, offset)}") from None
        return table if table is not None else pa.table({})
    finally:
        if own:
            connection.close()
