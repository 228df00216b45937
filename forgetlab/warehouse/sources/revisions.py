"""The MLflow schema revisions the direct readers (sqlite.py, postgres.py) were tested on.

MLflow's SQL tables are its own, private business, changed by Alembic migrations; a store records
its revision in the table `alembic_version`. The direct readers read `experiments`, `runs`,
`params`, `tags` and `metrics` (and `latest_metrics` on PostgreSQL) as they are at the revisions
below: each is the newest revision of an MLflow release, and tests/test_store_access.py builds a
store with MLflow's own migrations up to it, writes runs into it by SQL and exports it.

A store at any other revision (a newer MLflow, most often) is still exported: the readers check
that the tables they need exist, and the export's summary line says, once, that the revision was
not tested and how to take a path that reads any schema (an MLflow server of the version that
wrote the store, read over REST). If reading it fails, the one-line error says the same.
"""

from __future__ import annotations

from typing import Optional

# revision -> the MLflow release whose newest revision it is (read off that release's migrations).
TESTED_REVISIONS: dict[str, str] = {
    "4465047574b1": "MLflow 2.16.2",  # the oldest forgetlab accepts (pyproject: mlflow>=2.16)
    "1b5f0d9ad7c1": "MLflow 3.10.1",  # the last without the (run_uuid, key, step) index on metrics
    "dc11669786a5": "MLflow 3.17.2",  # the newest tested: what the test suite installs
}


def untested_note(revisions: list[str]) -> Optional[str]:
    """None for a store at a tested revision; else one sentence saying it is not, and what to do."""
    if len(revisions) == 1 and revisions[0] in TESTED_REVISIONS:
        return None
    found = f"schema revision {', '.join(revisions)}" if revisions else "no schema revision (no alembic_version row)"
    tested = ", ".join(f"{revision} ({release})" for revision, release in TESTED_REVISIONS.items())
    return (
        f"the store has MLflow {found}, which forgetlab's direct reader was not tested on (tested: {tested}); "
        "check the numbers, or export through an MLflow server of the version that wrote the store "
        "(--tracking-uri http://HOST:PORT), which reads any schema"
    )
