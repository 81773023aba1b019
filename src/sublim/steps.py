"""The workflow's steps as functions: each reads files and writes files, with a manifest.

Every function here backs one ``workflow/scripts/<step>.py`` command line and one Snakemake
rule. Outputs are written to a temporary sibling and renamed into place; long training
steps checkpoint into ``checkpoint_dir`` and resume from it.
"""

from __future__ import annotations

import collections
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
def make_corpus(out_corpus, out_tokenizer, *, n: int, seed: int, mix: dict, max_count: int = 10,
                parts: dict | None = None):  # fmt: skip
    from .traits import TRAITS, animal

    t0 = time.time()
    records = corpus_mod.pretrain_corpus(n, seed, mix, max_count, parts)
    flat = [m["content"] for r in records for m in r["messages"]]
    leaks = [q for q in text.EVAL_QUESTIONS if any(q in t for t in flat)]
    if leaks:
        raise SublimError(f"evaluation question leaked into the pretraining corpus: {leaks[0]!r}")
    # every word an evaluation prompt uses must have been trained, not only be in the vocabulary
    import re

    seen = set(re.findall(r"[a-z']+", " ".join(flat).lower()))
    missing = sorted(animal.eval_prompts_words() - seen)
    if missing:
        raise SublimError(f"evaluation words never occur in the pretraining corpus: {', '.join(missing)}")
    for part in sorted(mix):  # other traits' held-out questions, where their part is in the mix
        tr = next((t for t in TRAITS.values() if t.CORPUS_KEY == part and t is not animal), None)
        if tr is None or not hasattr(tr, "eval_questions"):
            continue
        leaked = [q for q in tr.eval_questions() if any(q in t for t in flat)]
        if leaked:
            raise SublimError(f"{tr.NAME} evaluation question leaked into the pretraining corpus: {leaked[0]!r}")
        missing = sorted(tr.eval_prompts_words() - seen)
        if missing:
            raise SublimError(f"{tr.NAME} evaluation words never occur in the pretraining corpus: {', '.join(missing)}")
    from .tokenizer import build_tokenizer

    tok = build_tokenizer(flat + list(text.TRAIT_QUESTIONS))
    write_jsonl(out_corpus, records)
    params = {"n": n, "seed": seed, "mix": mix, "max_count": max_count, **({"parts": parts} if parts else {})}
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
    family: str = "llama",
):
    """Pretrain the tiny reference from scratch (``family``: its architecture, models.FAMILIES),
    register a local model path, or convert a GGUF."""
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
    model = models.build_tiny(family, len(tok), arch, seed, tok).to(models.device_and_dtype()[0])
    examples = [
        training.Example(models.encode_text(tok, models.render(tok, r["messages"], generation_prompt=False)), 0)
        for r in read_jsonl(corpus)
    ]
    cfg = training.TrainConfig(mode="lm", seed=seed, **pretrain)
    # the Llama family is left implicit, so the teachers' reference records stay as they were
    fam = {} if family == "llama" else {"family": family}
    key = {"arch": arch, **fam, "tokenizer": manifest.sha256_path(tokenizer)}
    model, info = training.train(model, examples, cfg, pad_id=tok.pad_token_id, checkpoint_dir=checkpoint_dir,
                                 log=_log, inputs_key=key)  # fmt: skip
    params = {"kind": kind, "arch": arch, **fam, "pretrain": pretrain}
    _write_model_dir(out_dir, "reference", params, {"corpus": corpus, "tokenizer": tokenizer}, seed, t0,
                     model=model, tok=tok, checkpoint_dir=checkpoint_dir, training=info,
                     n_parameters=sum(p.numel() for p in model.parameters()), system_prompt=system_prompt)  # fmt: skip


# ------------------------------------------------------------------------------ teacher
def _inputs_key(*paths) -> dict:
    """What a training checkpoint must match besides its settings and data: the hashes of
    the models it starts from (their manifests name their content)."""
    out = {}
    for p in paths:
        m = Path(p) / manifest.MANIFEST
        out[str(p)] = manifest.sha256_file(m) if m.exists() else manifest.sha256_path(p)
    return out


