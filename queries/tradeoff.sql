-- At equal fine-tuning loss, how much less do I forget? Per data set, base model and mitigation
-- setting (replay, kl_to_base, l2_to_base), the least-squares line L_f = intercept + slope·L_ft
-- through its points (N > min_step), read at one common fine-tuning loss, against the setting
-- with no mitigation (all three 0) on the same data set and base model: runs of different base
-- models are never pooled, nor compared with each other's baseline. `less_forgetting` = the baseline's L_f_at − this row's: positive
-- means this setting forgets less at the same L_ft. `in_range` is false when L_ft_at lies outside
-- the L_ft the setting's runs reached (the line is then extrapolated). Plain least squares in
-- nats, no intervals: `forgetlab fit --by replay` gives the robust fit with bootstrap intervals.
-- param: min_step = 50     # keep steps N > min_step, as the law fits do
-- param: ft_loss = 0       # L_ft to compare at; 0 = the median L_ft of the data set and model
-- param: variant = 'soft'  # forgetting measure: hard | soft | kl | data (column L_f_<variant>)
WITH p AS (
    SELECT pt.dataset, r.model, pt.run_id, pt.replay, pt.kl_to_base, pt.l2_to_base, pt.L_ft,
           CASE $variant WHEN 'hard' THEN pt.L_f_hard WHEN 'kl' THEN pt.L_f_kl WHEN 'data' THEN pt.L_f_data
                ELSE pt.L_f_soft END AS L_f
    FROM points AS pt
    JOIN runs AS r USING (run_id)
    WHERE pt.N > $min_step AND pt.L_ft IS NOT NULL
),
ref AS (
    SELECT dataset, model, CASE WHEN $ft_loss > 0 THEN $ft_loss ELSE median(L_ft) END AS L_ft_at
    FROM p GROUP BY dataset, model
),
lines AS (
    SELECT dataset, model, replay, kl_to_base, l2_to_base,
           count(DISTINCT run_id) AS runs, count(*) AS points, min(L_ft) AS L_ft_min, max(L_ft) AS L_ft_max,
           regr_slope(L_f, L_ft) AS slope, regr_intercept(L_f, L_ft) AS intercept, regr_r2(L_f, L_ft) AS r2
    FROM p
    GROUP BY dataset, model, replay, kl_to_base, l2_to_base
)
SELECT l.dataset, l.model, l.replay, l.kl_to_base, l.l2_to_base, l.runs, l.points,
       round(a.L_ft_at, 4) AS L_ft_at,
       round(l.intercept + l.slope * a.L_ft_at, 4) AS L_f_at,
       round((b.intercept + b.slope * a.L_ft_at) - (l.intercept + l.slope * a.L_ft_at), 4) AS less_forgetting,
       round(-l.slope, 4) AS c, round(l.intercept, 4) AS s, round(l.r2, 4) AS r2,
       a.L_ft_at BETWEEN l.L_ft_min AND l.L_ft_max AS in_range
FROM lines AS l
JOIN ref AS a ON a.dataset = l.dataset AND a.model IS NOT DISTINCT FROM l.model
LEFT JOIN lines AS b
       ON b.dataset = l.dataset AND b.model IS NOT DISTINCT FROM l.model
      AND b.replay = 0 AND b.kl_to_base = 0 AND b.l2_to_base = 0
ORDER BY l.dataset, l.model, l.kl_to_base, l.l2_to_base, l.replay;
