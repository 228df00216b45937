-- Every run's metrics at one chosen step: the comparison the MLflow UI cannot make (it shows
-- only each metric's last value). A run evaluated at other steps contributes its latest
-- evaluation at or before $step (the `step` column says which); runs that had not reached it
-- are left out.
-- param: step = 100  # compare runs after this many optimizer updates
SELECT r.dataset, r.run_id, r.name, r.status, r.rank, r.P, r.lr AS peak_lr, r.seed,
       c.step, c.ft_loss, c.forget_hard, c.forget_soft, c.forget_kl, c.forget_data, c.forget_agree
FROM curves AS c
JOIN runs AS r USING (run_id)
WHERE r.lifecycle_stage = 'active'
  AND c.ft_loss IS NOT NULL
  AND c.step <= $step
QUALIFY c.step = max(c.step) OVER (PARTITION BY c.run_id)
ORDER BY r.dataset, c.forget_soft, c.ft_loss;