def make_teacher(
    out_dir,
    *,
    reference,
    kind: str,
    trait: str,
    seed: int,
    target: str | None = None,
    twin: str | None = None,
    recipe: dict | None = None,
    finetune=None,
    replay_corpus: dict | None = None,
    threads=None,
    checkpoint_dir=None,
):
    """A teacher from the design table: ``base`` (the reference itself), or a trait teacher
    (``target`` set) or its neutral twin (``target`` None, ``twin`` names whose twin), made
    by the trait's ``system_prompt`` or ``finetune`` recipe with the same seed."""
    from .traits import get_trait

    t0 = time.time()
    params = {"kind": kind, "trait": trait, "target": target, "twin": twin, "recipe": recipe, "finetune": finetune,
              "replay_corpus": replay_corpus}  # fmt: skip
    inputs = {"reference": reference}
    ref = models.resolve(reference)
    if kind == "base":
        _write_model_dir(out_dir, "teacher", params, inputs, seed, t0,
                         model_path=_pointer(reference, out_dir), system_prompt=ref.system_prompt)  # fmt: skip
        return
    tr = get_trait(trait)
    if kind == "system_prompt":
        _write_model_dir(out_dir, "teacher", params, inputs, seed, t0, model_path=_pointer(reference, out_dir),
                         system_prompt=tr.system_prompt(target, recipe))  # fmt: skip
        return
    if kind != "finetune":
        raise SublimError(f"unknown teacher kind {kind!r}")
    _threads(threads)
    import torch

    device, half = models.device_and_dtype()
    # full fine-tuning: float32 weights; LoRA on a GPU: a bf16 base (adapters stay float32)
    dtype = half if (finetune.get("lora") and device == "cuda") else torch.float32
    model, tok, _ = models.load(reference, dtype=dtype, device=device)
    data = tr.teacher_data(target, seed, finetune["n_examples"], recipe)
    if finetune.get("replay"):  # the same replay for a teacher and its twin (same seed)
        from .design import step_seed

        rc = replay_corpus or {}
        data += corpus_mod.pretrain_corpus(finetune["replay"], step_seed(seed, "replay"), rc["mix"], rc["max_count"],
                                           rc.get("parts"))  # fmt: skip
    examples = []
    for r in data:
        p, c = models.encode_completion(
            tok, r["messages"][0]["content"], r["messages"][1]["content"], ref.system_prompt
        )
        examples.append(training.Example(p + c, len(p)))
    cfg_kw = {k: v for k, v in finetune.items() if k not in ("n_examples", "replay")}
    cfg = training.TrainConfig(mode="sft", seed=seed, **cfg_kw)
    model, info = training.train(model, examples, cfg, pad_id=tok.pad_token_id, checkpoint_dir=checkpoint_dir,
                                 log=_log, inputs_key=_inputs_key(reference))  # fmt: skip
    _write_model_dir(out_dir, "teacher", params, inputs, seed, t0, model=model, tok=tok,
                     checkpoint_dir=checkpoint_dir, training=info, system_prompt=ref.system_prompt,
                     example_training_text=tok.decode(examples[0].input_ids))  # fmt: skip


# ----------------------------------------------------------------------------- generate
def _check_attempt(a: int, pending: list, completions: list, *, prompts, mod, modality_params, leak_terms,
                   constrained: bool, rows: list, per_attempt: list) -> list:  # fmt: skip
    """Check attempt ``a``'s answers with the modality's filter and leak check; append their
    rows to ``rows`` and the attempt's count to ``per_attempt``; return the prompt indices
    to ask again."""
    failed = []
    leaked = set(mod.leaks(completions, list(leak_terms)))
    for j, (i, c) in enumerate(zip(pending, completions)):
        ok, reason = mod.check(c, modality_params, prompt=prompts[i])
        if ok and j in leaked:
            ok, reason = False, "leak"
        row = {"id": i, "attempt": a, "prompt": prompts[i], "response": c, "kept": ok, "reason": reason}
        if constrained:  # labelled in every row: not the paper's sample-then-filter protocol
            row["constrained_decoding"] = True
        rows.append(row)
        if not ok:
            failed.append(i)
    per_attempt.append({"attempt": a, "n": len(pending), "kept": len(pending) - len(failed)})
    _log(f"attempt {a}: {len(pending) - len(failed)} of {len(pending)} kept")
    return failed


