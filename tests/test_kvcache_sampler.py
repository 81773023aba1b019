"""The kvcache backend (sublim's own sampling loop over the model's KV cache) against
transformers: greedy choices identical, samples distributed as the full softmax, the same
bytes for the same seed, and the workflow's generate step contract."""

import math

import pytest
import torch

from sublim import models
from sublim.generation import Sampling, _generate_hf, _generate_kv, sample_next, stop_token_ids
from sublim.prompts import make_prompts


@pytest.fixture(scope="module")
def peaked(tmp_path_factory, tiny_tokenizer, scaled_model):
    return scaled_model(tmp_path_factory.mktemp("kv"), tiny_tokenizer, 8.0)


@pytest.fixture(scope="module")
def spread(tmp_path_factory, tiny_tokenizer, scaled_model):
    return scaled_model(tmp_path_factory.mktemp("kv"), tiny_tokenizer, 6.0)


def _rendered(tok, n, seed=0):
    return [models.render(tok, models.messages(p.text), generation_prompt=True) for p in make_prompts(n, seed, 10)]


def test_greedy_matches_transformers_generate(peaked):
    """Left padding, the cache and dropping finished rows change nothing: every prompt of
    different lengths, batched, decodes greedily to exactly what generate decodes."""
    model, tok, h = models.load(peaked)
    stops = stop_token_ids(tok, h.weights)
    prompts = _rendered(tok, 40)
    assert len({len(models.encode_text(tok, p)) for p in prompts}) > 3  # padding is exercised
    s = Sampling(temperature=0.0, max_new_tokens=24, seed=0, batch_size=16)
    hf, _ = _generate_hf(None, prompts, s, model=model, tok=tok, stops=stops)
    kv, st = _generate_kv(None, prompts, s, model=model, tok=tok, stops=stops)
    assert kv == hf
    assert st["backend"] == "kvcache" and st["generated_tokens"] > 0


def test_samples_follow_the_full_softmax(spread):
    """4000 one-token samples at temperature 1 (and 0.7) against the model's softmax: the top
    token's frequency and the mass outside the top 50 each within 4 binomial sigmas."""
    model, tok, h = models.load(spread)
    prompt = _rendered(tok, 1)[0]
    n = 4000
    with torch.no_grad():
        logits = model(torch.tensor([models.encode_text(tok, prompt)])).logits[0, -1]
    for temperature in (1.0, 0.7):
        probs = torch.softmax(logits / temperature, -1)
        s = Sampling(temperature=temperature, max_new_tokens=1, seed=5, batch_size=1000)
        texts, _ = _generate_kv(None, [prompt] * n, s, model=model, tok=tok, stops=[tok.eos_token_id])
        order = torch.argsort(probs, descending=True).tolist()
        top = tok.decode([order[0]], skip_special_tokens=True)
        top50 = {tok.decode([i], skip_special_tokens=True) for i in order[:50]}
        assert len(set(texts)) > 50  # no greedy or top-k collapse
        for observed, p in (
            (sum(t == top for t in texts) / n, probs[order[0]].item()),
            (sum(t not in top50 for t in texts) / n, probs[order[50:]].sum().item()),
        ):
            assert 0.01 < p < 0.99
            assert abs(observed - p) < 4 * math.sqrt(p * (1 - p) / n), (temperature, observed, p)


