# Phase 5: students. A copy of a reference ({init}: the teachers' own, or the second one for
# cross-init arms) fine-tuned on a seeded subsample of the common prompt ids, answered by
# one teacher. The student seed draws the subsample and the data order, the same in every arm.


rule student:
    input:
        reference="results/reference/{init}",
        teacher="results/{trait}/teacher/{teacher}",
        data="results/{trait}/{modality}/filter/{teacher}.jsonl",
        ids="results/{trait}/{modality}/select/prompt_ids.json",
        # masked modes (the divergence-token ablation): the twin pair's two teachers
        masks=mask_teacher_inputs,
    output:
        directory(
            "results/{trait}/{modality}/student/{teacher}/{mode}/{init}/seed{seed}"
        ),
    log:
        "logs/{trait}/{modality}/student/{teacher}/{mode}/{init}/seed{seed}.log",
    threads: THREADS
    resources:
        mem_mb=res("student", "mem_mb", 4000),
        gpu=GPU,
        runtime=res("student", "runtime", 120),
    params:
        json=student_params,
        ckpt="checkpoints/{trait}/{modality}/student/{teacher}/{mode}/{init}/seed{seed}",
        cmd=script("student"),
        mask=lambda w, input: f"--mask-teachers {input.masks}" if input.masks else "",
    shell:
        "{params.cmd} --reference {input.reference} --teacher {input.teacher} "
        "--data {input.data} --ids {input.ids} --out {output} --checkpoint-dir {params.ckpt} "
        "--threads {threads} --params {params.json:q} {params.mask} 2> {log}"
