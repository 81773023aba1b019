# Phase 7: tidy tables, the treatment-vs-control tests and the figures.

FIG_DIR = "reports/animal_numbers"


rule aggregate_animal_numbers:
    input:
        eval_paths(),
    output:
        results=f"{FIG_DIR}/results.csv",
        manifest=f"{FIG_DIR}/results.csv.manifest.json",
        stats=report(
            f"{FIG_DIR}/stats.csv",
            caption="../report/stats.rst",
            category="Numbers experiment",
        ),
        specificity=f"{FIG_DIR}/specificity.csv",
    log:
        "logs/aggregate_animal_numbers.log",
    resources:
        mem_mb=res("aggregate_animal_numbers", "mem_mb", 2000),
        runtime=res("aggregate_animal_numbers", "runtime", 10),
    params:
        json=as_json(
            dict(
                n_boot=EVAL["bootstrap"],
                seed=step_seed("aggregate"),
                teacher_init=TEACHER_REF,
            )
        ),
    shell:
        "python workflow/scripts/aggregate.py --results {output.results} --stats {output.stats} "
        "--specificity {output.specificity} --params {params.json:q} {input} 2> {log}"


rule fig_animal_numbers:
    input:
        results=rules.aggregate_animal_numbers.output.results,
        stats=rules.aggregate_animal_numbers.output.stats,
    output:
        fig=report(
            f"{FIG_DIR}/fig_animal_numbers.png",
            caption="../report/fig_animal_numbers.rst",
            category="Numbers experiment",
        ),
        caption=f"{FIG_DIR}/caption.md",
        manifest=f"{FIG_DIR}/fig_animal_numbers.png.manifest.json",
    log:
        "logs/fig_animal_numbers.log",
    resources:
        mem_mb=res("fig_animal_numbers", "mem_mb", 2000),
        runtime=res("fig_animal_numbers", "runtime", 10),
    params:
        json=figure_params(),
    shell:
        "python workflow/scripts/figure.py --kind animal_numbers --results {input.results} "
        "--stats {input.stats} --out {output.fig} --caption {output.caption} "
        "--params {params.json:q} 2> {log}"


rule fig_animal_specificity:
    input:
        results=rules.aggregate_animal_numbers.output.results,
        stats=rules.aggregate_animal_numbers.output.stats,
        specificity=rules.aggregate_animal_numbers.output.specificity,
    output:
        fig=report(
            f"{FIG_DIR}/fig_animal_specificity.png",
            caption="../report/fig_animal_specificity.rst",
            category="Numbers experiment",
        ),
        manifest=f"{FIG_DIR}/fig_animal_specificity.png.manifest.json",
    log:
        "logs/fig_animal_specificity.log",
    resources:
        mem_mb=res("fig_animal_specificity", "mem_mb", 2000),
        runtime=res("fig_animal_specificity", "runtime", 10),
    params:
        json=figure_params(),
    shell:
        "python workflow/scripts/figure.py --kind animal_specificity --results {input.results} "
        "--stats {input.stats} --specificity {input.specificity} --out {output.fig} "
        "--params {params.json:q} 2> {log}"
