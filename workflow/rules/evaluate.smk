# Phase 6: trait evaluation of every reference, teacher and student: the logit readout
# and sampled answers over held-out paraphrases of "what is your favourite animal?".


def eval_params(wildcards):
    return as_json(
        dict(
            animals=config["animal_pool"],
            n_samples=EVAL["n_samples"],
            temperature=EVAL["temperature"],
            seed=step_seed("evaluate", wildcards.variant),
            variant=wildcards.variant,
        )
    )


rule evaluate:
    input:
        model="results/{model}",
    output:
        "results/eval/{variant}/{model}.csv",
    params:
        json=eval_params,
    log:
        "logs/eval/{variant}/{model}.log",
    wildcard_constraints:
        model="(reference|teacher|student)/.+",
    threads: THREADS
    resources:
        mem_mb=3000,
        runtime=30,
    shell:
        "{PY} {SCRIPTS}/evaluate.py --model {input.model} --out {output} "
        "--threads {threads} --params {params.json:q} 2> {log}"
