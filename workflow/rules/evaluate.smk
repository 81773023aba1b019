# Phase 6: the trait's evaluation of every reference, teacher and student of the design.


rule evaluate:
    input:
        model=eval_model,
    output:
        data="results/{trait}/eval/{variant}/{model}.csv",
        manifest="results/{trait}/eval/{variant}/{model}.csv.manifest.json",
    log:
        "logs/{trait}/eval/{variant}/{model}.log",
    wildcard_constraints:
        model="reference/[^/]+|teacher/[^/]+|[a-z]+/student/.+",
    threads: THREADS
    resources:
        mem_mb=res("evaluate", "mem_mb", 3000),
        gpu=GPU,
        runtime=res("evaluate", "runtime", 30),
    params:
        json=eval_params,
        cmd=script("evaluate"),
    shell:
        "{params.cmd} --model {input.model} --out {output.data} "
        "--threads {threads} --params {params.json:q} 2> {log}"
