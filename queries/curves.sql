-- Every run's curves, one row per run and step, with the run's settings alongside:
-- what a training-curve plot needs, for all runs at once (MLflow: one call per run and key).
-- Deleted runs are left out; failed and running runs are kept (see `status`).
-- param: dataset = ''  # one data set label, or '' for all
-- param: sweep = ''    # one sweep name, or '' for all
-- param: model = ''    # one base model (model.name), or '' for all
SELECT r.dataset, r.model, r.sweep, r.run_id, r.name, r.status, r.rank, r.P, r.lr AS peak_lr, r.seed,
       c.step, c.train_loss, c.ft_loss, c.forget_hard, c.forget_soft, c.forget_kl,
       c.forget_data, c.forget_agree, c.lr
FROM curves AS c
JOIN runs AS r USING (run_id)
WHERE r.lifecycle_stage = 'active'
  AND ($dataset = '' OR r.dataset = $dataset)
  AND ($sweep = '' OR r.sweep = $sweep)
  AND ($model = '' OR r.model = $model)
ORDER BY r.dataset, r.model, r.P, r.run_id, c.step;
