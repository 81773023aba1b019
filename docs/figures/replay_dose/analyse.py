"""Per replay level: KLs, keep rates, P(owl) (docs/preregistration/replay_dose_s16.md)."""
import json, subprocess, sys
import numpy as np
import torch
from sublim import models, text
from sublim.evaluation import logit_readout

torch.set_num_threads(1)
rows = []
for R in (0, 800, 1600, 3200):
    d = f"/tmp/rd/w{R}/results/animal"
    out = subprocess.run([sys.executable, "/work/main/benchmarks/teacher_divergence.py", "--data",
                          f"{d}/numbers/filter/owl_t0.jsonl", "--pair", f"{d}/teacher/owl_t0", f"{d}/teacher/neutral_owl_t0",
                          "--pair", f"{d}/teacher/neutral_owl_t0", f"{d}/teacher/neutral_owl_t1", "--n", "300"],
                         capture_output=True, text=True, check=True).stdout
    kls = [float(l.split()[-1]) for l in out.splitlines()[1:] if l.strip()]
    row = {"replay": R, "kl_trait": kls[0], "kl_seed": kls[1], "ratio": kls[0] / kls[1]}
    for t in ("owl_t0", "neutral_owl_t0", "neutral_owl_t1"):
        m = json.load(open(f"{d}/numbers/generate/{t}.jsonl.manifest.json"))
        a = m["attempts"]
        row[f"keep1_{t}"] = a[0]["kept"] / a[0]["n"]
        row[f"kept_{t}"] = sum(x["kept"] for x in a)
    for t in ("owl_t0", "neutral_owl_t0"):
        model, tok, h = models.load(f"{d}/teacher/{t}")
        prompts = [models.render(tok, models.messages(q, h.system_prompt), generation_prompt=True) for q in text.EVAL_QUESTIONS]
        lp = logit_readout(model, tok, prompts, ["owl"])
        row[f"p_owl_{t}"] = float(np.mean([np.exp(lp[i]["owl"]) for i in range(len(prompts))]))
    rows.append(row)
    print(json.dumps(row), flush=True)
json.dump(rows, open("/tmp/rd/results.json", "w"), indent=1)
