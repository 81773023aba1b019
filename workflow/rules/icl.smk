# Beside the students: the in-context learning control (src/sublim/icl.py). The teachers'
# reference reads the teachers' data in its prompt instead of training on it; one CSV per
# experiment (its twin pairs), and fig_icl over them beside the fine-tuned students.


rule icl:
    input:
        unpack(icl_inputs),
    output:
        table="results/{trait}/{modality}/icl/readout.csv",
        manifest="results/{trait}/{modality}/icl/readout.csv.manifest.json",
    log:
        "logs/{trait}/{modality}/icl.log",
    threads: THREADS
    resources:
        mem_mb=res("icl", "mem_mb", 3000),
        runtime=res("icl", "runtime", 60),
    params:
        json=icl_params,
        cmd=script("icl"),
    shell:
        "{params.cmd} --reference {input.reference} --ids {input.ids} --out {output.table} "
        "--threads {threads} --params {params.json:q} 2> {log}"


rule fig_icl:
    input:
        icl=[f"results/{e.trait}/{e.modality}/icl/readout.csv" for e in ICL_EXPS],
        stats=[f"reports/{e.trait}_{e.modality}/stats.csv" for e in ICL_EXPS],
    output:
        fig=report(
            "reports/icl/fig_icl.png",
            caption="../report/fig_icl.rst",
            category="in-context learning",
        ),
        stats="reports/icl/stats.csv",
        caption="reports/icl/caption.md",
        manifest="reports/icl/fig_icl.png.manifest.json",
    log:
        "logs/icl/fig_icl.log",
    localrule: True
    params:
        cmd=script("fig_icl"),
    shell:
        "{params.cmd} --out {output.fig} --stats {output.stats} --caption {output.caption} "
        "--students {input.stats} -- {input.icl} 2> {log}"
