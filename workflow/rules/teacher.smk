# Phase 2: teachers, from the design table. Per trait: one trait teacher per target and
# teacher seed (fine-tuned on trait data, or the reference plus a system prompt), its neutral
# twin (the same recipe and seed, no trait), and the base teacher (the untouched reference).


rule teacher:
    input:
        reference=f"results/reference/{TEACHER_REF}",
    output:
        directory("results/{trait}/teacher/{teacher}"),
    log:
        "logs/{trait}/teacher/{teacher}.log",
    threads: THREADS
    resources:
        mem_mb=res("teacher", "mem_mb", 4000),
        gpu=GPU,
        runtime=res("teacher", "runtime", 60),
    params:
        json=teacher_params,
        ckpt="checkpoints/{trait}/teacher/{teacher}",
        cmd=script("teacher"),
    shell:
        "{params.cmd} --reference {input.reference} --out {output} "
        "--checkpoint-dir {params.ckpt} --threads {threads} --params {params.json:q} 2> {log}"
