-- Per sweep: how many of its points finished, are running, failed or were killed, and the
-- last failure message; a sweep's parent run (kind `sweep`) shows its own status too.
-- No parameters.
WITH point_runs AS (
    SELECT * FROM runs
    WHERE sweep IS NOT NULL AND coalesce(kind, 'run') = 'run' AND lifecycle_stage = 'active'
)
SELECT p.sweep,
       any_value(s.status) AS sweep_status,
       count(DISTINCT coalesce(p.point, p.run_id)) AS points,
       count(*) FILTER (WHERE p.status = 'FINISHED') AS finished,
       count(*) FILTER (WHERE p.status IN ('RUNNING', 'SCHEDULED')) AS running,
       count(*) FILTER (WHERE p.status = 'FAILED') AS failed,
       count(*) FILTER (WHERE p.status = 'KILLED') AS killed,
       arg_max(p.failure, p.end_time) FILTER (WHERE p.failure IS NOT NULL) AS last_failure,
       min(p.start_time) AS started,
       max(p.end_time) AS last_end
FROM point_runs AS p
LEFT JOIN runs AS s ON s.run_id = p.parent_run_id AND s.kind = 'sweep'
GROUP BY p.sweep
ORDER BY started;
