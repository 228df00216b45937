"""Who may write a tracking store, and when: read-only stores, a run's liveness, the schema the export reads.

- A store in a read-only folder is one line naming the store and the fix, exit 2, from every command
  that would write it (`run`, `sweep`, `fit`) or write beside it (`export`), and it stays as it was.
  Root ignores file modes, so the read-only folder is a read-only bind mount (root only; skipped otherwise).
- Whether a RUNNING run is alive is one rule (`forgetlab.tracking.liveness`), the same for
  `run --resume` and for a sweep deciding what to resume.
- The export reads MLflow's tables directly only at schema revisions it was tested on and says so
  in one line for any other (docs/warehouse.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from cli_helpers import invoke
from tiny import R4

MINUTE_MS = 60_000


# ---------------------------------------------------------------------------- is this run alive


def _running_run(tmp_path, tags: dict[str, str], start_time: int):
    """A RUNNING fine-tuning run with a resumable config, owned as `tags` say; returns (store URI, run)."""
    from forgetlab import tracking

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client = tracking.client(uri, prepare=True)
    experiment_id = client.create_experiment("alive", artifact_location=(tmp_path / "mlruns" / "artifacts").as_uri())
    run = client.create_run(experiment_id, start_time=start_time, run_name="r4",
                            tags={"forgetlab.kind": "run", "forgetlab.point": "p", **tags})
    client.log_text(run.info.run_id, R4.read_text(), "config.yaml")
    return uri, client.get_run(run.info.run_id)


def _dead_pid() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return str(child.pid)


@pytest.mark.parametrize(
    "host, pid, minutes_ago, heartbeat, alive",
    [
        ("another-machine", "self", 1, True, True),  # fresh heartbeat: alive, whatever its pid means here
        ("another-machine", "self", 31, True, False),  # silent past the 30 minutes: dead
        ("another-machine", "self", 31, False, False),  # started 31 minutes ago and never wrote: dead
        ("this-machine", "self", 31, True, True),  # its process runs: alive, however long it has been quiet
        ("this-machine", "dead", 0, True, False),  # its process is gone: dead, however fresh its heartbeat
    ],
)
def test_resume_and_sweep_apply_one_rule_for_a_running_run(tmp_path, capsys, monkeypatch, host, pid, minutes_ago, heartbeat, alive):
    import socket

    from forgetlab.sweeps.spec import SweepPoint
    from forgetlab.sweeps.state import classify

    monkeypatch.chdir(tmp_path)
    now_ms = int(time.time() * 1000)
    tags = {
        "forgetlab.host": socket.gethostname() if host == "this-machine" else host,
        "forgetlab.pid": str(os.getpid()) if pid == "self" else _dead_pid(),
    }
    if heartbeat:
        tags["forgetlab.heartbeat_ms"] = str(now_ms - minutes_ago * MINUTE_MS)
    uri, run = _running_run(tmp_path, tags, start_time=now_ms - minutes_ago * MINUTE_MS)

    [state] = classify([SweepPoint("p", {}, None)], [run], stale_minutes=30, now_ms=now_ms)
    assert state.state == ("running" if alive else "rerun")  # rerun: no checkpoint to resume from

    code, out, err = invoke(["run", "--resume", run.info.run_id, "--tracking-uri", uri, "--print-config"], capsys, monkeypatch)
    if alive:
        assert code == 2 and err.count("\n") == 1 and "is still running" in err and "Traceback" not in err, err
    else:
        assert code == 0 and "lora:" in out, err  # taken over: its config comes back
