# Phase 3: each teacher answers N number prompts at temperature 1 (seeded, batched).


rule generate:
    input:
        teacher="results/teacher/{teacher}",
    output:
        data="results/generate/{teacher}.jsonl",
        manifest="results/generate/{teacher}.jsonl.manifest.json",
    log:
        "logs/generate/{teacher}.log",
    threads: THREADS
    resources:
        mem_mb=res("generate", "mem_mb", 4000),
        gpu=GPU,
        runtime=res("generate", "runtime", 60),
    params:
        json=lambda w: as_json(
            dict(
                n=config["generation"]["n_responses"],
                seed=step_seed("generate"),
                backend=config["generation"]["backend"],
                max_count=config["generation"]["max_count"],
                **vllm_params(config["generation"]["backend"]),
                sampling=generation_sampling(),
            )
        ),
    shell:
        "python workflow/scripts/generate.py --teacher {input.teacher} --out {output.data} "
        "--threads {threads} --params {params.json:q} 2> {log}"