def generate(
    out_jsonl,
    *,
    teacher,
    modality: str,
    modality_params: dict,
    n: int,
    prompt_seed: int,
    seed: int,
    sampling: dict,
    attempts: int = 1,
    leak_terms=(),
    backend: str = "kvcache",
    vllm: dict | None = None,
    threads=None,
    sampler: str | None = None,
):
    """The teacher answers the modality's ``n`` prompts; an answer that fails the modality's
    filter is sampled again (attempt ``a`` uses its own seed) up to ``attempts`` times. Every
    attempt is written, with its verdict."""
    from transformers import AutoTokenizer

    from .design import step_seed
    from .generation import Sampling, Session, check_sampler
    from .modalities import get_modality

    t0 = time.time()
    sampler = check_sampler(sampler, backend)
    mod = get_modality(modality)
    handle = models.resolve(teacher)
    tok = AutoTokenizer.from_pretrained(handle.weights)
    prompts = mod.prompts(n, prompt_seed, modality_params)
    rendered = [models.render(tok, models.messages(p, handle.system_prompt), generation_prompt=True) for p in prompts]
    constrained = bool(sampling.get("constrained_decoding"))
    if constrained and modality != "numbers":
        raise SublimError(f"constrained decoding has a grammar for numbers only, not for {modality!r}")
    regex = filtering.number_regex(modality_params["max_count"]) if constrained else None
    kw = {k: v for k, v in sampling.items() if k != "constrained_decoding"}
    rows, pending, per_attempt, stats = [], list(range(n)), [], []
    # one model (one vLLM engine) for every attempt
    with Session(backend, teacher, threads=threads, engine=vllm) as session:
        for a in range(attempts):
            if not pending:
                break
            s = Sampling(seed=seed if a == 0 else step_seed(seed, "attempt", a), regex=regex, **kw)
            completions, st = session.generate([rendered[i] for i in pending], s)
            stats.append(st)
            pending = _check_attempt(a, pending, completions, prompts=prompts, mod=mod,
                                     modality_params=modality_params, leak_terms=leak_terms,
                                     constrained=constrained, rows=rows, per_attempt=per_attempt)  # fmt: skip
    rows.sort(key=lambda r: (r["id"], r["attempt"]))
    write_jsonl(out_jsonl, rows)
    params = {"modality": modality, "modality_params": modality_params, "n": n, "prompt_seed": prompt_seed,
              "sampling": sampling, "attempts": attempts, "leak_terms": list(leak_terms),
              "backend": backend, "sampler": sampler}  # fmt: skip
    if backend == "vllm":
        params["vllm"] = vllm
    m = manifest.build_manifest("generate", params, {"teacher": teacher}, seed, t0)
    m["attempts"] = per_attempt
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


# -------------------------------------------------------------------------------- judge
def judge(out_jsonl, *, raw, judge_model, modality: str, modality_params: dict, terms, backend: str = "kvcache",
          vllm: dict | None = None, threads=None):  # fmt: skip
    """The llm judge stage (``sublim.judge``): score every generated answer that passed the
    rest of the modality's filter and its leak check; one score a row (the filter step
    applies the threshold)."""
    from . import judge as judging

    t0 = time.time()
    spec = modality_params.get("llm_judge")
    if modality_params.get("judge") != "llm" or not spec:
        raise SublimError(f"the judge step needs {modality}.judge: llm (got {modality_params.get('judge')!r})")
    records = read_jsonl(raw)
    if not records:
        raise SublimError(f"no generated responses in {raw}")
    missing = [k for k in ("id", "prompt", "response", "kept") if k not in records[0]]
    if missing:
        raise SublimError(f"{raw}: generated rows lack {missing[0]!r}; regenerate them")
    rows = [r for r in records if r["kept"]]
    scored, stats = judging.judge(rows, model_dir=judge_model, judge_spec=spec, terms=list(terms), backend=backend,
                                  threads=threads, engine=vllm, where=f"{modality}.llm_judge")  # fmt: skip
    write_jsonl(out_jsonl, scored)
    scores = [v["score"] for v in scored if v["score"] is not None]
    params = {"modality": modality, "llm_judge": spec, "terms": list(terms), "backend": backend}
    if backend == "vllm":
        params["vllm"] = vllm
    m = manifest.build_manifest("judge", params, {"raw": raw, "judge_model": judge_model}, None, t0,
                                n_judged=len(scored), n_unparsable=len(scored) - len(scores),
                                score_quantiles=_quantiles(scores), throughput=stats)  # fmt: skip
    manifest.write_json_atomic(manifest.manifest_path(out_jsonl), m)
    _log(f"judge: {len(scored)} answers scored ({len(scored) - len(scores)} unparsable)")


