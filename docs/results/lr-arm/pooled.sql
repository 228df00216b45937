-- The learning-rate arm (lr 1e-4, N = 900) and the long-N arm (lr 3e-4, N = 3000) pooled: both on
-- the embedded base 774ab4072a73..., data set `code`, forgetting on the same 32 held-out sequences,
-- constant schedule after 20 warm-up steps. Runs from the repository root:
--   forgetlab fit --query docs/results/lr-arm/pooled.sql --law linear-rank-steps --no-store --no-export
-- Only a law with terms in L_ft and N may pool learning rates (docs/laws.md §1); `--by lr` fits
-- each arm apart. `max_step` cuts the long-N arm at the lr arm's N range when set (-1: every step).
-- param: min_step = 50   # keep steps N > min_step
-- param: max_step = -1   # keep steps N <= max_step; -1 = every step
SELECT * FROM (
    SELECT * FROM read_parquet('docs/results/lr-arm/points.parquet')
    UNION ALL BY NAME
    SELECT * FROM read_parquet('docs/results/long-n/points.parquet')
)
WHERE N > $min_step AND ($max_step < 0 OR N <= $max_step)
ORDER BY lr, P, run_id, N;
