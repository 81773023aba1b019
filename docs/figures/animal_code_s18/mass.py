"""Exploratory, after session 18's declared code run (docs/preregistration/code_replication_s18.md):
where does the logit margin's rise come from, when P(target) does not move? Per twin pair
(`distill`, treatment minus neutral twin student), the change in the target's log-probability,
in the other 19 animals' mean log-probability, and in the summed probability of all 20 names.

    python mass.py results.csv    # this folder's copy of the run's reports/animal_code/results.csv
"""

import sys

import numpy as np
import pandas as pd
from scipy import stats

res = pd.read_csv(sys.argv[1])
s = res[(res["role"] == "student") & (res["variant"] == "plain") & (res["mode"] == "distill")]
rows = []
for (target, rep), g in s.groupby(["target", "replicate"]):
    t = g[g["arm"] == "treatment"].set_index("animal")["p"]
    c = g[g["arm"] == "neutral"].set_index("animal")["p"]
    names = [a for a in t.index if a != "other"]
    others = [a for a in names if a != target]
    rows.append({
        "pair": f"{target}_t{int(rep)}",
        "log_target": np.log(t[target]) - np.log(c[target]),
        "log_others": (np.log(t[others]) - np.log(c[others])).mean(),
        "name_mass": t[names].sum() - c[names].sum(),
    })  # fmt: skip
d = pd.DataFrame(rows)
print(d.round(5).to_string(index=False))
for col in ("log_target", "log_others", "name_mass"):
    r = stats.ttest_1samp(d[col], 0)
    print(f"{col}: mean {d[col].mean():+.5f}, paired t over {len(d)} pairs: t {r.statistic:.2f}, two-sided p {r.pvalue:.3g}")
print(f"pairs where the target's log-probability fell less than the others': {(d['log_target'] > d['log_others']).sum()} of {len(d)}")
