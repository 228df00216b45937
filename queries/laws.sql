-- The points the scaling-law fits use: one row per FINISHED run and evaluation step with a
-- fine-tuning loss, from the `points` view (dataset, run_id, rank, P, N, L_ft, L_f_hard,
-- L_f_soft, L_f_kl, L_f_data, the mitigation settings replay, kl_to_base, l2_to_base that
-- `forgetlab fit --by` groups on, the seed, and model, base_fingerprint, context_length, lr,
-- steps: runs that differ in these cannot share a law, and `forgetlab fit` refuses to pool them).
-- Early steps are left out, as the paper fits only N > 50.
-- One mitigation against none while another is held fixed, e.g. in a KL x L2 factorial:
--   forgetlab fit --by kl_to_base --param l2_to_base=0
-- One base model of several:  forgetlab fit --param model=embedded
-- param: min_step = 50  # keep steps N > min_step
-- param: dataset = ''   # one data set label, or '' for all
-- param: replay = -1     # keep only runs with this replay share; -1 = any
-- param: kl_to_base = -1 # keep only runs with this KL-to-base weight; -1 = any
-- param: l2_to_base = -1 # keep only runs with this L2-to-base weight; -1 = any
-- param: model = ''      # keep only runs of this base model; '' = any
-- param: base_fingerprint = '' # keep only runs of this base fingerprint; '' = any
-- param: context_length = -1   # keep only runs with this context length; -1 = any
-- param: lr = -1         # keep only runs with this peak learning rate; -1 = any
-- param: steps = -1      # keep only runs with this planned number of steps; -1 = any
SELECT dataset, run_id, rank, P, N, L_ft, L_f_hard, L_f_soft, L_f_kl, L_f_data, replay, kl_to_base, l2_to_base,
    seed, model, base_fingerprint, context_length, lr, steps
FROM points
WHERE N > $min_step
  AND ($dataset = '' OR dataset = $dataset)
  AND ($replay < 0 OR replay = $replay)
  AND ($kl_to_base < 0 OR kl_to_base = $kl_to_base)
  AND ($l2_to_base < 0 OR l2_to_base = $l2_to_base)
  AND ($model = '' OR model = $model)
  AND ($base_fingerprint = '' OR base_fingerprint = $base_fingerprint)
  AND ($context_length < 0 OR context_length = $context_length)
  AND ($lr < 0 OR lr = $lr)
  AND ($steps < 0 OR steps = $steps)
ORDER BY dataset, P, run_id, N;
