"""Entry point of one sweep point's process: `python -m forgetlab.sweeps.worker SPEC.json`.

The spec holds the point's resolved config, the tags that tie it to its sweep, and the run to
resume, if any. Exit codes: 0 finished, 2 bad input or diverged (the run says why), 130 interrupted
(Ctrl-C reaches the sweep's workers too; the run is KILLED, and the next `forgetlab sweep` resumes it from its
checkpoint, or reruns it without one), 1 crash.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(spec_path: str) -> int:
    from forgetlab.config import validate_run_config
    from forgetlab.errors import RunInterrupted, UserError
    from forgetlab.finetune.recipe import execute_run

    spec = json.loads(Path(spec_path).read_text())
    Path(spec_path).unlink(missing_ok=True)  # it may hold credentials (see forgetlab.sweeps.launcher)
    config = validate_run_config(spec["config"], spec_path)
    try:
        result = execute_run(config, resume_run_id=spec.get("resume_run_id"), extra_tags=spec["tags"], progress=False)
    except UserError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return error.exit_code
    except RunInterrupted as stopped:
        print(f"{stopped}; it is marked KILLED, and the next `forgetlab sweep` resumes it", file=sys.stderr)
        return 130
    print(f"{result.run_name} {result.run_id} {result.status} steps={result.steps_done}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