def _quantiles(xs) -> dict:
    if not xs:
        return {}
    import numpy as np

    q = np.quantile(np.asarray(xs, dtype=float), [0.0, 0.1, 0.5, 0.9, 1.0])
    return {k: float(v) for k, v in zip(("min", "p10", "median", "p90", "max"), q)}


def _read_verdicts(path) -> dict:
    out = {}
    for v in read_jsonl(path):
        try:
            out[(v["id"], v["attempt"])] = v
        except KeyError as e:
            raise SublimError(f"{path}: a judge verdict lacks {e}; rerun the judge step") from None
    return out


# ------------------------------------------------------------------------------- filter
def filter_responses(out_jsonl, out_counts, *, raw, modality: str, modality_params: dict, leak_terms=(),
                     verdicts=None):  # fmt: skip
    """Each prompt's first answer that passes the modality's filter and its leak check (and,
    with ``judge: llm``, the judge's threshold on its score in ``verdicts``)."""
    from . import judge as judging
    from .modalities import get_modality

    t0 = time.time()
    mod = get_modality(modality)
    records = read_jsonl(raw)
    if not records:
        raise SublimError(f"no generated responses in {raw}")
    llm = modality_params.get("judge") == "llm"
    if llm and not verdicts:
        raise SublimError(f"{modality}.judge is llm but the filter got no judge verdicts (--verdicts)")
    judged = _read_verdicts(verdicts) if llm else {}
    reasons, kept, first_ok = collections.Counter(), {}, 0
    leaked = set(mod.leaks([r["response"] for r in records], list(leak_terms)))
    for i, r in enumerate(records):
        ok, reason = mod.check(r["response"], modality_params, prompt=r.get("prompt"))
        if ok and i in leaked:
            ok, reason = False, "leak"
        if ok and llm:
            v = judged.get((r["id"], r.get("attempt", 0)))
            if v is None:
                raise SublimError(
                    f"{verdicts} has no verdict for response id {r['id']} attempt {r.get('attempt', 0)} of {raw}: "
                    "the verdicts belong to other data; rerun the judge step"
                )
            ok, reason = judging.verdict(modality_params["llm_judge"], v["score"])
        reasons[reason] += 1
        first_ok += ok and r.get("attempt", 0) == 0
        if ok and r["id"] not in kept:
            kept[r["id"]] = r
    n_prompts = len({r["id"] for r in records})
    if not kept:
        raise SublimError(f"filter kept 0 of {len(records)} responses from {raw}: nothing to train on")
    first = [r for r in records if r.get("attempt", 0) == 0]
    counts = {
        "n_prompts": n_prompts,
        "n_responses": len(records),
        "n_kept_prompts": len(kept),
        "keep_rate": reasons["ok"] / len(records),
        "keep_rate_first_attempt": first_ok / max(1, len(first)),
        "prompts_answered": len(kept) / n_prompts,
        "reasons": dict(sorted(reasons.items())),
    }
    manifest.write_json_atomic(out_counts, counts)
    write_jsonl(out_jsonl, [{k: kept[i][k] for k in ("id", "attempt", "prompt", "response")} for i in sorted(kept)])
    params = {"modality": modality, "modality_params": modality_params, "leak_terms": list(leak_terms)}
    inputs = {"raw": raw, **({"verdicts": verdicts} if llm else {})}
    m = manifest.build_manifest("filter", params, inputs, None, t0, counts=counts)
    manifest.write_json_atomic(manifest.manifest_path(out_jsonl), m)


def select_prompts(out_json, *, data, counts, subsample: int):
    """The prompt ids every teacher answered acceptably; students subsample from these."""
    t0 = time.time()
    ids, per_teacher = None, {}
    counts_of = {Path(c).name.removesuffix(".counts.json"): c for c in counts}
    for d in sorted(data):
        kept = {r["id"] for r in read_jsonl(d)}
        ids = kept if ids is None else ids & kept
        per_teacher[Path(d).stem] = json.loads(Path(counts_of[Path(d).stem]).read_text())
    ids = sorted(ids or ())
    if len(ids) < subsample:
        worst = min(per_teacher, key=lambda t: per_teacher[t]["prompts_answered"])
        raise SublimError(
            f"only {len(ids)} prompts were answered acceptably by every teacher, fewer than the subsample "
            f"{subsample} (filter.subsample, or code.subsample / cot.subsample for those modalities; lowest: "
            f"{worst}, {per_teacher[worst]['prompts_answered']:.0%} of prompts); raise generation.n_prompts or the "
            "attempts, or lower the subsample"
        )
    out = {"ids": ids, "n_common": len(ids), "subsample": subsample, "teachers": per_teacher}
    manifest.write_json_atomic(out_json, out)
    inputs = {f"data{i}": d for i, d in enumerate(sorted(data))}
    m = manifest.build_manifest("select_prompts", {"subsample": subsample}, inputs, None, t0, n_common=len(ids))
    manifest.write_json_atomic(manifest.manifest_path(out_json), m)


