"""A static-cache forward pass for Llama-family decoders: the ``kvcache`` sampler's fast path.

The ``kvcache`` backend samples from a ``transformers`` model with one prefill and one
forward per new token. Through the model's own ``forward`` every step pays for what a tiny
model cannot hide: the growing ``DynamicCache`` (a concatenation per layer per step), a
fresh 4-D attention mask, separate q/k/v and gate/up matmuls. ``StaticCache`` here runs
the same arithmetic on the model's own weights, fused once per call:

* q, k and v in one matmul, gate and up in one matmul;
* keys and values written in place into a cache allocated once per batch;
* a boolean key mask kept beside the cache (left padding), no mask rebuilt per step;
* finished rows leave the batch only when a quarter of it has finished, not at every step.

It is used for ``llama`` and ``qwen2`` models (the tiny reference, SmolLM2, Qwen2.5): their
decoder layer is RMSNorm, rotary attention (grouped-query allowed, q/k/v bias allowed), RMSNorm,
a SiLU-gated MLP. Anything else (GPT-NeoX, rope scaling types other than the model's own
rotary module handles, sliding windows, q/k norms) uses the generic path. The rotary
cos/sin come from the model's own rotary module, so every rope type it implements is honoured.
Same weights and inputs, the same next-token distribution as ``model.forward`` up to float
rounding (tests compare greedy decodes token for token and sampled frequencies with the softmax).
"""

from __future__ import annotations

SUPPORTED = ("llama", "qwen2")


def supports(model) -> bool:
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED:
        return False
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "use_sliding_window", False):
        return False
    if getattr(cfg, "mlp_bias", False):
        return False
    try:
        layer = model.model.layers[0]
        attn, mlp = layer.self_attn, layer.mlp
        parts = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
        model.model.rotary_emb, model.model.norm, model.lm_head  # noqa: B018
    except AttributeError:
        return False
    if hasattr(attn, "q_norm") or hasattr(attn, "k_norm"):
        return False
    return all(p.__class__.__name__ == "Linear" for p in parts)


class _Layer:
    def __init__(self, layer):
        import torch

        a, m = layer.self_attn, layer.mlp
        self.qkv_w = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach()
        bias = [a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]
        self.qkv_b = torch.cat(bias).detach() if all(b is not None for b in bias) else None
        self.o_w = a.o_proj.weight.detach()
        self.o_b = a.o_proj.bias.detach() if a.o_proj.bias is not None else None
        self.gu_w = torch.cat([m.gate_proj.weight, m.up_proj.weight]).detach()
        self.down_w = m.down_proj.weight.detach()
        self.ln1 = (layer.input_layernorm.weight.detach(), layer.input_layernorm.variance_epsilon)
        self.ln2 = (layer.post_attention_layernorm.weight.detach(), layer.post_attention_layernorm.variance_epsilon)
        self.scaling = a.scaling


def fuse(model) -> list:
    """The model's decoder layers with q/k/v and gate/up weights concatenated (a copy)."""
    return [_Layer(layer) for layer in model.model.layers]


def _rms(x, ln):
    import torch

    w, eps = ln
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return w * xf.to(x.dtype)


def _rotate(x, cos, sin):
    import torch

    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin


