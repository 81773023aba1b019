# Phase 7: the design table, model-level tables and tests, and the figures, per experiment
# (trait x modality). `snakemake fig_<trait>_<modality>` rebuilds one experiment's figures.


rule design_table:
    output:
        table=report(
            "reports/{trait}_{modality}/design.csv",
            caption="../report/design.rst",
            category="{trait} x {modality}",
        ),
        manifest="reports/{trait}_{modality}/design.csv.manifest.json",
    log:
        "logs/{trait}_{modality}/design_table.log",
    localrule: True
    params:
        json=lambda w: as_json(
            dict(config=design_config(config), trait=w.trait, modality=w.modality)
        ),
        cmd=script("design_table"),
    shell:
        "{params.cmd} --out {output.table} --params {params.json:q} 2> {log}"


rule aggregate:
    input:
        design="reports/{trait}_{modality}/design.csv",
        ids="results/{trait}/{modality}/select/prompt_ids.json",
        evals=lambda w: DESIGN.eval_paths(experiment(w)),
    output:
        results="reports/{trait}_{modality}/results.csv",
        manifest="reports/{trait}_{modality}/results.csv.manifest.json",
        stats=report(
            "reports/{trait}_{modality}/stats.csv",
            caption="../report/stats.rst",
            category="{trait} x {modality}",
        ),
        arms=report(
            "reports/{trait}_{modality}/arms.csv",
            caption="../report/arms.rst",
            category="{trait} x {modality}",
        ),
        specificity=report(
            "reports/{trait}_{modality}/specificity.csv",
            caption="../report/specificity.rst",
            category="{trait} x {modality}",
        ),
    log:
        "logs/{trait}_{modality}/aggregate.log",
    localrule: True
    resources:
        mem_mb=res("aggregate", "mem_mb", 2000),
        runtime=res("aggregate", "runtime", 10),
    params:
        json=as_json(dict(seed=seed_of("aggregate"), variants=VARIANTS)),
        cmd=script("aggregate"),
    shell:
        "{params.cmd} --design {input.design} --ids {input.ids} --results {output.results} "
        "--stats {output.stats} --arms {output.arms} --specificity {output.specificity} "
        "--params {params.json:q} {input.evals} 2> {log}"


rule figures:
    input:
        results="reports/{trait}_{modality}/results.csv",
        stats="reports/{trait}_{modality}/stats.csv",
        arms="reports/{trait}_{modality}/arms.csv",
        specificity="reports/{trait}_{modality}/specificity.csv",
        ids="results/{trait}/{modality}/select/prompt_ids.json",
    output:
        fig=report(
            "reports/{trait}_{modality}/{variant}/fig_transfer.png",
            caption="../report/fig_transfer.rst",
            category="{trait} x {modality}",
            subcategory="{variant}",
        ),
        spec=report(
            "reports/{trait}_{modality}/{variant}/fig_specificity.png",
            caption="../report/fig_specificity.rst",
            category="{trait} x {modality}",
            subcategory="{variant}",
        ),
        caption=report(
            "reports/{trait}_{modality}/{variant}/caption.md",
            caption="../report/caption.rst",
            category="{trait} x {modality}",
            subcategory="{variant}",
        ),
        manifest="reports/{trait}_{modality}/{variant}/fig_transfer.png.manifest.json",
    log:
        "logs/{trait}_{modality}/{variant}/figures.log",
    localrule: True
    resources:
        mem_mb=res("figures", "mem_mb", 2000),
        runtime=res("figures", "runtime", 10),
    params:
        json=figure_params,
        cmd=script("figure"),
    shell:
        "{params.cmd} --results {input.results} --stats {input.stats} --arms {input.arms} "
        "--specificity {input.specificity} --ids {input.ids} --out {output.fig} "
        "--out-specificity {output.spec} --caption {output.caption} "
        "--params {params.json:q} 2> {log}"


# one named target per experiment: fig_animal_numbers, ...
for _exp in DESIGN.experiments:

    rule:
        name:
            f"fig_{_exp.name}"
        input:
            figure_targets(_exp),
        localrule: True
