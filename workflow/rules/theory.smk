# Beside the students: the one-step theorem, measured (src/sublim/theory.py). One CSV per
# experiment (its twin pairs), one for the MNIST branch, and fig_theory over both.


rule theory_lm:
    input:
        unpack(theory_lm_inputs),
    output:
        table="results/{trait}/{modality}/theory/lm.csv",
        manifest="results/{trait}/{modality}/theory/lm.csv.manifest.json",
    log:
        "logs/{trait}/{modality}/theory_lm.log",
    threads: THREADS
    resources:
        mem_mb=res("theory_lm", "mem_mb", 4000),
        runtime=res("theory_lm", "runtime", 60),
    params:
        json=theory_lm_params,
        cmd=script("theory_lm"),
    shell:
        "{params.cmd} --out {output.table} --threads {threads} --params {params.json:q} 2> {log}"


rule theory_mnist:
    input:
        data="results/mnist/mnist.npz",
    output:
        table="results/mnist/theory.csv",
        manifest="results/mnist/theory.csv.manifest.json",
    log:
        "logs/mnist/theory.log",
    threads: THREADS
    resources:
        mem_mb=res("theory_mnist", "mem_mb", 4000),
        runtime=res("theory_mnist", "runtime", 30),
    params:
        json=theory_mnist_params,
        cmd=script("theory_mnist"),
    shell:
        "{params.cmd} --data {input.data} --out {output.table} --threads {threads} "
        "--params {params.json:q} 2> {log}"


rule fig_theory:
    input:
        lm=[f"results/{e.trait}/{e.modality}/theory/lm.csv" for e in THEORY_EXPS],
        mnist="results/mnist/theory.csv" if config["mnist"]["enabled"] else [],
    output:
        fig=report(
            "reports/theory/fig_theory.png",
            caption="../report/fig_theory.rst",
            category="theory",
        ),
        stats="reports/theory/stats.csv",
        caption="reports/theory/caption.md",
        manifest="reports/theory/fig_theory.png.manifest.json",
    log:
        "logs/theory/fig_theory.log",
    localrule: True
    params:
        cmd=script("fig_theory"),
        mnist=lambda w, input: f"--mnist {input.mnist}" if input.mnist else "",
    shell:
        "{params.cmd} --out {output.fig} --stats {output.stats} --caption {output.caption} "
        "{params.mnist} {input.lm} 2> {log}"
