-- Every run's metrics at one chosen step: the comparison the MLflow UI cannot make (it shows
-- only each metric's last value). A run evaluated at other steps contributes its latest
-- evaluation at or before $step (the `step` column says which); runs that had not reached
-- $step (no point logged at or after it) are left out.
-- param: step = 100  # compare runs after this many optimizer updates
WITH reached AS (SELECT run_id, max(step) AS last_step FROM curves GROUP BY run_id)
SELECT r.dataset, r.model, r.run_id, r.name, r.status, r.rank, r.P, r.lr AS peak_lr, r.seed,
       c.step, c.ft_loss, c.forget_hard, c.forget_soft, c.forget_kl, c.forget_data, c.forget_agree
FROM curves AS c
JOIN runs AS r USING (run_id)
JOIN reached AS d USING (run_id)
WHERE r.lifecycle_stage = 'active'
  AND c.ft_loss IS NOT NULL
  AND c.step <= $step
  AND d.last_step >= $step
QUALIFY c.step = max(c.step) OVER (PARTITION BY c.run_id)
ORDER BY r.dataset, r.model, c.forget_soft, c.ft_loss;
