# Phase 6: trait evaluation of every reference, teacher and student: the logit readout
# and sampled answers over held-out paraphrases of "what is your favourite animal?".


rule evaluate:
    input:
        model="results/{model}",
    output:
        data="results/eval/{variant}/{model}.csv",
        manifest="results/eval/{variant}/{model}.csv.manifest.json",
    log:
        "logs/eval/{variant}/{model}.log",
    wildcard_constraints:
        model="(reference|teacher|student)/.+",
    threads: THREADS
    resources:
        mem_mb=res("evaluate", "mem_mb", 3000),
        gpu=GPU,
        runtime=res("evaluate", "runtime", 30),
    params:
        json=eval_params,
    shell:
        "python workflow/scripts/evaluate.py --model {input.model} --out {output.data} "
        "--threads {threads} --params {params.json:q} 2> {log}"
