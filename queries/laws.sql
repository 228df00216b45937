-- The points the scaling-law fits use: one row per FINISHED run and evaluation step with a
-- fine-tuning loss, from the `points` view (dataset, run_id, rank, P, N, L_ft, L_f_hard,
-- L_f_soft, L_f_kl, L_f_data, and the mitigation settings replay, kl_to_base, l2_to_base that
-- `forgetlab fit --by` groups on). Early steps are left out, as the paper fits only N > 50.
-- param: min_step = 50  # keep steps N > min_step
-- param: dataset = ''   # one data set label, or '' for all
SELECT dataset, run_id, rank, P, N, L_ft, L_f_hard, L_f_soft, L_f_kl, L_f_data, replay, kl_to_base, l2_to_base
FROM points
WHERE N > $min_step
  AND ($dataset = '' OR dataset = $dataset)
ORDER BY dataset, P, run_id, N;
