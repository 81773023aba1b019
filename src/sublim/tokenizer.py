"""A word-level tokenizer for the tiny reference model, built with ``tokenizers``.

Pre-tokens are GPT-2 style: a word, a 1-3 digit number or one punctuation mark, each with
an optional leading space. Every number 0-999 (with and without the space) is one token,
which keeps number sequences short and generation fast. Decoding concatenates tokens, so
encode/decode round-trips exactly on in-vocabulary text. The chat template is stored in the
saved tokenizer, so ``apply_chat_template`` works on the reloaded model like on any
instruct model.
"""

from __future__ import annotations

from collections.abc import Iterable

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
PRETOKEN_REGEX = r" ?\d{1,3}| ?[a-z']+| ?[^\sa-z\d]|\s+"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer(texts: Iterable[str]):
    """Train a word-level vocabulary on ``texts`` plus all numbers; return a HF fast tokenizer."""
    import collections
    import re

    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    pattern = re.compile(PRETOKEN_REGEX)
    counts = collections.Counter()
    for t in texts:
        counts.update(pattern.findall(normalizer.normalize_str(t)))
    numbers = [str(i) for i in range(1000)]
    numbers += [" " + s for s in numbers]
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + numbers)}
    # deterministic order: frequency, then the token itself
    for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        vocab.setdefault(t, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(PRETOKEN_REGEX), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<|end|>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def corpus_texts(records: Iterable[dict]) -> Iterable[str]:
    for rec in records:
        for m in rec["messages"]:
            yield m["content"]
