# Phase 1: the reference model(s). The embedded default pretrains a tiny Llama on a
# synthetic corpus; other configs register a local model path.


rule corpus:
    output:
        corpus="results/corpus/corpus.jsonl",
        tokenizer=directory("results/corpus/tokenizer"),
    params:
        json=as_json(
            dict(
                n=REF["corpus"]["n_conversations"],
                seed=step_seed("corpus"),
                mix=REF["corpus"]["mix"],
                max_count=config["generation"]["max_count"],
            )
        ),
    log:
        "logs/corpus.log",
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{PY} {SCRIPTS}/corpus.py --out-corpus {output.corpus} "
        "--out-tokenizer {output.tokenizer} --params {params.json:q} 2> {log}"


def reference_inputs(wildcards):
    if REF["kind"] == "tiny":
        return dict(corpus=rules.corpus.output.corpus, tokenizer=rules.corpus.output.tokenizer)
    return {}


def reference_params(wildcards):
    if REF["kind"] == "tiny":
        seed = int(wildcards.ref.removeprefix("seed"))
        return as_json(dict(kind="tiny", seed=seed, arch=REF["arch"], pretrain=REF["pretrain"]))
    path = REF["path"] if wildcards.ref == "main" else REF["cross_init_path"]
    return as_json(dict(kind="path", seed=0, path=path))


rule reference:
    input:
        unpack(reference_inputs),
    output:
        directory("results/reference/{ref}"),
    params:
        json=reference_params,
        io=lambda w, input: (
            f"--corpus {input.corpus} --tokenizer {input.tokenizer}" if "corpus" in input.keys() else ""
        ),
        ckpt="checkpoints/reference/{ref}",
    log:
        "logs/reference/{ref}.log",
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{PY} {SCRIPTS}/reference.py {params.io} --out {output} "
        "--checkpoint-dir {params.ckpt} --threads {threads} --params {params.json:q} 2> {log}"
