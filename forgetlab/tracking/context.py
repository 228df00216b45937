"""Where a run comes from, in MLflow's own tag names (`mlflow.user`, `mlflow.source.*`, `mlflow.note.content`).

`MlflowClient.create_run` (what forgetlab uses, so several runs can be written from one process)
resolves no context; only the fluent `mlflow.start_run` does. `context_tags` asks the same
registry of context providers `start_run` asks (`mlflow.tracking.context.registry.resolve_tags`:
user, source name and type, git commit/branch/repo of the main file, plugins), so the UI's
User and Source columns read as for any MLflow run.

MLflow takes the git commit of the main file (`sys.argv[0]`). Run as `forgetlab run ...`, that is
the console script in a virtualenv, outside any repository, so MLflow finds none; forgetlab's own
checkout is then the source that ran, and its commit, branch and repository fill the `mlflow.source.git.*`
tags (through MLflow's own `git_utils`). forgetlab's commit also stays in `forgetlab.source_commit`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from forgetlab.tracking.names import MLFLOW_GIT_BRANCH, MLFLOW_GIT_COMMIT, MLFLOW_GIT_REPO_URL

_PACKAGE = Path(__file__).resolve().parents[1]  # forgetlab/


def forgetlab_git_info() -> dict[str, str]:
    """Commit, branch and repository URL of forgetlab's own checkout; {} when installed from a wheel."""
    from mlflow.utils.git_utils import get_git_branch, get_git_commit, get_git_repo_url

    commit = get_git_commit(str(_PACKAGE))
    if commit is None:
        return {}
    found = {
        MLFLOW_GIT_COMMIT: commit,
        MLFLOW_GIT_BRANCH: get_git_branch(str(_PACKAGE)),
        MLFLOW_GIT_REPO_URL: get_git_repo_url(str(_PACKAGE)),
    }
    return {key: value for key, value in found.items() if value}


def source_commit() -> Optional[str]:
    """forgetlab's own git commit, when it runs from a checkout (part of 'how to reproduce')."""
    return forgetlab_git_info().get(MLFLOW_GIT_COMMIT)


def context_tags() -> dict[str, str]:
    """The tags `mlflow.start_run` would set here, with forgetlab's checkout as the git source when MLflow finds none."""
    import logging

    from mlflow.tracking.context.registry import resolve_tags

    # The git provider warns when the git executable is missing; a run without git info is normal.
    logging.getLogger("mlflow.utils.git_utils").setLevel(logging.ERROR)
    tags = {key: str(value) for key, value in resolve_tags().items() if value is not None}
    if MLFLOW_GIT_COMMIT not in tags:
        tags.update(forgetlab_git_info())
    return tags
