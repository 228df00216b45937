-- Runs that did not finish (RUNNING, KILLED, FAILED), newest first, with the command that resumes each.
-- The run id `forgetlab run --resume` needs, the last step the curve reached, and why a failed run stopped.
-- A RUNNING run may still be alive (`host`, `pid` in the tags table); resume only one whose process is gone.
-- Type the command in the folder the run was started from: its checkpoints are in mlruns/checkpoints/.
-- param: status = ''  # one status (RUNNING, KILLED, FAILED), or '' for all three
SELECT r.run_id, r.name, r.status, r.model, r.dataset, r.rank, r.seed,
       c.last_step, r.steps, r.start_time, r.failure,
       'forgetlab run --resume ' || r.run_id AS resume_command
FROM runs AS r
LEFT JOIN (SELECT run_id, max(step) AS last_step FROM curves WHERE ft_loss IS NOT NULL GROUP BY run_id) AS c USING (run_id)
WHERE r.lifecycle_stage = 'active'
  AND coalesce(r.kind, 'run') = 'run'
  AND r.status IN ('RUNNING', 'KILLED', 'FAILED')
  AND ($status = '' OR r.status = $status)
ORDER BY r.start_time DESC;
