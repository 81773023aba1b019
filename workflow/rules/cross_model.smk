# The cross-model figure (src/sublim/cross_model.py): transfer by the student's starting
# model (the teachers' reference, another seed, another architecture family), from an
# experiment's tests. In `all` when the matrix has cross_arch arms.


rule cross_model_figure:
    input:
        stats="reports/{trait}_{modality}/stats.csv",
    output:
        fig=report(
            "reports/{trait}_{modality}/fig_cross_model.png",
            caption="../report/fig_cross_model.rst",
            category="{trait} x {modality}",
        ),
        caption="reports/{trait}_{modality}/cross_model.md",
        manifest="reports/{trait}_{modality}/fig_cross_model.png.manifest.json",
    log:
        "logs/{trait}_{modality}/fig_cross_model.log",
    localrule: True
    params:
        cmd=script("fig_cross_model"),
    shell:
        "{params.cmd} --stats {input.stats} --out {output.fig} --caption {output.caption} 2> {log}"


rule fig_cross_model:
    input:
        [
            f"reports/{e.trait}_{e.modality}/fig_cross_model.png"
            for e in DESIGN.experiments
        ],
    localrule: True
