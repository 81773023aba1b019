# Phase 2: teachers. One per target animal (fine-tuned on trait data, or the reference plus
# a system prompt) and a control teacher, which is the reference itself.


rule teacher:
    input:
        reference=f"results/reference/{TEACHER_REF}",
    output:
        directory("results/teacher/{teacher}"),
    log:
        "logs/teacher/{teacher}.log",
    threads: THREADS
    resources:
        mem_mb=res("teacher", "mem_mb", 4000),
        gpu=GPU,
        runtime=res("teacher", "runtime", 60),
    params:
        json=teacher_params,
        ckpt="checkpoints/teacher/{teacher}",
    shell:
        "python workflow/scripts/teacher.py --reference {input.reference} --out {output} "
        "--checkpoint-dir {params.ckpt} --threads {threads} --params {params.json:q} 2> {log}"
