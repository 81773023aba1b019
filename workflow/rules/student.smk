# Phase 5: students. A copy of a reference fine-tuned on a teacher's filtered numbers.
# {ref} is the student's initialisation: the teachers' own (treatment, control) or the
# second reference (cross-init).


rule student:
    input:
        reference="results/reference/{ref}",
        teacher="results/teacher/{teacher}",
        data="results/filter/{teacher}.jsonl",
    output:
        directory("results/student/{teacher}/{mode}/{ref}/seed{seed}"),
    log:
        "logs/student/{teacher}/{mode}/{ref}/seed{seed}.log",
    threads: THREADS
    resources:
        mem_mb=res("student", "mem_mb", 4000),
        gpu=GPU,
        runtime=res("student", "runtime", 120),
    params:
        json=lambda w: as_json(
            dict(
                mode=w.mode,
                seed=int(w.seed),
                train=STUD["train"],
                method=STUD["method"],
                lora=STUD["lora"],
                **(
                    dict(save_merged=STUD["save_merged"])
                    if STUD["method"] == "lora"
                    else {}
                ),
            )
        ),
        ckpt="checkpoints/student/{teacher}/{mode}/{ref}/seed{seed}",
    shell:
        "python workflow/scripts/student.py --reference {input.reference} --teacher {input.teacher} "
        "--data {input.data} --out {output} --checkpoint-dir {params.ckpt} --threads {threads} "
        "--params {params.json:q} 2> {log}"
