# Beside the students: `sublim audit` of every trait teacher's data against its neutral twin's
# (same recipe, prompts, filter and generation seed), then one table per experiment.
# `snakemake audit` builds every audit; `all` includes them unless audit.enabled is false.


rule audit_data:
    input:
        unpack(audit_inputs),
    output:
        directory("results/{trait}/{modality}/audit/{teacher}"),
    log:
        "logs/{trait}/{modality}/audit/{teacher}.log",
    wildcard_constraints:
        teacher="[a-z]+_t[0-9]+",
    threads: THREADS
    resources:
        mem_mb=res("audit_data", "mem_mb", 3000),
        runtime=res("audit_data", "runtime", 60),
    params:
        json=lambda w: as_json(
            dict(
                detectors=AUD["detectors"],
                ks=AUD["ks"],
                holdout=AUD["holdout"],
                permutations=AUD["permutations"],
                seed=seed_of("audit", w.trait, w.modality, w.teacher),
            )
        ),
        cmd=script("audit"),
    shell:
        "{params.cmd} --data {input.data} --control {input.control} "
        "--reference {input.reference} --teacher {input.teacher} "
        "--control-teacher {input.control_teacher} --out {output} "
        "--threads {threads} --params {params.json:q} 2> {log}"


rule audit_table:
    input:
        audits=lambda w: audit_targets(experiment(w)),
        results="reports/{trait}_{modality}/results.csv",
    output:
        table=report(
            "reports/{trait}_{modality}/audit.csv",
            caption="../report/audit.rst",
            category="{trait} x {modality}",
        ),
        summary="reports/{trait}_{modality}/audit_summary.csv",
        manifest="reports/{trait}_{modality}/audit.csv.manifest.json",
    log:
        "logs/{trait}_{modality}/audit_table.log",
    localrule: True
    params:
        cmd=script("audit_table"),
    shell:
        "{params.cmd} --out {output.table} --summary {output.summary} "
        "--results {input.results} {input.audits} 2> {log}"


rule audit:
    input:
        [f"reports/{e.name}/audit.csv" for e in DESIGN.experiments],
    localrule: True
