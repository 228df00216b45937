-- Downstream probes beside forgetting: for every run that ran probes, one row per probe step with
-- multiple-choice accuracy and agreement with the base model's answers, refusal rate and the share
-- of the base's refusals lost, next to L_ft and forgetting at the latest evaluation at or before
-- that step (`eval_step`), and the accuracy change since step 0. The paper's point: ARC accuracy
-- moved 2 points while the model agreed with its base on only 67% of the questions.
-- param: dataset = ''  # one data set label, or '' for all
WITH probe_rows AS (
    SELECT * FROM curves
    WHERE coalesce(probe_mc_acc, probe_refusal_rate) IS NOT NULL
), evaluations AS (
    SELECT run_id, step, ft_loss, forget_soft, forget_kl, forget_agree FROM curves WHERE ft_loss IS NOT NULL
)
SELECT r.dataset, r.run_id, r.name, r.status, r.rank, r.P, p.step,
       e.step AS eval_step, e.ft_loss, e.forget_soft, e.forget_kl, e.forget_agree,
       p.probe_mc_acc, p.probe_mc_acc_norm,
       p.probe_mc_acc - first_value(p.probe_mc_acc IGNORE NULLS) OVER run_steps AS mc_acc_change,
       p.probe_mc_agree, p.probe_mc_agree_norm,
       p.probe_refusal_rate, p.probe_refusal_lost
FROM probe_rows AS p
JOIN runs AS r USING (run_id)
ASOF LEFT JOIN evaluations AS e ON p.run_id = e.run_id AND p.step >= e.step
WHERE r.lifecycle_stage = 'active'
  AND ($dataset = '' OR r.dataset = $dataset)
WINDOW run_steps AS (PARTITION BY p.run_id ORDER BY p.step ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
ORDER BY r.dataset, r.P, p.run_id, p.step;