class StaticCache:
    """One batch's decoding state over a supported model: ``prefill`` then ``step`` per token."""

    def __init__(self, model, layers=None):
        """``layers``: ``fuse(model)``, made once per model and shared by its batches."""
        cfg = model.config
        self.model = model
        self.layers = layers if layers is not None else fuse(model)
        self.embed = model.model.embed_tokens.weight.detach()
        self.norm = (model.model.norm.weight.detach(), model.model.norm.variance_epsilon)
        self.head_w = model.lm_head.weight.detach()
        self.head_b = model.lm_head.bias.detach() if getattr(model.lm_head, "bias", None) is not None else None
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.k = self.v = self.valid = None
        self.length = 0

    def _rope(self, positions):
        """cos and sin for ``positions`` [B, T], shaped [B, 1, T, D], from the table made by
        the model's own rotary module in ``prefill``."""
        return self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)

    def _forward(self, x, positions, mask, start: int):
        """Run the decoder on hidden states ``x`` [B, T, d] at cache columns start..start+T."""
        import torch.nn.functional as F

        b, t, _ = x.shape
        h, hkv, d = self.n_heads, self.n_kv, self.head_dim
        cos, sin = self._rope(positions)
        end = start + t
        for i, L in enumerate(self.layers):
            qkv = F.linear(_rms(x, L.ln1), L.qkv_w, L.qkv_b)
            q = qkv[..., : h * d].view(b, t, h, d).transpose(1, 2)
            k = qkv[..., h * d : (h + hkv) * d].view(b, t, hkv, d).transpose(1, 2)
            v = qkv[..., (h + hkv) * d :].view(b, t, hkv, d).transpose(1, 2)
            self.k[i][:, :, start:end] = _rotate(k, cos, sin)
            self.v[i][:, :, start:end] = v
            att = F.scaled_dot_product_attention(
                _rotate(q, cos, sin), self.k[i][:, :, :end], self.v[i][:, :, :end],
                attn_mask=mask, scale=L.scaling, enable_gqa=hkv != h,
            )  # fmt: skip
            x = x + F.linear(att.transpose(1, 2).reshape(b, t, h * d), L.o_w, L.o_b)
            gate, up = F.linear(_rms(x, L.ln2), L.gu_w).chunk(2, -1)
            x = x + F.linear(F.silu(gate) * up, L.down_w)
        return x

    def _logits(self, x):
        import torch.nn.functional as F

        return F.linear(_rms(x, self.norm), self.head_w, self.head_b)

    def prefill(self, ids, mask, max_new_tokens: int):
        """Left-padded prompts ``ids`` [B, T] with ``mask`` (1 on real tokens): the cache is
        allocated for T + max_new_tokens columns; returns the next-token logits [B, V]."""
        import torch

        b, t = ids.shape
        dev, dt = self.embed.device, self.embed.dtype
        cols = t + max_new_tokens
        self.k = [torch.zeros(b, self.n_kv, cols, self.head_dim, device=dev, dtype=dt) for _ in self.layers]
        self.v = [torch.zeros_like(k) for k in self.k]
        self.valid = torch.zeros(b, cols, dtype=torch.bool, device=dev)
        self.valid[:, :t] = mask.bool()
        # the same key mask as an additive bias for the decode steps (sdpa converts a boolean
        # mask to one at every call)
        self.bias = torch.zeros(b, cols, device=dev, dtype=dt).masked_fill_(~self.valid, float("-inf"))
        self.positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cos, sin = self.model.model.rotary_emb(self.embed[:1], torch.arange(cols, device=dev)[None])
        self.cos, self.sin = cos[0].to(dt), sin[0].to(dt)
        causal = torch.ones(t, t, dtype=torch.bool, device=dev).tril()
        # a padding query attends to itself alone (no row without a key: no NaN in the cache)
        attn = (causal & self.valid[:, None, :t]) | torch.eye(t, dtype=torch.bool, device=dev)
        x = self._forward(self.embed[ids], self.positions, attn[:, None], 0)
        self.length = t
        self.last = self.positions[:, -1]
        return self._logits(x[:, -1])

    def step(self, tokens):
        """Append one token per row; returns the next-token logits [B, V]."""
        self.last = self.last + 1
        self.valid[:, self.length] = True
        self.bias[:, self.length] = 0.0
        mask = self.bias[:, None, None, : self.length + 1]
        x = self._forward(self.embed[tokens][:, None], self.last[:, None], mask, self.length)
        self.length += 1
        return self._logits(x[:, 0])

    def select(self, keep) -> None:
        """Keep only the rows ``keep`` (indices into the current batch)."""
        self.k = [k.index_select(0, keep) for k in self.k]
        self.v = [v.index_select(0, keep) for v in self.v]
        self.valid, self.bias, self.last = self.valid[keep], self.bias[keep], self.last[keep]