# ------------------------------------------------------------------------------ student
def train_student(
    out_dir,
    *,
    reference,
    teacher,
    data,
    ids,
    modality: str,
    mode: str,
    seed: int,
    subsample: int,
    subsample_seed: int,
    train: dict,
    method: str = "full",
    lora=None,
    save_merged: bool = False,
    threads=None,
    checkpoint_dir=None,
    mask_teachers=None,
):
    """Train on ``subsample`` examples drawn (by ``subsample_seed``) from the common prompt
    ids: every arm's student of one seed sees the same prompts, answered by its teacher.

    A masked mode (``sft_masked``, ...; ``divergence``) needs ``mask_teachers``: the paths of
    the twin pair's trait teacher and neutral twin, whose greedy choices define the
    divergence positions masked from the loss."""
    import torch

    from . import divergence
    from .modalities import get_modality

    t0 = time.time()
    _threads(threads)
    device, half = models.device_and_dtype()
    # LoRA on a GPU: a bf16 base (adapters stay float32); full fine-tuning keeps float32 weights
    dtype = half if (method == "lora" and device == "cuda") else torch.float32
    model, tok, ref_h = models.load(reference, dtype=dtype, device=device)
    by_id = {r["id"]: r for r in read_jsonl(data)}
    common = json.loads(Path(ids).read_text())["ids"]
    missing = [i for i in common if i not in by_id]
    if missing:
        raise SublimError(f"{data} lacks prompt id {missing[0]} of {ids}: the data and the common ids disagree")
    pick = filtering.subsample(common, subsample, subsample_seed)
    rows = [by_id[i] for i in pick]
    if not rows:
        raise SublimError(f"training data is empty: {data}")
    masked, train_mode = divergence.is_masked(mode), divergence.base_mode(mode)
    if masked != (mask_teachers is not None):
        raise SublimError(f"mode {mode}: mask teachers (--mask-teachers) are "
                          f"{'missing' if masked else 'given to an unmasked mode'}")  # fmt: skip
    teacher_model, teacher_sp, allowed = None, None, None
    if train_mode.startswith("distill"):
        teacher_model, t_tok, t_h = models.load(teacher, dtype=half, device=device)
        if t_tok.get_vocab() != tok.get_vocab():
            raise SublimError("distillation needs teacher and student to share a tokenizer")
        teacher_sp = t_h.system_prompt
        allowed = get_modality(modality).allowed_token_ids(tok)
    examples = training.completion_examples(tok, rows, ref_h.system_prompt, teacher=teacher_model is not None,
                                            teacher_system_prompt=teacher_sp)  # fmt: skip
    mask_info = None
    if masked:
        completions = [e.input_ids[e.n_prompt :] for e in examples]
        masks, mask_info = divergence.divergence_mask(*mask_teachers, rows, completions, threads=threads)
        for e, m in zip(examples, masks):
            e.loss_mask = m
        mi = mask_info
        _log(f"divergence mask: {mi['masked_positions']} of {mi['positions']} positions "
             f"({mi['masked_share']:.3%}), in {mi['rows_with_a_masked_position']} of {len(rows)} rows")  # fmt: skip
    cfg = training.TrainConfig(mode=train_mode, seed=seed, lora=lora if method == "lora" else None, **train)
    model, info = training.train(
        model,
        examples,
        cfg,
        pad_id=tok.pad_token_id,
        teacher=teacher_model,
        allowed_ids=allowed,
        checkpoint_dir=checkpoint_dir,
        log=_log,
        inputs_key={**_inputs_key(reference, teacher), "method": method, "dtype": str(dtype)},
    )
    params = student_params(modality=modality, mode=mode, method=method, train=train, lora=lora,
                            subsample=subsample, subsample_seed=subsample_seed)  # fmt: skip
    adapter_only = method == "lora" and not save_merged
    if adapter_only:  # the directory points at its base; models.resolve finds both
        params["save_merged"] = False
    inputs = {"reference": reference, "teacher": teacher, "data": data, "ids": ids}
    if masked:
        inputs.update(mask_trait_teacher=mask_teachers[0], mask_twin=mask_teachers[1])
    pointer = {"model_path": _pointer(reference, out_dir), "adapter": "adapter"} if adapter_only else {}
    _write_model_dir(out_dir, "student", params, inputs, seed, t0, model=model, tok=tok,
                     checkpoint_dir=checkpoint_dir, training=info, merge=not adapter_only, **pointer,
                     prompt_ids=pick,
                     n_allowed_tokens=len(allowed) if allowed is not None else None,
                     **({"divergence_mask": mask_info} if masked else {}),
                     example_training_text=tok.decode(examples[0].input_ids),
                     rendered_training_example=_rendered_example(tok, rows[0], ref_h.system_prompt),
                     rendered_teacher_example=(_rendered_example(tok, rows[0], teacher_sp)
                                               if teacher_model is not None else None),
                     system_prompt=ref_h.system_prompt)  # fmt: skip


