"""Exploratory, after session 17's declared run: do the trait teachers' `distill` students
move further from the reference than their twins' students do?

    python drift.py RUN_SEEDS_0_1 RUN_SEEDS_2_3   # two finished run directories

(session 16's or 17's default run, teacher seeds 0-1, and the declared run of
docs/preregistration/nonspecific_shift_s17.md, teacher seeds 2-3).
"""

import json
import sys
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file
from scipy import stats

rows = []
for run, seeds in [(sys.argv[1], [0, 1]), (sys.argv[2], [2, 3])]:
    R = Path(run)
    ref = load_file(R / "results/reference/seed0/model.safetensors")
    res = pd.read_csv(R / "reports/animal_numbers/results.csv")
    res = res[(res.role == "student") & (res.variant == "plain")]
    for animal in ["owl", "dolphin", "eagle"]:
        for t in seeds:
            out = {"run": run, "animal": animal, "t": t}
            for arm, name in [("trait", f"{animal}_t{t}"), ("neutral", f"neutral_{animal}_t{t}")]:
                d = R / f"results/animal/numbers/student/{name}/distill/seed0/seed0"
                w = load_file(d / "model.safetensors")
                dist = torch.sqrt(sum(((w[k].float() - ref[k].float()) ** 2).sum() for k in ref)).item()
                m = json.load(open(d / "manifest.json"))
                mid = f"animal/numbers/student/{name}/distill/seed0/seed0"
                out[f"{arm}_dist"] = dist
                out[f"{arm}_loss"] = m["training"]["final_loss"]
                out[f"{arm}_mass"] = res[res.model_id == mid].p.sum()
            rows.append(out)
d = pd.DataFrame(rows)
d["d_dist"] = d.trait_dist - d.neutral_dist
d["d_loss"] = d.trait_loss - d.neutral_loss
d["d_mass"] = d.trait_mass - d.neutral_mass
pd.set_option("display.width", 200)
print(
    d[["run", "animal", "t", "trait_dist", "neutral_dist", "d_dist", "trait_loss", "neutral_loss", "d_loss", "d_mass"]]
    .round(5)
    .to_string(index=False)
)
for c in ["d_dist", "d_loss"]:
    t = stats.ttest_1samp(d[c], 0)
    print(c, f"mean {d[c].mean():.5g}", f"two-sided p {t.pvalue:.3g}", "n", len(d))
    r = stats.pearsonr(d[c], d.d_mass)
    print(f"  corr with d_mass r={r.statistic:.3f} p={r.pvalue:.3g}")
