# Phase 6: the trait's evaluation of every reference, teacher and student of the design.
# One job scores a group of models (sublim.design.eval_group: the references, the trait's
# teachers, one teacher's students), so the interpreter, the imports and the job start-up
# are paid once per group rather than once per model.


rule evaluate:
    input:
        models=lambda w: list(eval_models(w).values()),
        # what the trait's evaluation reads besides the models (misalignment presets: the judge)
        extra=eval_extra_inputs,
    output:
        data="results/{trait}/eval/{variant}/{group}.csv",
        manifest="results/{trait}/eval/{variant}/{group}.csv.manifest.json",
    log:
        "logs/{trait}/eval/{variant}/{group}.log",
    wildcard_constraints:
        group="reference|teacher|[a-z_]+/student/[^/]+",
    threads: THREADS
    resources:
        mem_mb=res("evaluate", "mem_mb", 3000),
        gpu=GPU,
        # minutes per model (resources.evaluate.runtime), times the group's size
        runtime=lambda w: res("evaluate", "runtime", 30) * len(eval_models(w)),
    params:
        json=eval_params,
        models=eval_model_args,
        cmd=script("evaluate"),
    shell:
        "{params.cmd} {params.models} --out {output.data} "
        "--threads {threads} --params {params.json:q} 2> {log}"