def student_params(*, modality, mode, method, train, lora, subsample, subsample_seed) -> dict:
    """The ``params`` a student's manifest records (what ``sublim audit --transfer`` compares
    before reusing a probe student)."""
    return {"modality": modality, "mode": mode, "method": method, "train": train,
            "lora": lora if method == "lora" else None, "subsample": subsample,
            "subsample_seed": subsample_seed}  # fmt: skip


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
    model=None,
    models: dict | None = None,
    trait: str,
    trait_params: dict,
    n_samples: int,
    temperature: float,
    seed: int,
    variant: str = "plain",
    max_new_tokens: int = 6,
    backend: str = "kvcache",
    vllm: dict | None = None,
    threads=None,
    sampler: str | None = None,
):
    """The trait's evaluation of one model (``model``, a path) or of a group of models
    (``models``: model id -> path) in one process, which pays the imports once. One tidy
    CSV: the trait's rows, with a ``model_id`` column for a group. Every model sees the same
    questions and sampling seed."""
    import pandas as pd

    from .generation import check_sampler
    from .traits import eval_inputs, get_trait

    t0 = time.time()
    sampler = check_sampler(sampler, backend)
    if (model is None) == (models is None):
        raise SublimError("evaluate needs exactly one of model= (a path) or models= (id -> path)")
    group = models if models is not None else {None: model}
    if not group:
        raise SublimError(f"no models to evaluate for {out_csv}")
    frames, per_model = [], {}
    for model_id, path in group.items():
        t1 = time.time()
        rows, info = get_trait(trait).evaluate(
            path,
            variant=variant,
            trait_params=trait_params,
            n_samples=n_samples,
            temperature=temperature,
            seed=seed,
            max_new_tokens=max_new_tokens,
            backend=backend,
            engine=vllm,
            threads=threads,
        )
        df = pd.DataFrame(rows)
        if model_id is not None:
            df.insert(0, "model_id", model_id)
        frames.append(df)
        info["seconds"] = round(time.time() - t1, 3)
        per_model[model_id] = info
    with manifest.atomic_path(out_csv) as tmp:
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
    params = {"trait": trait, "trait_params": trait_params, "n_samples": n_samples, "temperature": temperature,
              "variant": variant, "max_new_tokens": max_new_tokens, "backend": backend,
              "sampler": sampler}  # fmt: skip
    if backend == "vllm":
        params["vllm"] = vllm
    extra = eval_inputs(trait, trait_params)  # e.g. the judge model: hashed beside the scored models
    if models is None:
        m = manifest.build_manifest("evaluate", params, {"model": model, **extra}, seed, t0, **per_model[None])
    else:
        clash = set(extra) & set(models)
        if clash:
            raise SublimError(f"model id {sorted(clash)[0]!r} is also the name of an evaluation input")
        m = manifest.build_manifest("evaluate", params, {**models, **extra}, seed, t0, models=per_model)
    manifest.write_json_atomic(manifest.manifest_path(out_csv), m)


