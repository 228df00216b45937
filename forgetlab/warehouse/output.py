"""Render a query's Arrow table as a terminal table, CSV, JSON, Markdown or Parquet.

CSV, JSON and Markdown go to stdout unless `--output` names a file, so `> out.csv` works and
status lines (which go to stderr) never mix into the data. Parquet is binary: it needs a file.
Intervals (`now() - created`) are written as DuckDB writes them, `1 day 02:03:04.5`, in every
format (Arrow shows them as `MonthDayNano(...)`, and its CSV and Parquet writers refuse them);
`epoch(x)` in the SQL gives seconds instead.
"""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

import pyarrow as pa

from forgetlab.errors import UserError

FORMATS = ("table", "csv", "json", "markdown", "parquet")


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def interval_text(months: int, days: int, nanoseconds: int) -> str:
    """An interval as DuckDB's VARCHAR cast writes it: '1 year 2 months 3 days 04:05:06.5', '-00:01:30'."""

    def count(value: int, unit: str) -> str:
        return f"{value} {unit}" + ("" if abs(value) == 1 else "s")

    years = int(months / 12)  # toward zero, as DuckDB: -14 months is -1 year -2 months
    parts = [
        count(value, unit) for value, unit in ((years, "year"), (months - 12 * years, "month"), (days, "day")) if value
    ]
    if nanoseconds or not parts:
        sign, micros = ("-" if nanoseconds < 0 else ""), abs(nanoseconds) // 1000
        seconds, fraction = divmod(micros, 1_000_000)
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        text = f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}"
        parts.append(text + (f".{fraction:06d}".rstrip("0") if fraction else ""))
    return " ".join(parts)


def readable(table: pa.Table) -> pa.Table:
    """Interval columns as text (`interval_text`); every other column as it is."""
    for index, field in enumerate(table.schema):
        if pa.types.is_interval(field.type):
            values = [
                None if v is None else interval_text(v.months, v.days, v.nanoseconds)
                for v in table.column(index).to_pylist()
            ]
            table = table.set_column(index, pa.field(field.name, pa.string()), pa.array(values, pa.string()))
    return table


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    return value


def to_csv(table: pa.Table) -> bytes:
    import pyarrow.csv as pacsv

    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def to_json(table: pa.Table) -> str:
    rows = [{k: _json_safe(v) for k, v in row.items()} for row in table.to_pylist()]
    return json.dumps(rows, default=str, indent=1) + "\n"


def to_markdown(table: pa.Table) -> str:
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join("---" for _ in names) + "|"]
    for row in table.to_pylist():
        lines.append("| " + " | ".join(_cell(row[name]).replace("|", "\\|") for name in names) + " |")
    return "\n".join(lines) + "\n"


def print_table(table: pa.Table, max_rows: int, stream: Optional[TextIO] = None) -> None:
    from rich.console import Console
    from rich.table import Table

    stream = stream or sys.stdout
    # Not a terminal (a pipe, a file): no width to fit, so never truncate cells.
    console = Console(file=stream, width=None if stream.isatty() else 100_000)
    shown = table if max_rows <= 0 else table.slice(0, max_rows)
    view = Table(show_lines=False, header_style="bold")
    for column in table.schema:
        numeric = (
            pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_decimal(column.type)
        )
        view.add_column(column.name, justify="right" if numeric else "left")
    for row in shown.to_pylist():
        view.add_row(*(_cell(value) for value in row.values()))
    console.print(view)
    hidden = table.num_rows - shown.num_rows
    note = (
        f"{table.num_rows:,} rows"
        if not hidden
        else (
            f"{table.num_rows:,} rows, first {shown.num_rows:,} shown (--max-rows 0 shows all; --format csv for data)"
        )
    )
    print(note, file=sys.stderr)


def write_result(table: pa.Table, fmt: str, output: Optional[Path], max_rows: int = 100) -> None:
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    table = readable(table)
    if fmt == "parquet":
        if output is None:
            raise UserError("--format parquet writes a binary file: add --output PATH.parquet")
        import pyarrow.parquet as pq

        pq.write_table(table, output)
        print(f"wrote {table.num_rows:,} rows to {output}", file=sys.stderr)
        return
    if fmt == "table":
        if output is not None:
            with open(output, "w") as stream:
                print_table(table, max_rows, stream)
        else:
            print_table(table, max_rows)
        return
    data: bytes = to_csv(table) if fmt == "csv" else (to_json(table) if fmt == "json" else to_markdown(table)).encode()
    if output is not None:
        Path(output).write_bytes(data)
        print(f"wrote {table.num_rows:,} rows to {output}", file=sys.stderr)
    else:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            sys.stdout.write(data.decode())
        else:
            sys.stdout.flush()
            buffer.write(data)
            buffer.flush()