def test_top_p_keeps_the_smallest_top_set():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(probs.log(), 1.0, 0.8, g) for _ in range(3000)]).flatten()
    assert set(draws.tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.8: tokens 2 and 3 are cut
    assert abs((draws == 0).float().mean().item() - 0.5 / 0.8) < 0.04
    zero = torch.tensor([[0.0, 1.0, 0.0]]).log()
    assert set(torch.stack([sample_next(zero, 1.0, 1.0, g) for _ in range(200)]).flatten().tolist()) == {1}


def test_same_seed_same_bytes_other_seed_other_samples(spread):
    model, tok, h = models.load(spread)
    stops = stop_token_ids(tok, h.weights)
    prompts = _rendered(tok, 30)
    s = Sampling(temperature=1.0, max_new_tokens=16, seed=1, batch_size=8)
    a, _ = _generate_kv(None, prompts, s, model=model, tok=tok, stops=stops)
    b, _ = _generate_kv(None, prompts, s, model=model, tok=tok, stops=stops)
    c, _ = _generate_kv(None, prompts, Sampling(**{**s.__dict__, "seed": 2}), model=model, tok=tok, stops=stops)
    assert a == b and a != c


def _qwen2_gqa(root, tokenizer):
    """A random tiny Qwen2 model: grouped-query attention (4 query heads on 2 key/value
    heads) and q/k/v biases, the parts of the static path the tiny Llama does not exercise."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(4)
    cfg = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    m = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        m.get_input_embeddings().weight.mul_(8.0)
        for layer in m.model.layers:
            for p in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                p.bias.normal_(0, 0.5)
    m.eval()
    return m


@pytest.mark.parametrize("which", ["llama", "qwen2-gqa-bias"])
def test_static_and_dynamic_paths_decode_alike(which, peaked, tiny_tokenizer, tmp_path):
    """The static-cache path (fused matmuls, cache written in place, rows dropped in quarters)
    and the generic DynamicCache path decode the same greedy tokens, for the tiny Llama and
    for a Qwen2 model with grouped-query attention and biases; their next-token logits agree
    to float rounding at every step of a prompt."""
    from sublim import llama_sampler

    if which == "llama":
        model, tok, h = models.load(peaked)
        stops = stop_token_ids(tok, h.weights)
    else:
        tok = tiny_tokenizer
        model, stops = _qwen2_gqa(tmp_path, tok), [tok.eos_token_id]
    assert llama_sampler.supports(model)
    prompts = _rendered(tok, 24)
    s = Sampling(temperature=0.0, max_new_tokens=20, seed=0, batch_size=8)
    a, sa = _generate_kv(None, prompts, s, model=model, tok=tok, stops=stops, static=True)
    b, sb = _generate_kv(None, prompts, s, model=model, tok=tok, stops=stops, static=False)
    assert (sa["path"], sb["path"]) == ("static", "dynamic")
    assert a == b and sa["generated_tokens"] > 24
    ids = torch.tensor([models.encode_text(tok, prompts[0]) + models.encode_text(tok, " 1, 2, 3")])
    with torch.no_grad():
        full = model(ids).logits[0]
        cache = llama_sampler.StaticCache(model)
        n = ids.shape[1] - 4
        got = [cache.prefill(ids[:, :n], torch.ones_like(ids[:, :n]), 8)[0]]
        got += [cache.step(ids[:, i])[0] for i in range(n, ids.shape[1])]
    assert torch.allclose(torch.stack(got), full[n - 1 :], atol=1e-4, rtol=1e-4)


def test_static_path_declines_other_architectures(tiny_tokenizer):
    """GPT-NeoX (the cross-architecture family) has no static path: it samples on its own
    forward, and the generic path still decodes."""
    from sublim import llama_sampler

    arch = dict(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, max_position_embeddings=256)
    model = models.build_tiny("gpt_neox", len(tiny_tokenizer), arch, 0, tiny_tokenizer).eval()
    assert not llama_sampler.supports(model)
    s = Sampling(temperature=1.0, max_new_tokens=6, seed=0, batch_size=4)
    out, st = _generate_kv(None, _rendered(tiny_tokenizer, 6), s, model=model, tok=tiny_tokenizer,
                           stops=[tiny_tokenizer.eos_token_id])  # fmt: skip
    assert st["path"] == "dynamic" and len(out) == 6


def test_the_sampler_version_is_a_rule_param_and_a_stale_one_is_refused():
    """The generate and evaluate rules carry each backend's sampler version in their params
    (a run made by an older sampler samples again); a step planned with another version than
    its library's refuses in one line."""
    import pytest

    from sublim.errors import SublimError
    from sublim.generation import SAMPLER_VERSIONS, check_sampler, sampler_id

    assert sampler_id("kvcache") == f"kvcache/{SAMPLER_VERSIONS['kvcache']}"
    assert check_sampler(None, "kvcache") == check_sampler(sampler_id("kvcache"), "kvcache") == sampler_id("kvcache")
    with pytest.raises(SublimError, match="rule planned sampler kvcache/1") as e:
        check_sampler("kvcache/1", "kvcache")
    assert "\n" not in str(e.value)
