# Phase 3: every teacher of an experiment answers the same prompts at temperature 1
# (seeded, batched); a prompt whose answer fails the modality's filter is asked again, up
# to generation.attempts times, so that every teacher answers (nearly) every prompt.


rule generate:
    input:
        teacher="results/{trait}/teacher/{teacher}",
    output:
        data="results/{trait}/{modality}/generate/{teacher}.jsonl",
        manifest="results/{trait}/{modality}/generate/{teacher}.jsonl.manifest.json",
    log:
        "logs/{trait}/{modality}/generate/{teacher}.log",
    threads: THREADS
    resources:
        mem_mb=res("generate", "mem_mb", 4000),
        gpu=GPU,
        runtime=res("generate", "runtime", 60),
    params:
        json=generate_params,
        cmd=script("generate"),
    shell:
        "{params.cmd} --teacher {input.teacher} --out {output.data} "
        "--threads {threads} --params {params.json:q} 2> {log}"
