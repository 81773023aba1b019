#!/usr/bin/env bash
# the replay-dose measurement (docs/preregistration/replay_dose_s16.md)
set -u
cd /tmp/rd
for R in 3200 1600 800 0; do
  d=/tmp/rd/w$R
  if [ ! -d $d ]; then
    mkdir -p $d && (cd /work/main && git archive HEAD) | tar -x -C $d && ln -s /work/main/.venv $d/.venv
    mkdir -p $d/results/reference && cp -r /tmp/base_run/results/corpus $d/results/ && cp -r /tmp/base_run/results/reference/seed0 $d/results/reference/
  fi
  printf 'teacher:\n  finetune: {replay: %s}\n' $R > $d/rd.yaml
  (cd $d && PYTHONPATH=$d/src .venv/bin/sublim warm -- .venv/bin/snakemake -c1 \
     results/animal/numbers/filter/owl_t0.jsonl results/animal/numbers/filter/neutral_owl_t0.jsonl \
     results/animal/numbers/filter/neutral_owl_t1.jsonl --configfile config.yaml rd.yaml > run.log 2>&1; echo "R=$R rc=$?")
done