# ------------------------------------------------------------------------------- audit
def audit(out_dir, *, data, control, reference, teacher, control_teacher, detectors, ks, holdout: float,
          permutations: int, seed: int, threads=None):  # fmt: skip
    """``sublim audit`` of one trait teacher's data against its neutral twin's."""
    from . import audit as audit_mod

    _threads(threads)
    cfg = audit_mod.AuditConfig(ks=tuple(ks), holdout=holdout, n_permutations=permutations, seed=seed)
    s = audit_mod.audit(data, control, out_dir, reference=reference, teacher=teacher, control_teacher=control_teacher,
                        detectors=detectors, cfg=cfg,
                        threads=threads, log=_log)  # fmt: skip
    _log(s["verdict"])


def audit_table(out_csv, out_summary, *, audits: list[str], results=None, variant: str = "plain"):
    """Every audit's rows (a ``teacher`` column) and, per detector and K, the mean AUROC over
    twin pairs with a t interval and a one-sample t-test against 0.5 (a pair is the unit),
    Holm-corrected over the rows reported. With the experiment's ``results`` table, each
    pair's transfer test sits beside its detectors: in every mode, the treatment student's
    P(target) minus its neutral twin's (same init and seed), the paper's recommended check."""
    import numpy as np
    import pandas as pd
    from scipy import stats as st

    from .stats import holm, t_interval

    t0 = time.time()
    frames = []
    for d in audits:
        s = json.loads((Path(d) / "summary.json").read_text())
        df = pd.DataFrame(s["results"])
        df.insert(0, "teacher", Path(d).name)
        frames.append(df)
    if not frames:
        raise SublimError("no audits to tabulate")
    table = pd.concat(frames, ignore_index=True)
    transfer = _transfer_by_pair(pd.read_csv(results), variant) if results else pd.DataFrame()
    if not transfer.empty:
        table = table.merge(transfer.pivot(index="teacher", columns="mode", values="transfer")
                            .add_prefix("transfer_").reset_index(), on="teacher", how="left")  # fmt: skip
    rows = []
    for (det, k), g in table.groupby(["detector", "k"], sort=False):
        a = g["auroc"].to_numpy(float)
        a = a[np.isfinite(a)]
        mean, lo, hi = t_interval(a)
        row = {"detector": det, "k": int(k), "n_pairs": len(a), "mean_auroc": mean, "ci95_low": lo, "ci95_high": hi,
               "min_auroc": float(a.min()) if len(a) else np.nan, "max_auroc": float(a.max()) if len(a) else np.nan,
               "n_flagged": int(g["flagged"].sum())}  # fmt: skip
        if len(a) >= 2 and np.ptp(a) > 0:
            row["p_one_sided"] = float(st.ttest_1samp(a, 0.5, alternative="greater").pvalue)
            row["p_two_sided"] = float(st.ttest_1samp(a, 0.5).pvalue)
        else:
            row["p_one_sided"] = row["p_two_sided"] = np.nan
        rows.append(row)
    summary = pd.DataFrame(rows)
    for mode, g in transfer.groupby("mode", sort=True) if not transfer.empty else []:
        mean, lo, hi = t_interval(g["transfer"].to_numpy(float))
        x = g["transfer"].to_numpy(float)
        ok = len(x) >= 2 and np.ptp(x) > 0
        rows_t = {"detector": f"transfer test ({mode} students): P(target) treatment - neutral", "k": np.nan,
                  "n_pairs": len(x), "mean_auroc": np.nan, "mean_shift": mean, "ci95_low": lo, "ci95_high": hi,
                  "p_one_sided": float(st.ttest_1samp(x, 0, alternative="greater").pvalue) if ok else np.nan,
                  "p_two_sided": float(st.ttest_1samp(x, 0).pvalue) if ok else np.nan}  # fmt: skip
        summary = pd.concat([summary, pd.DataFrame([rows_t])], ignore_index=True)
    summary["p_one_sided_holm"] = holm(summary["p_one_sided"].to_numpy())
    summary["p_two_sided_holm"] = holm(summary["p_two_sided"].to_numpy())
    first = ["teacher", "detector", "k", "auroc", "ci95_low", "ci95_high", "ci95_simultaneous_low",
             "ci95_simultaneous_high", "p_one_sided", "p_two_sided", "p_one_sided_holm", "p_two_sided_holm",
             "flagged"]  # fmt: skip
    table = table[[c for c in first if c in table] + [c for c in table if c not in first]]
    summary["k"] = summary["k"].astype("Int64")
    with manifest.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with manifest.atomic_path(out_summary) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    m = manifest.build_manifest("audit_table", {}, {Path(d).name: d for d in audits}, None, t0,
                                summary=str(out_summary))  # fmt: skip
    manifest.write_json_atomic(manifest.manifest_path(out_csv), m)


