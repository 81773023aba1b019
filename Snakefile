# sublim: subliminal-learning experiments as one Snakemake DAG.
# The root config.yaml is the embedded default; presets are selected with --configfile.
# The experiment's runs come from one design table (src/sublim/design.py, built in
# workflow/rules/common.smk); `rule all` asks for every experiment's figures.


# A --configfile preset is a complete experiment: it replaces the embedded default
# instead of being merged over it.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/reference.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/filter.smk"
include: "workflow/rules/student.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/mnist.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/icl.smk"
include: "workflow/rules/cross_model.smk"


rule all:
    default_target: True
    input:
        [figure_targets(e) for e in DESIGN.experiments],
        rules.fig_mnist.output if config["mnist"]["enabled"] else [],
        rules.audit.input if config["audit"]["enabled"] else [],
        rules.fig_theory.output.fig
        if config["theory"]["enabled"] and THEORY_EXPS
        else [],
        rules.fig_icl.output.fig if config["icl"]["enabled"] and ICL_EXPS else [],
        rules.fig_cross_model.input if CROSS_ARCH else [],
    localrule: True


# Everything `all` builds, and the parts that the embedded default leaves out of it to keep
# within its run-time budget (README: "extended"), whatever their `enabled` switches say.
rule extended:
    input:
        rules.all.input,
        rules.fig_theory.output.fig if THEORY_EXPS else [],
        rules.fig_icl.output.fig if ICL_EXPS else [],
        rules.audit.input,
    localrule: True
