"""How often the pooled comparison (compare --arms) calls a difference when the recipes are equal: 200 simulated
designs of 3 seeds x 300 problems, with and without seed-level noise between a seed's two models. Prints the share
of designs where p < 0.05, and where p < 0.05 and the two-level interval excludes 0 as well.

    python experiments/pooled_test_level.py
"""
import numpy as np

from reasoning_lab.stats import pooled_paired

rng = np.random.default_rng(11)
for label, tau in (("arms equal within each seed", 0.0), ("recipes equal, seed-level model noise sd 0.03", 0.03)):
    rej_p = rej_both = 0
    for _ in range(200):
        a, b = [], []
        for _s in range(3):
            p = np.clip(rng.beta(2, 4, size=300) + rng.normal(0, 0.08), 0, 1)
            u = rng.normal(0, tau)
            a.append(list(rng.random(300) < p))
            b.append(list(rng.random(300) < np.clip(p + u, 0, 1)))
        r = pooled_paired(a, b, samples=1000, resamples=2000, seed=int(rng.integers(1 << 30)))
        rej_p += r["p_value"] < 0.05
        rej_both += r["p_value"] < 0.05 and (r["ci95"][0] > 0 or r["ci95"][1] < 0)
    print(f"{label}: p<0.05 in {rej_p}/200, p<0.05 and interval excluding 0 in {rej_both}/200")
