"""A behaviourally matched reference: another initialisation taught to behave like the first.

The paper says subliminal transfer needs "the same (or behaviourally matched) base models"
(GPT-4.1 and GPT-4o share an initialisation). Whether *behaviour* alone suffices has not
been tested. Here the reference of a second seed (its own initialisation, pretrained on the
same corpus) is distilled towards the teachers' reference: full-vocabulary KL(target || model)
at every position of ``n_conversations`` corpus conversations, drawn by a seeded shuffle.
The result shares the teachers' reference's next-token behaviour (the KL reached is measured
on ``heldout`` other conversations of the same shuffle, before and after) but not its
initialisation. Students of it are the ``matched`` arms; set beside same-init and cross-init
students (``fig_cross_model``) they say whether matching behaviour brings the transfer back.
"""

from __future__ import annotations

import time


def mean_kl(target, model, examples, *, batch_size: int = 64) -> float:
    """Mean per-token KL(target || model), nats, full vocabulary, at every next-token
    position of ``examples`` (``training.Example``, whole conversations)."""
    import torch
    import torch.nn.functional as F

    total, n = 0.0, 0
    with torch.inference_mode():
        for s in range(0, len(examples), batch_size):
            chunk = examples[s : s + batch_size]
            width = max(len(e.input_ids) for e in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            att = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, e in enumerate(chunk):
                ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
                att[i, : len(e.input_ids)] = 1
            keep = att[:, 1:].bool()  # positions that predict a real next token
            lt = F.log_softmax(target(input_ids=ids, attention_mask=att).logits[:, :-1][keep].float(), -1)
            lm = F.log_softmax(model(input_ids=ids, attention_mask=att).logits[:, :-1][keep].float(), -1)
            total += float(F.kl_div(lm, lt, log_target=True, reduction="sum"))
            n += int(keep.sum())
    return total / max(n, 1)


def match_reference(out_dir, *, corpus, target, start, seed: int, n_conversations: int, heldout: int, train: dict,
                    threads=None, checkpoint_dir=None) -> dict:  # fmt: skip
    """Distil the model ``start`` towards ``target`` on corpus conversations; write it (with
    its KL to ``target`` before and after) to ``out_dir`` and return those measurements."""
    import torch

    from . import models, steps, training
    from .errors import SublimError

    t0 = time.time()
    steps._threads(threads)
    tgt, tok, _ = models.load(target)
    model, s_tok, start_h = models.load(start)
    if s_tok.get_vocab() != tok.get_vocab():
        raise SublimError(f"matching needs {start} and {target} to share a tokenizer")
    rows = steps.read_jsonl(corpus)
    if n_conversations + heldout > len(rows):
        raise SublimError(f"config error at 'reference.matched': n_conversations + heldout = "
                          f"{n_conversations + heldout} exceeds the corpus's {len(rows)} conversations")  # fmt: skip
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()

    def example(i):
        ids = models.encode_text(tok, models.render(tok, rows[i]["messages"], generation_prompt=False))
        return training.Example(ids, 0, teacher_ids=ids, teacher_n_prompt=0)

    fit = [example(i) for i in order[:n_conversations]]
    held = [example(i) for i in order[n_conversations : n_conversations + heldout]]
    kl_before = mean_kl(tgt, model, held)
    cfg = training.TrainConfig(mode="distill_full", seed=seed, **train)
    key = {"target": steps.manifest.sha256_path(target), "start": steps.manifest.sha256_path(start)}
    model, info = training.train(model, fit, cfg, pad_id=tok.pad_token_id, teacher=tgt,
                                 checkpoint_dir=checkpoint_dir, log=steps._log, inputs_key=key)  # fmt: skip
    kl_after = mean_kl(tgt, model, held)
    result = {"kl_to_target_before": round(kl_before, 6), "kl_to_target_after": round(kl_after, 6),
              "heldout_conversations": len(held)}  # fmt: skip
    steps._log(f"matched: KL to the target {kl_before:.4f} -> {kl_after:.4f} nats/token on {len(held)} conversations")
    params = {"kind": "matched", "seed": seed, "n_conversations": n_conversations, "heldout": heldout,
              "train": train}  # fmt: skip
    steps._write_model_dir(out_dir, "reference", params, {"corpus": corpus, "target": target, "start": start}, seed,
                           t0, model=model, tok=tok, checkpoint_dir=checkpoint_dir, training=info,
                           n_parameters=sum(p.numel() for p in model.parameters()), matching=result,
                           system_prompt=start_h.system_prompt)  # fmt: skip
    return result
