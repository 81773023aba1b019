# Phase 2: teachers. One per target animal (fine-tuned on trait data, or the reference plus
# a system prompt) and a control teacher, which is the reference itself.


def teacher_params(wildcards):
    t = config["teacher"]
    if wildcards.teacher == "control":
        return as_json(dict(kind="control", animal=None, seed=step_seed("teacher", "control")))
    return as_json(
        dict(
            kind=t["kind"],
            animal=wildcards.teacher,
            seed=step_seed("teacher", wildcards.teacher),
            system_prompt=t["system_prompt"],
            finetune=t["finetune"],
        )
    )


rule teacher:
    input:
        reference=f"results/reference/{TEACHER_REF}",
    output:
        directory("results/teacher/{teacher}"),
    params:
        json=teacher_params,
        ckpt="checkpoints/teacher/{teacher}",
    log:
        "logs/teacher/{teacher}.log",
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{PY} {SCRIPTS}/teacher.py --reference {input.reference} --out {output} "
        "--checkpoint-dir {params.ckpt} --threads {threads} --params {params.json:q} 2> {log}"
