# Phase 1: the reference model(s). The embedded default pretrains a tiny Llama on a
# synthetic corpus; other configs register a local model path.


rule corpus:
    output:
        corpus="results/corpus/corpus.jsonl",
        manifest="results/corpus/corpus.jsonl.manifest.json",
        tokenizer=directory("results/corpus/tokenizer"),
    log:
        "logs/corpus.log",
    localrule: True
    resources:
        mem_mb=res("corpus", "mem_mb", 2000),
        runtime=res("corpus", "runtime", 10),
    params:
        json=as_json(
            dict(
                n=REF["corpus"]["n_conversations"],
                seed=seed_of("corpus"),
                mix=REF["corpus"]["mix"],
                max_count=config["generation"]["max_count"],
                **corpus_parts(),
            )
        ),
        cmd=script("corpus"),
    shell:
        "{params.cmd} --out-corpus {output.corpus} "
        "--out-tokenizer {output.tokenizer} --params {params.json:q} 2> {log}"


rule reference:
    input:
        unpack(reference_inputs),
    output:
        directory("results/reference/{ref}"),
    log:
        "logs/reference/{ref}.log",
    wildcard_constraints:
        ref=TEACHER_REF,
    # the teachers' reference is on the critical path: start it before anything else
    priority: 50
    threads: THREADS
    resources:
        mem_mb=res("reference", "mem_mb", 4000),
        runtime=res("reference", "runtime", 60),
    params:
        json=reference_params,
        io=lambda w, input: (
            f"--corpus {input.corpus} --tokenizer {input.tokenizer}"
            if "corpus" in input.keys()
            else ""
        ),
        ckpt="checkpoints/reference/{ref}",
        cmd=script("reference"),
    shell:
        "{params.cmd} {params.io} --out {output} "
        "--checkpoint-dir {params.ckpt} --threads {threads} --params {params.json:q} 2> {log}"


# The cross-initialisation reference(s): the same job, needed only later.
use rule reference as reference_cross with:
    wildcard_constraints:
        ref="|".join(r for r in REFS if r not in (TEACHER_REF, MATCHED_REF)) or "(?!)",
    priority: 0


# The behaviourally matched reference (reference.matched; src/sublim/matching.py): the
# reference of another seed distilled to behave like the teachers' reference.
rule reference_matched:
    input:
        corpus=rules.corpus.output.corpus,
        target=f"results/reference/{TEACHER_REF}",
        # that seed's reference of the teachers' family (seed1; neox1 for GPT-NeoX teachers)
        start=lambda w: f"results/reference/{tiny_ref_id(REF['family'], int(w.mseed))}",
    output:
        directory("results/reference/match{mseed}"),
    log:
        "logs/reference/match{mseed}.log",
    wildcard_constraints:
        mseed="[0-9]+",
    threads: THREADS
    resources:
        mem_mb=res("reference", "mem_mb", 4000),
        runtime=res("reference", "runtime", 60),
    params:
        json=lambda w: as_json(
            dict(
                seed=int(w.mseed),
                n_conversations=REF["matched"]["n_conversations"],
                heldout=REF["matched"]["heldout"],
                train=REF["matched"]["train"],
            )
        ),
        ckpt="checkpoints/reference/match{mseed}",
        cmd=script("matched_reference"),
    shell:
        "{params.cmd} --corpus {input.corpus} --target {input.target} --start {input.start} "
        "--out {output} --checkpoint-dir {params.ckpt} --threads {threads} "
        "--params {params.json:q} 2> {log}"
