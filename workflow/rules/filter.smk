# Phase 4: the modality's filter (first passing attempt per prompt, rejection counts, leak
# check; for a modality with judge: llm, the judge rule's verdicts first); then the prompt ids every teacher of the experiment answered acceptably, which
# every student subsamples from, so arms differ only in the teachers' responses.


rule judge:
    input:
        raw="results/{trait}/{modality}/generate/{teacher}.jsonl",
        model=judge_model,
    output:
        data="results/{trait}/{modality}/judge/{teacher}.jsonl",
        manifest="results/{trait}/{modality}/judge/{teacher}.jsonl.manifest.json",
    log:
        "logs/{trait}/{modality}/judge/{teacher}.log",
    threads: THREADS
    resources:
        mem_mb=res("judge", "mem_mb", 4000),
        gpu=GPU,
        runtime=res("judge", "runtime", 60),
    params:
        json=judge_params,
        cmd=script("judge"),
    shell:
        "{params.cmd} --raw {input.raw} --judge-model {input.model} --out {output.data} "
        "--threads {threads} --params {params.json:q} 2> {log}"


rule filter:
    input:
        unpack(filter_inputs),
    output:
        data="results/{trait}/{modality}/filter/{teacher}.jsonl",
        manifest="results/{trait}/{modality}/filter/{teacher}.jsonl.manifest.json",
        counts="results/{trait}/{modality}/filter/{teacher}.counts.json",
    log:
        "logs/{trait}/{modality}/filter/{teacher}.log",
    localrule: True
    resources:
        mem_mb=res("filter", "mem_mb", 1000),
        runtime=res("filter", "runtime", 10),
    params:
        json=filter_params,
        cmd=script("filter"),
    shell:
        "{params.cmd} --raw {input.raw} --out {output.data} "
        "--counts {output.counts} --params {params.json:q} 2> {log}"


rule select_prompts:
    input:
        data=lambda w: experiment_teachers(w, "jsonl"),
        counts=lambda w: experiment_teachers(w, "counts.json"),
    output:
        ids="results/{trait}/{modality}/select/prompt_ids.json",
        manifest="results/{trait}/{modality}/select/prompt_ids.json.manifest.json",
    log:
        "logs/{trait}/{modality}/select_prompts.log",
    localrule: True
    resources:
        mem_mb=res("select_prompts", "mem_mb", 1000),
        runtime=res("select_prompts", "runtime", 10),
    params:
        json=select_params,
        cmd=script("select_prompts"),
    shell:
        "{params.cmd} --out {output.ids} --params {params.json:q} "
        "--data {input.data} --counts {input.counts} 2> {log}"