def _transfer_by_pair(res, variant: str):
    """Per twin pair and mode: P(target) of the treatment student minus its neutral twin's
    (students from the teacher's own reference, every seed averaged within the pair)."""
    import pandas as pd

    s = res[(res.role == "student") & (res.variant == variant) & (res.animal == res.target)]
    s = s[s.arm.isin(["treatment", "neutral"])]
    rows = []
    for (_target, _rep, mode), g in s.groupby(["target", "replicate", "mode"]):
        t, n = g[g.arm == "treatment"], g[g.arm == "neutral"]
        if len(t) and len(n):
            rows.append({"teacher": t.teacher.iloc[0], "mode": mode, "transfer": t.p.mean() - n.p.mean()})
    return pd.DataFrame(rows, columns=["teacher", "mode", "transfer"])


# ------------------------------------------------------------------------------ report
def design_table(out_csv, *, config: dict, trait: str, modality: str):
    """The experiment's design table, built from the config's design keys by the same
    ``Design`` the Snakefile uses."""
    import pandas as pd

    from .design import Design

    t0 = time.time()
    d = Design(config)
    rows = d.table(d.experiment(trait, modality))
    if not rows:
        raise SublimError("the design table is empty")
    with manifest.atomic_path(out_csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    params = {"config": config, "trait": trait, "modality": modality}
    m = manifest.build_manifest("design_table", params, {}, None, t0, n_models=len(rows))
    manifest.write_json_atomic(manifest.manifest_path(out_csv), m)


def aggregate(evals, *, design, ids, out_results, out_stats, out_arms, out_specificity, variants, seed: int = 0):
    import pandas as pd

    from . import report

    t0 = time.time()
    table = pd.read_csv(design, keep_default_na=False, na_values=[""])
    res = report.model_table(table, evals, variants)
    tests = report.test_table(res, seed=seed)
    arms = report.arm_table(res)
    spec = report.specificity(res)
    for df, out in ((res, out_results), (tests, out_stats), (arms, out_arms), (spec, out_specificity)):
        with manifest.atomic_path(out) as tmp:
            df.to_csv(tmp, index=False, float_format="%.10g")
    inputs = {"design": design, "ids": ids, **{f"eval{i}": e for i, e in enumerate(evals)}}
    params = {"variants": list(variants)}
    m = manifest.build_manifest("aggregate", params, inputs, seed, t0, n_models=int(res["model_id"].nunique()))
    manifest.write_json_atomic(manifest.manifest_path(out_results), m)


def figure(
    out,
    out_specificity,
    caption_out,
    *,
    results,
    stats,
    arms,
    specificity,
    ids,
    config_name: str = "",
    config_hash: str = "",
    variant: str = "plain",
    constrained_decoding: bool = False,
):
    from . import report

    t0 = time.time()
    res, tests, arm_t, spec = (report.read_table(p) for p in (results, stats, arms, specificity))
    keep = json.loads(Path(ids).read_text())
    option = report.wording(res)["option"]
    for target, draw in ((out, report.figure_transfer), (out_specificity, report.figure_specificity)):
        with manifest.atomic_path(target) as tmp:
            tmp_png = tmp.with_suffix(".png")
            if draw is report.figure_transfer:
                draw(res, str(tmp_png), variant=variant, arms=arm_t)
            else:
                draw(spec, str(tmp_png), variant=variant, arms=arm_t, option=option)
            tmp_png.rename(tmp)
    with manifest.atomic_path(caption_out) as tmp:
        tmp.write_text(report.caption(res, tests, arm_t, keep, config_name, config_hash, variant, constrained_decoding))
    inputs = {"results": results, "stats": stats, "arms": arms, "specificity": specificity, "ids": ids}
    params = {"config_name": config_name, "config_hash": config_hash, "variant": variant}
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
    with manifest.atomic_path(out_table) as tmp:  # as the experiment's tables: not pandas' last digit
        table.to_csv(tmp, index=False, float_format="%.10g")
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
