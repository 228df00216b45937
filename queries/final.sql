-- Leaderboard: each run's forgetting and fine-tuning loss at its last evaluation, best
-- (least forgetting, then lowest fine-tuning loss) first, per data set and base model (runs of
-- different bases start from different losses, so they are ranked apart; `model` is model.name).
-- `*_last` is the metric's last logged value (NULL if it ended as NaN); `*_min` its minimum.
-- param: status = 'FINISHED'  # run status to include, or '' for all
SELECT r.dataset, r.model, r.run_id, r.name, r.status, r.rank, r.P, r.lr AS peak_lr, r.seed,
       f.last_step, f.ft_loss_last, f.ft_loss_min,
       f.forget_soft_last, f.forget_hard_last, f.forget_kl_last, f.forget_data_last, f.forget_agree_last
FROM final AS f
JOIN runs AS r USING (run_id)
WHERE r.lifecycle_stage = 'active'
  AND coalesce(r.kind, 'run') = 'run'
  AND ($status = '' OR r.status = $status)
ORDER BY r.dataset, r.model, f.forget_soft_last NULLS LAST, f.ft_loss_last NULLS LAST;
