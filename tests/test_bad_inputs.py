"""A catalogue of bad inputs: each is one line on stderr (the problem and the fix), exit code 2,
no traceback, and the tracking store and the warehouse are left exactly as they were.

One small real store (a tiny finished run, exported) is built once for the module; every case
then runs the real CLI entry point (`forgetlab.cli.main`) in this process, which costs
milliseconds instead of the ~10 s of imports a subprocess pays. What "unchanged" means: the same
SQL dump of mlflow.db, the same bytes of forgetlab.duckdb, the same files under mlruns/.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest
from cli_helpers import invoke
from tiny import R4, TINY_BASE

from forgetlab.warehouse.export import export_warehouse

TINY = [
    *TINY_BASE,
    "train.steps=10",
    "train.eval_every=5",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, forgetlab_cache) -> dict[str, str]:
    """A folder with a real store (one finished tiny run), its warehouse, and bad files to feed."""
    folder = tmp_path_factory.mktemp("bad-inputs")
    done = subprocess.run(
        [sys.executable, "-m", "forgetlab", "run", "--config", str(R4), *TINY, "--quiet"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    store = folder / "mlruns"
    export_warehouse(f"sqlite:///{store / 'mlflow.db'}", store / "forgetlab.duckdb")
    with sqlite3.connect(folder / "mlruns" / "mlflow.db") as connection:
        [(run_id,)] = connection.execute("select run_uuid from runs").fetchall()

    files = folder / "inputs"
    files.mkdir()
    (files / "empty.jsonl").write_text("")
    (files / "malformed.jsonl").write_text('{"text": "fine"}\n{"text": unquoted and broken\n')
    (files / "no_text.jsonl").write_text("".join(f'{{"body": "example {i}"}}\n' for i in range(20)))
    (files / "one.jsonl").write_text('{"text": "a single example is not enough to hold one out"}\n')
    (files / "short.txt").write_text("too short\n\nfor one block\n")
    (files / "locked.jsonl").write_text("".join(f'{{"text": "example {i}"}}\n' for i in range(20)))
    (files / "locked.jsonl").chmod(0)
    (files / "table.xlsx").write_bytes(b"PK\x03\x04 not really a spreadsheet")
    (files / "empty_folder").mkdir()
    (files / "not_yaml.yaml").write_text("lora:\n  rank: [1, 2\n")
    (files / "list.yaml").write_text("- lora\n- rank\n")
    (files / "binary.yaml").write_bytes(b"\xff\xfe\x00\x81garbage")
    (files / "r4.yaml").write_text(R4.read_text())
    sweeps = {
        "empty_grid": "name: s\nbase: r4.yaml\ngrid: {}\n",
        "no_values": "name: s\nbase: r4.yaml\ngrid:\n  lora.rank: []\n",
        "unknown_sweep_key": "name: s\nbase: r4.yaml\ngird:\n  lora.rank: [1]\n",
        "unknown_config_key": "name: s\nbase: r4.yaml\ngrid:\n  lora.rnak: [1]\n",
        "duplicates": "name: s\nbase: r4.yaml\npoints:\n  - {lora.rank: 2}\n  - {lora.rank: 2}\n",
        "missing_base": "name: s\nbase: missing.yaml\ngrid:\n  lora.rank: [1]\n",
        "bad_value": "name: s\nbase: r4.yaml\ngrid:\n  lora.rank: [0]\n",
        "no_name": "base: r4.yaml\ngrid:\n  lora.rank: [1]\n",
        "two_stores": "name: s\nbase: r4.yaml\ngrid:\n  tracking.uri: ['sqlite:///a.db', 'sqlite:///b.db']\n",
        "good": "name: s\nbase: r4.yaml\ngrid:\n  lora.rank: [1, 2]\n",
    }
    for name, text in sweeps.items():
        (files / f"sweep_{name}.yaml").write_text(text)
    header = "dataset,run_id,rank,P,N,L_ft,L_f_hard,L_f_soft,L_f_kl,L_f_data\n"
    (files / "two.csv").write_text(header + "d,a,1,10,60,2.0,3.0,3.1,0.1,4.0\nd,a,1,10,70,1.9,3.1,3.2,0.2,4.1\n")
    one_rank = "".join(
        f"d,r{seed},4,40,{n},{3 - n / 100},{2 + n / 100},{3 + n / 100},{n / 100},4\n"
        for seed in range(3)
        for n in (60, 80, 100, 120)
    )
    (files / "one_rank.csv").write_text(header + one_rank)
    nan_rows = "".join(
        f"d,r{rank},{rank},{10 * rank},{n},{3 - n / 100},{'nan' if n == 80 else 2 + n / 100},{3 + n / 100},0.1,4\n"
        for rank in (1, 2, 4)
        for n in (60, 80, 100)
    )
    (files / "nan.csv").write_text(header + nan_rows)
    for name in ("two", "one_rank", "nan"):
        (files / f"{name}.sql").write_text(f"SELECT * FROM read_csv('{files / name}.csv')\n")
    return {"dir": str(folder), "files": str(files), "run_id": run_id, "R4": str(R4)}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """What must not change: the store's rows, the warehouse's bytes, every other file under mlruns/."""
    store = folder / "mlruns"
    connection = sqlite3.connect(store / "mlflow.db")
    try:
        dump = "\n".join(connection.iterdump())
    finally:
        connection.close()
    state = {"mlflow.db (SQL dump)": hashlib.sha256(dump.encode()).hexdigest()}
    for path in sorted(store.rglob("*")):
        name = path.name
        if path.is_file() and not name.startswith("mlflow.db"):  # the store itself: compared as SQL above
            state[str(path.relative_to(store))] = _digest(path)
    return state


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]  # {R4}, {files}, {run_id} are filled in from the lab fixture
    expected: list[str]  # substrings of the one error line: the problem, then the fix
    setup: Optional[Callable] = field(default=None, compare=False)


def _run(*extra: str) -> list[str]:
    return ["run", "--config", "{R4}", *TINY, *extra]


def _unreadable(monkeypatch, files: Path) -> None:
    """chmod 0 does not stop root: then pretend, for that one file, as the OS would for a user."""
    real = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode, *a, **k: False if str(path).endswith("locked.jsonl") else real(path, mode, *a, **k),
    )


CASES = [
    # --------------------------------------------------------------- run configs and overrides
    Case("unknown key", _run("lora.rnak=2"), ["unknown key 'lora.rnak'", "known keys here"]),
    Case(
        "unknown section", _run("lorra.rank=2"), ["override 'lorra.rank=2': unknown key 'lorra'", "known keys here"]
    ),  # not the file
    Case("wrong type int", _run("lora.rank=abc"), ["lora.rank", "valid integer", "'abc'"]),
    Case("wrong type float", _run("train.lr=fast"), ["train.lr", "valid number"]),
    Case("wrong type bool", _run("model.trust_remote_code=maybe"), ["model.trust_remote_code", "valid boolean"]),
    Case("negative rank", _run("lora.rank=-1"), ["lora.rank", "greater than 0"]),
    Case("rank zero", _run("lora.rank=0"), ["lora.rank", "greater than 0"]),
    Case("steps zero", _run("train.steps=0"), ["train.steps", "greater than 0"]),
    Case(
        "warm-up longer than the run",
        _run("train.warmup_steps=11"),
        ["train.warmup_steps: exceeds train.steps = 10", "at most 10"],
    ),
    Case("negative lr", _run("train.lr=-0.1"), ["train.lr", "greater than 0"]),
    Case("dropout of one", _run("lora.dropout=1.5"), ["lora.dropout", "less than 1"]),
    Case("no held-out share", _run("data.validation_fraction=0"), ["data.validation_fraction", "greater than 0"]),
    Case("unknown optimizer", _run("train.optimizer=sgd"), ["train.optimizer", "'adamw' or 'adafactor'"]),
    Case("unknown dtype", _run("model.dtype=int8"), ["model.dtype", "'float32'"]),
    Case("empty target modules", _run("lora.target_modules=[]"), ["lora.target_modules", "at least 1"]),
    Case("negative layer", _run("lora.layers=[-1]"), ["lora.layers", ">= 0"]),
    Case("empty layer list", _run("lora.layers=[]"), ["lora.layers", "use null for all layers"]),
    Case("template without prompt", _run("data.template=hello"), ["data.template", "must contain '{prompt}'"]),
    Case("override without value", _run("lora.rank"), ["override 'lora.rank'", "KEY=VALUE"]),
    Case("override with empty key", _run("=3"), ["the key is empty", "KEY=VALUE"]),
    Case("override into a value", _run("seed.x=1"), ["'seed' is a value, not a section"]),
    Case("layer out of range", _run("lora.layers=[7]"), ["layer index 7 is out of range", "valid 0..1"]),
    Case("context too long", _run("train.context_length=4096"), ["longer than the model allows", "use at most"]),
    Case("unknown target module", _run("lora.target_modules=[qkv]"), ["no module named 'qkv'", "linear modules are"]),
    Case("missing model path", _run("model.name=./no-such-checkpoint"), ["does not exist", "give an existing folder"]),
    Case(
        "unknown embedded base",
        _run("model.name=embedded-huge"),
        ["unknown embedded base 'embedded-huge'", "use one of"],
    ),
    Case("missing data file", _run("data.source=no/such/file.jsonl"), ["does not exist", "give an existing file"]),
    Case(
        "unreadable data file",
        _run("data.source={files}/locked.jsonl"),
        ["permission denied", "fix its permissions"],
        setup=_unreadable,
    ),
    Case(
        "malformed data file",
        _run("data.source={files}/malformed.jsonl"),
        ["could not read", "malformed.jsonl", "line 2 is not one JSON object"],
    ),
    Case("empty data file", _run("data.source={files}/empty.jsonl"), ["is empty", "at least a few examples"]),
    Case("one example", _run("data.source={files}/one.jsonl"), ["1 example(s)", "need at least 2"]),
    Case(
        "data shorter than a context",
        _run("data.source={files}/short.txt"),
        ["fewer tokens than one context", "lower train.context_length"],
    ),
    Case(
        "no text column", _run("data.source={files}/no_text.jsonl"), ["neither a 'text' column", "set data.text_field"]
    ),
    Case(
        "unsupported data file", _run("data.source={files}/table.xlsx"), ["unsupported file type '.xlsx'", "use one of"]
    ),
    Case("data folder without files", _run("data.source={files}/empty_folder"), ["no data files"]),
    Case("missing forgetting text", _run("forget.source=no/such/forget.txt"), ["forget.source", "does not exist"]),
    Case(
        "too many forgetting sequences",
        _run("forget.num_sequences=100000"),
        ["packs into only", "lower forget.num_sequences"],
    ),
    Case("missing config file", ["run", "--config", "no-such.yaml"], ["config file not found", "check the path"]),
    Case("config is a folder", ["run", "--config", "{files}"], ["cannot read this config file", "give a YAML file"]),
    Case("config not YAML", ["run", "--config", "{files}/not_yaml.yaml"], ["not valid YAML at line"]),
    Case("config not a mapping", ["run", "--config", "{files}/list.yaml"], ["expected a mapping of sections"]),
    Case("config not text", ["run", "--config", "{files}/binary.yaml"], ["cannot read this config file"]),
    # --------------------------------------------------------------- sweep files and options
    Case(
        "sweep empty grid",
        ["sweep", "--config", "{files}/sweep_empty_grid.yaml"],
        ["the sweep has no points", "add a grid"],
    ),
    Case(
        "sweep key without values",
        ["sweep", "--config", "{files}/sweep_no_values.yaml"],
        ["'lora.rank' has no values", "give at least one"],
    ),
    Case("sweep unknown key", ["sweep", "--config", "{files}/sweep_unknown_sweep_key.yaml"], ["gird: unknown key"]),
    Case(
        "sweep unknown config key",
        ["sweep", "--config", "{files}/sweep_unknown_config_key.yaml"],
        ["unknown key 'lora.rnak'"],
    ),
    Case(
        "sweep duplicate points",
        ["sweep", "--config", "{files}/sweep_duplicates.yaml"],
        ["duplicates point 1", "remove one of them"],
    ),
    Case(
        "sweep missing base",
        ["sweep", "--config", "{files}/sweep_missing_base.yaml"],
        ["base: 'missing.yaml' not found", "relative to the sweep file"],
    ),
    Case("sweep bad value", ["sweep", "--config", "{files}/sweep_bad_value.yaml"], ["lora.rank", "greater than 0"]),
    Case("sweep without name", ["sweep", "--config", "{files}/sweep_no_name.yaml"], ["name: Field required"]),
    Case(
        "sweep over two stores",
        ["sweep", "--config", "{files}/sweep_two_stores.yaml"],
        ["one tracking store", "do not vary tracking"],
    ),
    Case(
        "shard out of range",
        ["sweep", "--config", "{files}/sweep_good.yaml", "--shard", "5/4"],
        ["--shard '5/4'", "e.g. --shard 1/4"],
    ),
    Case(
        "shard not i/n",
        ["sweep", "--config", "{files}/sweep_good.yaml", "--shard", "half"],
        ["--shard 'half'", "expected i/n"],
    ),
    Case("shard zero", ["sweep", "--config", "{files}/sweep_good.yaml", "--shard", "0/4"], ["--shard '0/4'"]),
    Case(
        "jobs zero",
        ["sweep", "--config", "{files}/sweep_good.yaml", "--jobs", "0"],
        ["--jobs", "0 is not in the range x>=1", "--help"],
    ),
    Case("sweep file missing", ["sweep", "--config", "nope.yaml"], ["config file not found"]),
    # --------------------------------------------------------------- SQL
    Case("SQL syntax error", ["query", "-e", "SELECT * FRM points"], ["SQL error", "syntax error"]),
    Case("SQL unknown table", ["query", "-e", "SELECT * FROM nowhere"], ["SQL error", "nowhere", "line 1"]),
    Case("SQL unknown column", ["query", "-e", "SELECT nope FROM points"], ["SQL error", "nope"]),
    Case("SQL delete", ["query", "-e", "DELETE FROM metrics"], ["read-only: refusing the DELETE", "use SELECT"]),
    Case("SQL insert", ["query", "-e", "INSERT INTO runs (run_id) VALUES ('x')"], ["refusing the INSERT"]),
    Case("SQL create", ["query", "-e", "CREATE TABLE t AS SELECT 1"], ["refusing the CREATE"]),
    Case("SQL drop", ["query", "-e", "DROP VIEW points"], ["refusing the DROP"]),
    Case(
        "SQL update after select",
        ["query", "-e", "SELECT 1; UPDATE runs SET name = 'x'"],
        ["refusing the UPDATE statement (statement 2)"],
    ),
    Case("SQL copy to file", ["query", "-e", "COPY runs TO 'runs.csv'"], ["refusing the COPY", "--output"]),
    Case("SQL attach", ["query", "-e", "ATTACH 'other.duckdb' AS other"], ["refusing the ATTACH"]),
    Case(
        "SQL missing parameter",
        ["query", "-e", "SELECT * FROM runs WHERE rank = $rank"],
        ["needs $rank", "--param rank=VALUE"],
    ),
    Case(
        "SQL unused parameter", ["query", "-e", "SELECT 1", "--param", "rank=4"], ["--param rank", "no such parameter"]
    ),
    Case("SQL bad parameter", ["query", "-e", "SELECT 1", "--param", "rank"], ["expected NAME=VALUE"]),
    Case("SQL empty", ["query", "-e", " "], ["the query is empty"]),
    Case("query file missing", ["query", "no-such.sql"], ["no query file no-such.sql", "see queries/"]),
    Case("query file and -e", ["query", "{files}/two.sql", "-e", "SELECT 1"], ["exactly one of"]),
    Case("query nothing", ["query"], ["exactly one of"]),
    Case("query format unknown", ["query", "-e", "SELECT 1", "--format", "xml"], ["--format 'xml'", "choose one of"]),
    Case("query parquet to terminal", ["query", "-e", "SELECT 1", "--format", "parquet"], ["add --output"]),
    Case(
        "query rows not a number",
        ["query", "-e", "SELECT 1", "--max-rows", "many"],
        ["--max-rows", "'many' is not a valid int"],
    ),
    Case(
        "query a missing warehouse",
        ["query", "--no-export", "--db", "mlruns/none.duckdb", "-e", "SELECT 1"],
        ["no warehouse at", "run `forgetlab export` first"],
    ),
    Case(
        "query the SQLite store as warehouse",
        ["query", "--db", "mlruns/mlflow.db", "-e", "SELECT 1"],
        ["cannot open the warehouse", "pass --db"],
    ),
    Case(
        "export into a folder",
        ["export", "--db", "mlruns", "--no-progress"],
        ["cannot open the warehouse mlruns", "pass --db"],
    ),
    # --------------------------------------------------------------- fits and predictions
    Case(
        "fit too few points",
        ["fit", "--law", "linear", "--query", "{files}/two.sql"],
        ["2 points", "needs more than 2 points"],
    ),
    Case(
        "fit one rank",
        ["fit", "--law", "paper-joint", "--query", "{files}/one_rank.sql"],
        ["a single P", "add runs at more ranks"],
    ),
    Case(
        "fit NaNs", ["fit", "--law", "linear", "--query", "{files}/nan.sql"], ["non-finite", "filter them in the query"]
    ),
    Case("fit no points", ["fit", "--law", "paper-joint"], ["the query returned no points", "check its WHERE clause"]),
    Case(
        "fit unknown data set",
        ["fit", "--law", "linear", "--query", "{files}/one_rank.sql", "--dataset", "nope"],
        ["no points for data set 'nope'"],
    ),
    Case("fit unknown law", ["fit", "--law", "cubic"], ["cubic"]),
    Case(
        "fit unknown variant", ["fit", "--variant", "medium"], ["unknown forgetting variant 'medium'", "choose one of"]
    ),
    Case("fit no bootstrap", ["fit", "--bootstrap", "0"], ["--bootstrap 0", "at least 1"]),
    Case("fit bad level", ["fit", "--level", "95"], ["--level 95.0", "e.g. 0.95"]),
    Case("fit query missing", ["fit", "--query", "no-such.sql"], ["no query file"]),
    Case(
        "fit unused parameter",
        ["fit", "--law", "linear", "--query", "{files}/two.sql", "--param", "x=1"],
        ["no such parameter"],
    ),
    Case(
        "predict unknown fit",
        ["predict", "--fit", "0123456789abcdef", "--rank", "4", "--steps", "100"],
        ["no fit '0123456789abcdef'", "list fits with"],
    ),
    Case("predict without fit", ["predict", "--rank", "4"], ["Missing option '--fit'", "--help"]),
    # --------------------------------------------------------------- CLI misuse
    Case("unknown command", ["tarin"], ["No such command 'tarin'", "--help"]),
    Case("unknown option", ["run", "--confg", "x.yaml"], ["No such option: --confg", "--help"]),
    Case("missing option", ["sweep"], ["Missing option '--config'", "--help"]),
    Case("run without config", ["run"], ["missing --config", "lightning_configs/r4.yaml"]),
    Case(
        "resume unknown id",
        ["run", "--resume", "0123456789abcdef"],
        ["no run '0123456789abcdef'", "forgetlab query queries/unfinished.sql"],
    ),
    Case("resume finished run", ["run", "--resume", "{run_id}"], ["is FINISHED already", "start a new run"]),
    Case("resume with overrides", ["run", "--resume", "{run_id}", "lora.rank=8"], ["drop --config and overrides"]),
    Case(
        "resume from missing store",
        ["run", "--resume", "{run_id}", "--tracking-uri", "sqlite:///{files}/none/mlflow.db"],
        ["no tracking store", "pass --tracking-uri"],
    ),
    Case(
        "export missing store",
        ["export", "--tracking-uri", "sqlite:///{files}/none/mlflow.db"],
        ["no MLflow tracking store", "--tracking-uri"],
    ),
    Case(
        "export unknown scheme",
        ["export", "--tracking-uri", "ftp://example.org/store"],
        ["cannot export from tracking URI", "pass --tracking-uri"],
    ),
    Case(
        "export not a store",
        ["export", "--tracking-uri", "sqlite:///{files}/empty.jsonl"],
        ["not an MLflow tracking store"],
    ),
    Case(
        "ui of a server",
        ["ui", "--tracking-uri", "http://127.0.0.1:9"],
        ["is a server already", "open it in a browser"],
    ),
    Case("ui port not a number", ["ui", "--port", "eighty"], ["--port", "'eighty' is not a valid int"]),
    Case("base unknown", ["base", "build", "--name", "embedded-huge"], ["unknown embedded base", "use one of"]),
]


def _fill(text: str, lab: dict[str, str]) -> str:
    return text.replace("{R4}", lab["R4"]).replace("{files}", lab["files"]).replace("{run_id}", lab["run_id"])


def test_the_catalogue_is_large_and_distinct():
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, lab, capsys, monkeypatch):
    folder = Path(lab["dir"])
    monkeypatch.chdir(folder)
    if case.setup is not None:
        case.setup(monkeypatch, Path(lab["files"]))
    before = snapshot(folder)
    code, out, err = invoke([_fill(arg, lab) for arg in case.args], capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in out + err, err
    assert code == 2, (code, out[-2000:], err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for expected in case.expected:
        assert expected in lines[0], (expected, lines[0])
    assert snapshot(folder) == before, "the store or the warehouse changed"
