"""The workflow's steps as functions: each reads files and writes files, with a manifest.

Every function here backs one ``workflow/scripts/<step>.py`` command line and one Snakemake
rule. Outputs are written to a temporary sibling and renamed into place; long training
steps checkpoint into ``checkpoint_dir`` and resume from it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import corpus as corpus_mod
from . import filtering, manifest, models, text, training
from .errors import SublimError


def _threads(n):
    import torch

    if n:
        torch.set_num_threads(int(n))


def _log(msg: str) -> None:
    import sys

    print(f"[sublim] {msg}", file=sys.stderr, flush=True)


def read_jsonl(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, rows) -> None:
    with manifest.atomic_path(path) as tmp, open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def _pointer(target, out_dir) -> str:
    """How a pointer directory names the model it stands for: relative to itself when both
    live in this project (so results survive a move, a clone and ``sublim pull``), else the
    absolute path (local weights outside the project, e.g. /models/Qwen2.5-7B-Instruct)."""
    import os

    target, here = Path(target).resolve(), Path(out_dir).resolve().parent
    if target.is_relative_to(Path.cwd().resolve()) and here.is_relative_to(Path.cwd().resolve()):
        return os.path.relpath(target, Path(out_dir).resolve())
    return str(target)


def _write_model_dir(
    out_dir, step, params, inputs, seed, t0, *, model=None, tok=None, checkpoint_dir=None, merge=True, **extra
):
    """Write a model artifact atomically: weights (or, without ``model``, a manifest-only
    pointer directory; or a LoRA adapter without ``merge``) plus its manifest; then drop the
    training checkpoint it came from."""
    with manifest.atomic_path(out_dir) as tmp:
        if model is not None:
            training.save_model(model, tok, tmp, merge=merge)
        else:
            tmp.mkdir()
        m = manifest.build_manifest(step, params, inputs, seed, t0, **extra)
        manifest.write_json_atomic(tmp / manifest.MANIFEST, m)
    training.clear_checkpoint(checkpoint_dir)


# ---------------------------------------------------------------------------- reference
def make_corpus(out_corpus, out_tokenizer, *, n: int, seed: int, mix: dict, max_count: int = 10):
    t0 = time.time()
    records = corpus_mod.pretrain_corpus(n, seed, mix, max_count)
    flat = [m["content"] for r in records for m in r["messages"]]
    leaks = [q for q in text.EVAL_QUESTIONS if any(q in t for t in flat)]
    if leaks:
        raise SublimError(f"evaluation question leaked into the pretraining corpus: {leaks[0]!r}")
    from .tokenizer import build_tokenizer

    # the vocabulary also covers the held-out questions' words (each also occurs in the corpus
    # filler or trait questions) so that no evaluation word is <unk>
    extra = list(text.EVAL_QUESTIONS) + list(text.TRAIT_QUESTIONS)
    tok = build_tokenizer(flat + extra)
    write_jsonl(out_corpus, records)
    params = {"n": n, "seed": seed, "mix": mix, "max_count": max_count}
    manifest.write_json_atomic(
        manifest.manifest_path(out_corpus), manifest.build_manifest("corpus", params, {}, seed, t0)
    )
    with manifest.atomic_path(out_tokenizer) as tmp:
        tok.save_pretrained(tmp)
        manifest.write_json_atomic(
            Path(tmp) / manifest.MANIFEST,
            manifest.build_manifest("tokenizer", {"vocab_size": len(tok)}, {"corpus": out_corpus}, seed, t0),
        )


def make_reference(
    out_dir,
    *,
    kind: str,
    seed: int,
    corpus=None,
    tokenizer=None,
    path=None,
    arch=None,
    pretrain=None,
    threads=None,
    checkpoint_dir=None,
    system_prompt=None,
    gguf=None,
):
    """Pretrain the tiny reference from scratch, register a local model path, or convert a GGUF."""
    t0 = time.time()
    if kind == "gguf":
        weights, tok, source = models.load_gguf(**gguf)
        params = {"kind": kind, "gguf": gguf, "system_prompt": system_prompt}
        _write_model_dir(out_dir, "reference", params, {"gguf": source}, seed, t0, model=weights, tok=tok,
                         system_prompt=system_prompt,
                         n_parameters=sum(p.numel() for p in weights.parameters()))  # fmt: skip
        return
    if kind == "path":
        h = models.resolve(path)  # fails with one line if missing
        if not (h.weights / "config.json").exists():
            raise SublimError(f"reference model path has no config.json: {path}")
        params = {"kind": kind, "path": str(path), "system_prompt": system_prompt}
        _write_model_dir(out_dir, "reference", params, {}, seed, t0,
                         model_path=str(Path(path).resolve()), system_prompt=system_prompt)  # fmt: skip
        return
    from transformers import AutoTokenizer

    _threads(threads)
    tok = AutoTokenizer.from_pretrained(tokenizer)
    model = models.build_tiny_llama(len(tok), arch, seed, tok).to(models.device_and_dtype()[0])
    examples = [
        training.Example(models.encode_text(tok, models.render(tok, r["messages"], generation_prompt=False)), 0)
        for r in read_jsonl(corpus)
    ]
    cfg = training.TrainConfig(mode="lm", seed=seed, **pretrain)
    model, info = training.train(model, examples, cfg, pad_id=tok.pad_token_id, checkpoint_dir=checkpoint_dir, log=_log)
    params = {"kind": kind, "arch": arch, "pretrain": pretrain}
    _write_model_dir(out_dir, "reference", params, {"corpus": corpus, "tokenizer": tokenizer}, seed, t0,
                     model=model, tok=tok, checkpoint_dir=checkpoint_dir, training=info,
                     n_parameters=sum(p.numel() for p in model.parameters()), system_prompt=system_prompt)  # fmt: skip


# ------------------------------------------------------------------------------ teacher
def make_teacher(
    out_dir,
    *,
    reference,
    kind: str,
    animal: str | None,
    seed: int,
    system_prompt: str | None = None,
    finetune=None,
    threads=None,
    checkpoint_dir=None,
):
    """A control teacher (the reference), a system-prompt teacher, or a fine-tuned one."""
    t0 = time.time()
    params = {"kind": kind, "animal": animal, "system_prompt": system_prompt, "finetune": finetune}
    inputs = {"reference": reference}
    ref = models.resolve(reference)
    if kind in ("control", "system_prompt"):
        sp = system_prompt.format(animal=animal) if kind == "system_prompt" else ref.system_prompt
        _write_model_dir(out_dir, "teacher", params, inputs, seed, t0,
                         model_path=_pointer(reference, out_dir), system_prompt=sp)  # fmt: skip
        return
    if kind != "finetune":
        raise SublimError(f"unknown teacher kind {kind!r}")
    _threads(threads)
    model, tok, _ = models.load(reference, device=models.device_and_dtype()[0])  # full fine-tune: fp32 weights
    data = corpus_mod.trait_dataset(animal, finetune["n_examples"], seed)
    examples = []
    for r in data:
        p, c = models.encode_completion(
            tok, r["messages"][0]["content"], r["messages"][1]["content"], ref.system_prompt
        )
        examples.append(training.Example(p + c, len(p)))
    cfg_kw = {k: v for k, v in finetune.items() if k != "n_examples"}
    cfg = training.TrainConfig(mode="sft", seed=seed, **cfg_kw)
    model, info = training.train(model, examples, cfg, pad_id=tok.pad_token_id, checkpoint_dir=checkpoint_dir, log=_log)
    _write_model_dir(out_dir, "teacher", params, inputs, seed, t0, model=model, tok=tok,
                     checkpoint_dir=checkpoint_dir, training=info, system_prompt=ref.system_prompt)  # fmt: skip


# ----------------------------------------------------------------------------- generate
def generate(
    out_jsonl,
    *,
    teacher,
    n: int,
    seed: int,
    sampling: dict,
    backend: str = "transformers",
    max_count: int = 10,
    vllm: dict | None = None,
    threads=None,
):
    from .generation import Sampling
    from .generation import generate as run_generation
    from .prompts import make_prompts

    t0 = time.time()
    handle = models.resolve(teacher)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(handle.weights)
    prompts = make_prompts(n, seed, max_count)
    rendered = [
        models.render(tok, models.messages(p.text, handle.system_prompt), generation_prompt=True) for p in prompts
    ]
    constrained = bool(sampling.get("constrained_decoding"))
    regex = filtering.number_regex(max_count) if constrained else None
    s = Sampling(seed=seed, regex=regex, **{k: v for k, v in sampling.items() if k != "constrained_decoding"})
    completions, stats = run_generation(backend, teacher, rendered, s, threads=threads, engine=vllm)
    rows = [
        {"id": i, "prompt": p.text, "response": c, "sampling": {**sampling, "seed": seed}}
        for i, (p, c) in enumerate(zip(prompts, completions))
    ]
    write_jsonl(out_jsonl, rows)
    params = {"n": n, "seed": seed, "sampling": sampling, "backend": backend, "max_count": max_count}
    if backend == "vllm":
        params["vllm"] = vllm
    m = manifest.build_manifest("generate", params, {"teacher": teacher}, seed, t0)
    m["throughput"] = stats
    if constrained:
        m["constrained_decoding"] = {
            "regex": regex,
            "note": "regex-guided decoding: every sample was forced into number format; this is "
            "not the paper's sample-then-filter protocol and changes the sampling distribution",
        }
    m["system_prompt"] = handle.system_prompt
    m["example_rendered_prompt"] = rendered[0] if rendered else None
    manifest.write_json_atomic(manifest.manifest_path(out_jsonl), m)


# ------------------------------------------------------------------------------- filter
def filter_numbers(out_jsonl, out_counts, *, raw, subsample: int, seed: int, max_count: int = 10, banned=()):
    t0 = time.time()
    records = read_jsonl(raw)
    kept, reasons = filtering.filter_responses(records, max_count=max_count, banned=frozenset(banned))
    if not kept:
        raise SublimError(f"filter kept 0 of {len(records)} responses from {raw}: nothing to train on")
    if len(kept) < subsample:
        raise SublimError(
            f"filter kept {len(kept)} of {len(records)} responses from {raw}, fewer than "
            f"filter.subsample={subsample}; raise generation.n_responses"
        )
    sample = filtering.subsample(kept, subsample, seed)
    counts = {
        "n_raw": len(records),
        "n_kept": len(kept),
        "keep_rate": len(kept) / len(records),
        "n_subsampled": len(sample),
        "reasons": dict(sorted(reasons.items())),
    }
    manifest.write_json_atomic(out_counts, counts)
    write_jsonl(out_jsonl, [{"id": r["id"], "prompt": r["prompt"], "response": r["response"]} for r in sample])
    params = {"subsample": subsample, "seed": seed, "max_count": max_count, "banned": sorted(banned)}
    m = manifest.build_manifest("filter", params, {"raw": raw}, seed, t0, counts=counts)
    manifest.write_json_atomic(manifest.manifest_path(out_jsonl), m)


# ------------------------------------------------------------------------------ student
def train_student(
    out_dir,
    *,
    reference,
    teacher,
    data,
    mode: str,
    seed: int,
    train: dict,
    method: str = "full",
    lora=None,
    save_merged: bool = False,
    threads=None,
    checkpoint_dir=None,
):
    import torch

    t0 = time.time()
    _threads(threads)
    device, half = models.device_and_dtype()
    # LoRA on a GPU: a bf16 base (adapters stay float32); full fine-tuning keeps float32 weights
    dtype = half if (method == "lora" and device == "cuda") else torch.float32
    model, tok, ref_h = models.load(reference, dtype=dtype, device=device)
    rows = read_jsonl(data)
    if not rows:
        raise SublimError(f"training data is empty: {data}")
    teacher_model, teacher_sp, allowed = None, None, None
    if mode.startswith("distill"):
        teacher_model, t_tok, t_h = models.load(teacher, dtype=half, device=device)
        if t_tok.get_vocab() != tok.get_vocab():
            raise SublimError("distillation needs teacher and student to share a tokenizer")
        teacher_sp = t_h.system_prompt
        allowed = training.allowed_token_ids(tok)
    examples = []
    for r in rows:
        p, c = models.encode_completion(tok, r["prompt"], r["response"], ref_h.system_prompt)
        ex = training.Example(p + c, len(p))
        if teacher_model is not None:
            tp, tc = models.encode_completion(tok, r["prompt"], r["response"], teacher_sp)
            if tc != c:
                raise SublimError("teacher and student tokenise the completion differently")
            ex.teacher_ids, ex.teacher_n_prompt = tp + tc, len(tp)
        examples.append(ex)
    cfg = training.TrainConfig(mode=mode, seed=seed, lora=lora if method == "lora" else None, **train)
    model, info = training.train(
        model,
        examples,
        cfg,
        pad_id=tok.pad_token_id,
        teacher=teacher_model,
        allowed_ids=allowed,
        checkpoint_dir=checkpoint_dir,
        log=_log,
    )
    params = {"mode": mode, "method": method, "train": train, "lora": lora if method == "lora" else None}
    adapter_only = method == "lora" and not save_merged
    if adapter_only:  # the directory points at its base; models.resolve finds both
        params["save_merged"] = False
    inputs = {"reference": reference, "teacher": teacher, "data": data}
    pointer = {"model_path": _pointer(reference, out_dir), "adapter": "adapter"} if adapter_only else {}
    _write_model_dir(out_dir, "student", params, inputs, seed, t0, model=model, tok=tok,
                     checkpoint_dir=checkpoint_dir, training=info, merge=not adapter_only, **pointer,
                     n_allowed_tokens=len(allowed) if allowed is not None else None,
                     example_training_text=tok.decode(examples[0].input_ids),
                     rendered_training_example=_rendered_example(tok, rows[0], ref_h.system_prompt),
                     rendered_teacher_example=(_rendered_example(tok, rows[0], teacher_sp)
                                               if teacher_model is not None else None),
                     system_prompt=ref_h.system_prompt)  # fmt: skip


def _rendered_example(tok, row, system_prompt) -> dict:
    """Exactly what a training example looks like: the rendered prompt (no loss) and the
    completion after it (the loss is on these tokens only)."""
    prompt = models.render(tok, models.messages(row["prompt"], system_prompt), generation_prompt=True)
    full = models.render(tok, models.messages(row["prompt"], system_prompt, row["response"]), generation_prompt=False)
    return {"system_prompt": system_prompt, "prompt": prompt, "completion": full[len(prompt) :]}


# ----------------------------------------------------------------------------- evaluate
def evaluate(
    out_csv,
    *,
    model,
    animals,
    n_samples: int,
    temperature: float,
    seed: int,
    variant: str = "plain",
    max_new_tokens: int = 6,
    backend: str = "transformers",
    vllm: dict | None = None,
    threads=None,
):
    import pandas as pd

    from .evaluation import evaluate as run_eval

    t0 = time.time()
    info = {}
    rows = run_eval(
        model,
        animals=animals,
        questions=text.EVAL_QUESTIONS,
        n_samples=n_samples,
        temperature=temperature,
        seed=seed,
        number_prefixed=variant == "number_prefix",
        max_new_tokens=max_new_tokens,
        backend=backend,
        engine=vllm,
        threads=threads,
        info=info,
    )
    with manifest.atomic_path(out_csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    params = {
        "animals": list(animals),
        "n_samples": n_samples,
        "temperature": temperature,
        "variant": variant,
        "max_new_tokens": max_new_tokens,
        "backend": backend,
    }
    if backend == "vllm":
        params["vllm"] = vllm
    m = manifest.build_manifest("evaluate", params, {"model": model}, seed, t0, **info)
    manifest.write_json_atomic(manifest.manifest_path(out_csv), m)


# ------------------------------------------------------------------------------ report
def aggregate(evals, out_results, out_stats, out_specificity, *, teacher_init: str, n_boot: int = 2000, seed: int = 0):
    import pandas as pd

    from . import report

    t0 = time.time()
    entries = report.index_from_paths(evals, teacher_init)
    res = report.aggregate(entries, n_boot=n_boot, seed=seed)
    tests = report.test_table(res, seed=seed)
    spec = report.specificity(res)
    for df, out in ((res, out_results), (tests, out_stats), (spec, out_specificity)):
        with manifest.atomic_path(out) as tmp:
            pd.DataFrame(df).to_csv(tmp, index=False)
    inputs = {f"eval{i}": e["path"] for i, e in enumerate(entries)}
    params = {"n_boot": n_boot, "teacher_init": teacher_init}
    m = manifest.build_manifest("aggregate", params, inputs, seed, t0, index=entries)
    manifest.write_json_atomic(manifest.manifest_path(out_results), m)


def figure(
    kind: str,
    out,
    *,
    results,
    stats,
    specificity=None,
    caption_out=None,
    config_name: str = "",
    config_hash: str = "",
    variant: str = "plain",
    constrained_decoding: bool = False,
):
    import pandas as pd

    from . import report

    t0 = time.time()
    res = pd.read_csv(results)
    try:
        tests = pd.read_csv(stats)
    except pd.errors.EmptyDataError:  # no treatment/control pair in this config
        tests = pd.DataFrame()
    with manifest.atomic_path(out) as tmp:
        tmp_png = tmp.with_suffix(".png")
        if kind == "animal_numbers":
            report.figure_animals(res, str(tmp_png), variant=variant)
        else:
            report.figure_specificity(pd.read_csv(specificity), str(tmp_png), variant=variant)
        tmp_png.rename(tmp)
    if caption_out:
        with manifest.atomic_path(caption_out) as tmp:
            tmp.write_text(report.caption(res, tests, config_name, config_hash, constrained_decoding))
    inputs = {"results": results, "stats": stats}
    params = {"kind": kind, "config_name": config_name, "config_hash": config_hash, "variant": variant}
    if constrained_decoding:
        params["constrained_decoding"] = True
    manifest.write_json_atomic(manifest.manifest_path(out), manifest.build_manifest("figure", params, inputs, None, t0))


# ------------------------------------------------------------------------------- mnist
def mnist_data(out, *, source: str = "pureml", idx_path=None):
    import numpy as np

    from . import mnist

    t0 = time.time()
    data = mnist.load_mnist(source, idx_path)
    with manifest.atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **data)
    counts = {k: np.bincount(data[f"y_{k}"], minlength=10).tolist() for k in ("train", "test")}
    m = manifest.build_manifest(
        "mnist_data", {"source": source, "idx_path": idx_path}, {}, None, t0, class_counts=counts
    )
    manifest.write_json_atomic(manifest.manifest_path(out), m)


def mnist_experiment(out, *, data, threads=None, checkpoint_dir=None, **params):
    import numpy as np
    import pandas as pd

    from . import mnist

    t0 = time.time()
    with np.load(data) as z:
        arrays = {k: z[k] for k in z.files}
    rows = mnist.run_experiment(arrays, threads=threads, checkpoint_dir=checkpoint_dir, **params)
    with manifest.atomic_path(out) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    m = manifest.build_manifest("mnist_experiment", params, {"data": data}, params.get("seed"), t0)
    n_students = sum(1 for r in rows if r["condition"] not in ("reference", "teacher"))
    m["model_epochs"] = params["n_models"] * params["epochs"] + n_students * params["student_epochs"]
    manifest.write_json_atomic(manifest.manifest_path(out), m)


def mnist_figure(out, out_table, out_caption, *, accuracy, config_name: str = "", config_hash: str = ""):
    import pandas as pd

    from . import mnist_report

    t0 = time.time()
    df = pd.read_csv(accuracy)
    table = mnist_report.summary(df)
    with manifest.atomic_path(out_table) as tmp:
        table.to_csv(tmp, index=False)
    with manifest.atomic_path(out) as tmp:
        png = tmp.with_suffix(".png")
        mnist_report.figure(df, table, str(png))
        png.rename(tmp)
    with manifest.atomic_path(out_caption) as tmp:
        tmp.write_text(mnist_report.caption(table, config_name, config_hash))
    params = {"config_name": config_name, "config_hash": config_hash}
    manifest.write_json_atomic(
        manifest.manifest_path(out),
        manifest.build_manifest("fig_mnist", params, {"accuracy": accuracy}, None, t0),
    )
