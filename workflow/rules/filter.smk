# Phase 4: the strict number filter, rejection counts, and a fixed-size seeded subsample.


rule filter:
    input:
        raw="results/generate/{teacher}.jsonl",
    output:
        data="results/filter/{teacher}.jsonl",
        manifest="results/filter/{teacher}.jsonl.manifest.json",
        counts="results/filter/{teacher}.counts.json",
    log:
        "logs/filter/{teacher}.log",
    resources:
        mem_mb=res("filter", "mem_mb", 1000),
        runtime=res("filter", "runtime", 10),
    params:
        json=as_json(
            dict(
                subsample=config["filter"]["subsample"],
                seed=step_seed("filter"),
                max_count=config["generation"]["max_count"],
                banned=config["filter"]["banned_numbers"],
            )
        ),
    shell:
        "python workflow/scripts/filter.py --raw {input.raw} --out {output.data} "
        "--counts {output.counts} --params {params.json:q} 2> {log}"
