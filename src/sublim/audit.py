"""``sublim audit``: does a data set carry a hidden signal that its control does not?

Two JSONL data sets of ``{"id", "prompt", "response"}`` rows (the ``filter`` step's output):
DATA, written by a suspected teacher, and CONTROL, written by a teacher made the same way
without the trait, answering the same prompts through the same filter. Each detector gives
every response a score (higher: more like DATA); a bag of K responses of one data set is
scored by the mean of its members' scores. Per detector and K the audit reports a held-out
AUROC with a percentile-bootstrap 95% interval (each class resampled on its own), the same
interval widened for every (detector, K) reported (Bonferroni), and one- and two-sided
permutation p-values (labels swapped within each prompt's pair, bags rebuilt), Holm-corrected
over everything reported.

Detectors:

* ``data``      -- surface statistics only: hashed word and character n-grams (tf-idf) plus
                   lengths and the numbers' digit, size and count distributions, into a
                   logistic regression whose penalty is chosen inside the training half;
* ``reference`` -- the clean reference model only: per-response summaries of the per-token
                   log-likelihoods and next-token entropies of the response given its prompt,
                   into a logistic regression; beside it, a Mann-Whitney two-sample test of the
                   mean per-token log-likelihood;
* ``teacher``   -- the suspected teacher as well: each response's log-likelihood ratio,
                   teacher (with its own system prompt) against reference. No fitting;
* ``twin``      -- both teachers (the suspected one and the control's): the log-likelihood
                   ratio teacher against control teacher, the Neyman-Pearson test of "which of
                   the two wrote this" before filtering; an upper reference for the others, since
                   a practitioner rarely holds the control teacher.

With the control teacher, the audit also counts divergence tokens (``divergence_tokens``).

Every detector is judged on the same held-out half of the prompts (``holdout``): a prompt's two
responses are never split between fitting and judging, and the fitted detectors are fixed before
they see a held-out response, so under the null (both data sets from one distribution) a
held-out score is independent of its label, the AUROC is centred on 0.5, the bootstrap interval
is a valid interval for the fitted detector's AUROC, and the label swaps give an exact test.
(Pooling cross-validated scores would use all the data, but each fold's detector then depends
on the other folds' labels: measured here on a null pair, the pooled AUROC sat below 0.5 and its
bootstrap interval was too narrow to cover it.) Confounds are controlled by
refusing data sets whose prompts or filter settings differ (``allow_mismatch`` overrides,
and the summary says so).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from pathlib import Path

import numpy as np

from .errors import SublimError

DETECTORS = ("data", "reference", "teacher", "twin")
NUMBER = re.compile(r"\d+")
TOKENS = re.compile(r"\d+|[A-Za-z_]+|[^\sA-Za-z_\d]")


def _release() -> None:
    """Hand freed memory back to the system between stages: CPython and numpy free into
    glibc's heap, which keeps it, so without this the stages' peaks add up (the data
    detector's tf-idf, then the model readouts)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


@dataclasses.dataclass
class AuditConfig:
    ks: tuple[int, ...] = (1, 4, 16)
    holdout: float = 0.5  # share of the prompts held out for judging
    n_permutations: int = 999
    n_bootstrap: int = 2000
    alpha: float = 0.05
    seed: int = 0
    min_bags: int = 5  # per class; fewer bags than this: "not testable"
    batch_size: int = 64  # at most this many responses per model forward in the readouts
    bootstrap_batch: int = 50  # resamples at a time: bounds memory at 100k responses
    max_fit: int = 20000  # responses per data set that fit a detector (a seeded sample beyond it)


# ----------------------------------------------------------------------------- reading
def read_rows(path, strings: dict | None = None) -> list[dict]:
    """Stream a JSONL data set; one line naming the file and line for anything malformed.
    ``strings``: prompt texts already held (another data set's), shared instead of copied."""
    p = Path(path)
    if not p.exists():
        raise SublimError(f"data set not found: {p}")
    rows, seen = [], {}
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise SublimError(f"{p}: line {n} is not JSON ({e.msg})") from None
            if not isinstance(r, dict):
                raise SublimError(f"{p}: line {n} is not a JSON object")
            for key in ("id", "prompt", "response"):
                if key not in r:
                    raise SublimError(f"{p}: line {n} has no {key!r} field")
            if not isinstance(r["prompt"], str) or not isinstance(r["response"], str):
                raise SublimError(f"{p}: line {n}: 'prompt' and 'response' must be strings")
            if r["id"] in seen:
                raise SublimError(f"{p}: line {n} repeats prompt id {r['id']!r} (first on line {seen[r['id']]})")
            seen[r["id"]] = n
            prompt = r["prompt"] if strings is None else strings.setdefault(r["prompt"], r["prompt"])
            rows.append({"id": r["id"], "prompt": prompt, "response": r["response"]})
    if not rows:
        raise SublimError(f"data set is empty: {p}")
    return rows


def _filter_params(path) -> dict | None:
    m = Path(str(path) + ".manifest.json")
    if not m.exists():
        return None
    return json.loads(m.read_text()).get("params")


def pair(data_path, control_path, *, allow_mismatch: bool = False) -> dict:
    """The two data sets, checked for a like-for-like comparison.

    Both must answer the same prompts (the ids they share carry the same prompt text, and
    they share at least one id) and, where their ``filter`` manifests are present, come from
    the same filter settings; otherwise one line says what differs, unless
    ``allow_mismatch``. Rows of ids only one side answered are kept (each is its own group)."""
    strings: dict = {}  # both sets answer the same prompts: hold each text once
    a, b = read_rows(data_path, strings), read_rows(control_path, strings)
    del strings
    pa, pb = {r["id"]: r["prompt"] for r in a}, {r["id"]: r["prompt"] for r in b}
    common = [i for i in pa if i in pb]
    problems = []
    if not common:
        problems.append(f"{data_path} and {control_path} share no prompt id: they answer different prompts")
    diff = [i for i in common if pa[i] != pb[i]]
    if diff:
        problems.append(f"prompt id {diff[0]!r} has different prompts in {data_path} and {control_path} "
                        f"({len(diff)} of {len(common)} shared ids differ)")  # fmt: skip
    fa, fb = _filter_params(data_path), _filter_params(control_path)
    if fa is not None and fb is not None and fa != fb:
        keys = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
        problems.append(f"{data_path} and {control_path} were filtered with different settings ({', '.join(keys)})")
    if problems and not allow_mismatch:
        raise SublimError(problems[0] + " (pass --allow-mismatch to compare them anyway)")
    return {
        "data": a,
        "control": b,
        "n_common_ids": len(common),
        "filters": {"data": fa, "control": fb, "same": None if fa is None or fb is None else fa == fb},
        "mismatch_allowed": bool(problems),
        "problems": problems,
    }


# ----------------------------------------------------------------------------- features
def surface_features(responses: list[str]) -> np.ndarray:
    """Dense surface statistics of each response: lengths, token kinds, and the numbers'
    count, sizes, digits (first, last, all) and distinct share."""
    out = np.zeros((len(responses), 38), dtype=np.float64)
    for i, r in enumerate(responses):
        nums = NUMBER.findall(r)
        toks = TOKENS.findall(r)
        vals = np.array([int(x[:6]) for x in nums], dtype=np.float64)
        f = out[i]
        f[0] = len(r)
        f[1] = len(toks)
        f[2] = len(nums)
        f[3] = sum(not t.isdigit() for t in toks)
        if len(vals):
            lv = np.log1p(vals)
            f[4], f[5], f[6], f[7] = lv.mean(), lv.std(), lv.min(), lv.max()
            f[8] = len(set(nums)) / len(nums)
            for x in nums:
                f[9 + int(x[0])] += 1 / len(nums)
                f[19 + int(x[-1])] += 1 / len(nums)
            f[29] = np.mean([len(x) for x in nums])
            f[30] = float(np.mean(np.diff(vals) > 0)) if len(vals) > 1 else 0.5
        digits = [c for c in r if c.isdigit()]
        f[31] = len(digits) / max(1, len(r))
        f[32] = sum(c.isalpha() for c in r) / max(1, len(r))
        f[33] = sum(c.isspace() for c in r) / max(1, len(r))
        f[34] = r.count(",") / max(1, len(toks))
        f[35] = sum(c in "()[]" for c in r)
        f[36] = r.count("\n")
        f[37] = len(set(toks)) / max(1, len(toks))
    return out


def _logistic(seed: int):
    """L2 logistic regression, its penalty chosen by a 3-fold search inside the training data
    (the held-out fold never informs it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    lr = LogisticRegression(solver="liblinear", max_iter=1000, random_state=seed)
    return GridSearchCV(lr, {"C": [0.1, 1.0, 10.0]}, cv=3, scoring="roc_auc")


def _data_model(seed: int):
    """tf-idf of word (1-3) and character (1-4) n-grams seen at least twice in the training
    folds, beside the scaled surface statistics, into a logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    words = TfidfVectorizer(token_pattern=TOKENS.pattern, lowercase=False, ngram_range=(1, 3), min_df=2,
                            sublinear_tf=True, dtype=np.float32)  # fmt: skip
    chars = TfidfVectorizer(analyzer="char", ngram_range=(1, 4), min_df=2, sublinear_tf=True, dtype=np.float32)
    dense = make_pipeline(FunctionTransformer(_surface_column), StandardScaler())
    feats = ColumnTransformer([("words", words, 0), ("chars", chars, 0), ("surface", dense, [0])])
    return Pipeline([("features", feats), ("clf", _logistic(seed))])


def _surface_column(x):
    return surface_features([str(v) for v in np.asarray(x).ravel()])


def _dense_model(seed: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), _logistic(seed))


class Ragged:
    """Per-row arrays of different lengths kept as one flat array and offsets (no object per
    row: 140k responses cost a few MB, not a Python object each). ``r[i]`` is row i's array,
    or None for a row that was not read."""

    def __init__(self, flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
        self.flat, self.starts, self.lengths = flat, starts, lengths  # lengths -1: row absent

    @classmethod
    def from_list(cls, arrays: list, dtype) -> Ragged:
        lengths = np.array([-1 if a is None else len(a) for a in arrays], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0))[:-1]]).astype(np.int64)
        parts = [np.asarray(a, dtype=dtype) for a in arrays if a is not None]
        return cls(np.concatenate(parts) if parts else np.zeros(0, dtype), starts, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i):
        n = self.lengths[i]
        return None if n < 0 else self.flat[self.starts[i] : self.starts[i] + n]

    def present(self) -> np.ndarray:
        return self.lengths >= 0

    def spread(self, idx, n: int) -> Ragged:
        """These rows laid out as rows ``idx`` of ``n`` (absent elsewhere); shares the flat array."""
        starts, lengths = np.zeros(n, np.int64), np.full(n, -1, np.int64)
        starts[idx], lengths[idx] = self.starts, self.lengths
        return Ragged(self.flat, starts, lengths)


@dataclasses.dataclass
class TokenScores:
    """What the detectors keep of a model's reading of every response (compact: 100k
    responses fit in tens of MB): the likelihood features, the summed log-likelihood, and per
    position whether the model's greedy choice is the written token (``match``) and the
    written token ids (``tokens``); these two are None when not asked for."""

    features: np.ndarray  # (n, 11): see likelihood_features
    lp_sum: np.ndarray  # (n,)
    match: Ragged | None  # per response, a bool array over its completion positions
    tokens: Ragged | None  # per response, the completion's token ids (int32)

    def __post_init__(self):  # lists of arrays (tests, small callers) become Ragged
        if isinstance(self.match, list):
            self.match = Ragged.from_list(self.match, bool)
        if isinstance(self.tokens, list):
            self.tokens = Ragged.from_list(self.tokens, np.int32)


def likelihood_features(lp: np.ndarray, ent: np.ndarray) -> np.ndarray:
    """One response: mean, sum, spread and quantiles of the per-token log-likelihood, the
    token count, the mean entropy and the mean and largest surprise beyond the entropy."""
    q = np.quantile(lp, [0.1, 0.5, 0.9])
    return np.array([lp.mean(), lp.sum(), lp.std(), lp.min(), q[0], q[1], q[2], len(lp), ent.mean(),
                     (-lp - ent).mean(), (-lp - ent).max()])  # fmt: skip


def token_scores(
    model_dir,
    rows: list[dict],
    *,
    batch_size: int = 64,
    max_tokens: int = 4096,
    threads=None,
    stats=None,
    keep_tokens: bool = True,
) -> TokenScores:
    """Read every response (its end-of-turn tokens included) given its prompt, rendered with
    the model's chat template and system prompt: per-token log-likelihoods and next-token
    entropies, reduced to ``TokenScores`` (``keep_tokens=False``: without the per-position
    greedy matches and token ids). Responses are read in length order, at most ``batch_size``
    at a time and at most ``max_tokens`` padded positions a batch, so a batch of long
    chain-of-thought answers costs the memory of one of short number answers. The output
    head runs only at completion positions, in chunks sized to the vocabulary, so a
    50k-token vocabulary does not hold a batch's full logits."""
    import torch

    from . import models

    if threads:
        torch.set_num_threads(int(threads))
    model, tok, h = models.load(model_dir)
    stats = stats if stats is not None else {}
    stats["params"] = sum(p.numel() for p in model.parameters())
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    # positions per head call: 16 MB of float32 logits (the log-softmax, its exp and their
    # product make three more copies; 64 MB chunks put the tiny model's audit past 1 GB)
    chunk = max(256, 2**22 // head.weight.shape[0])
    n = len(rows)
    feats, lp_sum = np.zeros((n, 11)), np.zeros(n)
    lengths = np.zeros(n, np.int64)
    flat_match: list = []  # per batch, in sorted order: laid out by row at the end
    flat_tokens: list = []
    n_tokens = 0
    order = sorted(range(n), key=lambda i: len(rows[i]["prompt"]) + len(rows[i]["response"]))
    pad = tok.pad_token_id

    def encode(i):
        return models.encode_completion(tok, rows[i]["prompt"], rows[i]["response"], h.system_prompt)

    def batches():
        at, pending = 0, None
        while at < n:
            idx, enc, width = [], [], 0
            while at < n and len(idx) < batch_size:
                e = pending or encode(order[at])
                pending = None
                w = max(width, len(e[0]) + len(e[1]))
                if idx and w * (len(idx) + 1) > max_tokens:
                    pending = e  # starts the next batch
                    break
                idx.append(order[at])
                enc.append(e)
                width, at = w, at + 1
            yield idx, enc

    with torch.inference_mode():
        for idx, enc in batches():
            seqs = [p + c for p, c in enc]
            width = max(map(len, seqs))
            inp = torch.full((len(idx), width), pad, dtype=torch.long)
            att = torch.zeros((len(idx), width), dtype=torch.long)
            for j, x in enumerate(seqs):
                inp[j, : len(x)] = torch.tensor(x)
                att[j, : len(x)] = 1
            hidden = decoder(input_ids=inp, attention_mask=att, use_cache=False).last_hidden_state  # no cache to fill
            r_idx = torch.cat([torch.full((len(c),), j) for j, (_, c) in enumerate(enc)])
            c_idx = torch.cat([torch.arange(len(p) - 1, len(p) + len(c) - 1) for p, c in enc])
            target = torch.tensor([t for _, c in enc for t in c])
            lp, ent, greedy = [], [], []
            for a in range(0, len(target), chunk):
                logp = torch.log_softmax(head(hidden[r_idx[a : a + chunk], c_idx[a : a + chunk]]).float(), -1)
                lp.append(logp.gather(1, target[a : a + chunk, None])[:, 0])
                ent.append(-(logp.exp() * logp).sum(-1))
                greedy.append(logp.argmax(-1))
            lp, ent, greedy = (torch.cat(x).numpy() for x in (lp, ent, greedy))
            lp, ent = lp.astype(np.float64), ent.astype(np.float64)
            at = 0
            for j, i in enumerate(idx):
                m = len(enc[j][1])
                sl = slice(at, at + m)
                feats[i] = likelihood_features(lp[sl], ent[sl])
                lp_sum[i] = lp[sl].sum()
                lengths[i] = m
                n_tokens += len(enc[j][0]) + m
                at += m
            if keep_tokens:
                target = target.numpy().astype(np.int32)
                flat_tokens.append(target)
                flat_match.append(greedy == target)
    stats["tokens"] = n_tokens
    if not keep_tokens:
        return TokenScores(feats, lp_sum, None, None)
    # rows were read in length order: their arrays lie in that order in the flat arrays
    starts = np.zeros(n, np.int64)
    starts[order] = np.concatenate([[0], np.cumsum(lengths[order])[:-1]]) if n else []
    cat = lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt)  # noqa: E731
    return TokenScores(feats, lp_sum, Ragged(cat(flat_match, bool), starts, lengths),
                       Ragged(cat(flat_tokens, np.int32), starts, lengths))  # fmt: skip


def scores_on(model_dir, rows: list[dict], idx, **kw) -> TokenScores:
    """``token_scores`` of the rows ``idx`` only, laid out over all rows (NaN and None
    elsewhere): the likelihood-ratio detectors and divergence tokens need the held-out rows
    only, the reference detector the fitting and held-out rows."""
    idx = np.asarray(idx)
    ts = token_scores(model_dir, [rows[i] for i in idx], **kw)
    n = len(rows)
    feats, lp = np.full((n, ts.features.shape[1]), np.nan), np.full(n, np.nan)
    feats[idx], lp[idx] = ts.features, ts.lp_sum
    if ts.match is None:
        return TokenScores(feats, lp, None, None)
    return TokenScores(feats, lp, ts.match.spread(idx, n), ts.tokens.spread(idx, n))


def divergence_tokens(teacher: TokenScores, counterfactual: TokenScores, labels, decode, top: int = 20) -> dict:
    """Schrodi et al. (2025): the positions where the trait teacher's greedy choice is the
    written token while the counterfactual (neutral) teacher's greedy choice is not. Per data
    set: how many such positions, their share of all positions, their share of responses with
    at least one, and the most frequent tokens there."""
    import collections

    labels = np.asarray(labels)
    present = teacher.match.present()
    out = {}
    for name, c in (("data", 1), ("control", 0)):
        counts: collections.Counter = collections.Counter()
        n_pos = n_div = n_resp = misaligned = 0
        for i in np.flatnonzero((labels == c) & present):
            if not np.array_equal(teacher.tokens[i], counterfactual.tokens[i]):
                misaligned += 1  # the two renderings tokenised the response differently: not comparable
                continue
            div = teacher.match[i] & ~counterfactual.match[i]
            n_pos += len(div)
            n_div += int(div.sum())
            n_resp += bool(div.any())
            counts.update(int(t) for t in teacher.tokens[i][div])
        out[name] = {
            "positions": n_pos,
            "divergence_positions": n_div,
            "share_of_positions": n_div / max(1, n_pos),
            "share_of_responses": n_resp / max(1, int(((labels == c) & present).sum())),
            "top_tokens": [{"token": decode(t), "id": t, "count": k} for t, k in counts.most_common(top)],
            "responses_skipped_misaligned": misaligned,
        }
    return out


# ----------------------------------------------------------------------------- statistics
def auroc(pos, neg, axis: int = -1):
    """AUROC as the Mann-Whitney U over n_pos * n_neg (ties count one half); vectorised."""
    from scipy.stats import mannwhitneyu

    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    u = mannwhitneyu(pos, neg, axis=axis, alternative="two-sided").statistic
    return u / (pos.shape[axis] * neg.shape[axis])


def bag_scores(scores, labels, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint bags of ``k`` same-class responses drawn at random (leftovers dropped), each
    scored by its members' mean: ``(bag scores, bag labels)``."""
    out_s, out_l = [], []
    for c in (1, 0):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = len(idx) // k * k
        out_s.append(scores[idx[:n]].reshape(-1, k).mean(1))
        out_l.append(np.full(n // k, c))
    return np.concatenate(out_s), np.concatenate(out_l)


def _flip(labels: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Swap the two labels of each prompt's pair with probability 1/2; rows of an unpaired
    prompt (its own group) are permuted among themselves."""
    flip_group = rng.random(groups.max() + 1) < 0.5
    out = labels.copy()
    paired = np.bincount(groups)[groups] == 2
    out[paired & flip_group[groups]] = 1 - labels[paired & flip_group[groups]]
    single = np.flatnonzero(~paired)
    if len(single):
        out[single] = labels[rng.permutation(single)]
    return out


# elements per vectorised statistics batch (permutations x rows, resamples x bags): 8 MB of
# float64 a copy, so 100k held-out responses do not cost hundreds of MB; smaller inputs keep
# their batch of 64 permutations / bootstrap_batch resamples, and so their bytes
_STAT_ELEMENTS = 2**20


def permutation_null(scores, labels, groups, k: int, n_perm: int, rng, chunk: int = 64) -> np.ndarray:
    """The AUROC at bag size ``k`` under ``n_perm`` label swaps within prompt pairs, bags
    rebuilt each time; vectorised over chunks of permutations (each swap keeps both classes'
    sizes, so every permutation's bags have the same shape), at most ``_STAT_ELEMENTS``
    scores a chunk."""
    from scipy.stats import mannwhitneyu

    chunk = max(1, min(chunk, _STAT_ELEMENTS // max(1, len(labels))))

    n1 = int((labels == 1).sum())
    n0 = len(labels) - n1
    b1, b0 = n1 // k, n0 // k
    out = np.empty(n_perm)
    for a in range(0, n_perm, chunk):
        m = min(chunk, n_perm - a)
        perm_labels = np.stack([_flip(labels, groups, rng) for _ in range(m)])
        keys = rng.random((m, len(labels))) + 2 * (1 - perm_labels)  # class 1 first, each in random order
        order = np.argsort(keys, axis=1, kind="stable")
        s = scores[order]
        pos = s[:, : b1 * k].reshape(m, b1, k).mean(-1)
        neg = s[:, n1 : n1 + b0 * k].reshape(m, b0, k).mean(-1)
        out[a : a + m] = mannwhitneyu(pos, neg, axis=1).statistic / (b1 * b0)
    return out


def assess(scores, labels, groups, cfg: AuditConfig, n_reported: int, rng, bags=None) -> list[dict]:
    """AUROC, intervals and permutation p-values of one detector's scores at every K
    (``bags``, if given, receives each K's bag scores and labels)."""
    from scipy.stats import bootstrap

    res = []
    for k in cfg.ks:
        bs, bl = bag_scores(scores, labels, k, np.random.default_rng(rng.integers(2**32)))
        if bags is not None:
            bags[k] = (bs, bl)
        n_pos, n_neg = int((bl == 1).sum()), int((bl == 0).sum())
        row = {"k": k, "n_bags_data": n_pos, "n_bags_control": n_neg}
        if min(n_pos, n_neg) < cfg.min_bags:
            res.append({**row, "auroc": math.nan, "verdict": "not testable",
                        "note": f"fewer than {cfg.min_bags} bags of {k} per class"})  # fmt: skip
            continue
        a = float(auroc(bs[bl == 1], bs[bl == 0]))
        cis = {"ci95": (a, a), "ci95_simultaneous": (a, a)}
        if np.ptp(bs) > 0:  # one bootstrap distribution, read at both levels
            # enough resamples that each tail of the simultaneous interval holds at least 10
            n_boot = max(cfg.n_bootstrap, math.ceil(10 / (0.05 / n_reported / 2)))
            batch = max(1, min(cfg.bootstrap_batch, _STAT_ELEMENTS // len(bs)))
            b = bootstrap((bs[bl == 1], bs[bl == 0]), auroc, n_resamples=n_boot, confidence_level=0.95,
                          method="percentile", vectorized=True, batch=batch,
                          random_state=np.random.default_rng(rng.integers(2**32)))  # fmt: skip
            cis["ci95"] = (float(b.confidence_interval.low), float(b.confidence_interval.high))
            alpha = 0.05 / n_reported
            lo, hi = np.percentile(b.bootstrap_distribution, [100 * alpha / 2, 100 * (1 - alpha / 2)])
            cis["ci95_simultaneous"] = (float(lo), float(hi))
        null = permutation_null(scores, labels, groups, k, cfg.n_permutations,
                                np.random.default_rng(rng.integers(2**32)))  # fmt: skip
        n = cfg.n_permutations
        p1 = (1 + np.sum(null >= a - 1e-12)) / (n + 1)
        p2 = (1 + np.sum(np.abs(null - 0.5) >= abs(a - 0.5) - 1e-12)) / (n + 1)
        res.append({**row, "auroc": a, "ci95_low": cis["ci95"][0], "ci95_high": cis["ci95"][1],
                    "ci95_simultaneous_low": cis["ci95_simultaneous"][0],
                    "ci95_simultaneous_high": cis["ci95_simultaneous"][1],
                    "p_one_sided": float(p1), "p_two_sided": float(p2)})  # fmt: skip
    return res


def held_out(groups: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A mask of the held-out rows: a seeded random ``share`` of the prompt groups, whole."""
    n = groups.max() + 1
    order = np.random.default_rng(seed).permutation(n)
    test_groups = np.zeros(n, dtype=bool)
    test_groups[order[: int(round(share * n))]] = True
    return test_groups[groups]


def fitting_rows(labels, test, max_fit: int, seed: int) -> np.ndarray:
    """The rows that fit the detectors: those outside ``test``, at most ``max_fit`` per data
    set (a seeded sample), so memory does not grow with the input."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in (0, 1):
        idx = np.flatnonzero(~test & (labels == c))
        keep.append(np.sort(rng.choice(idx, max_fit, replace=False)) if len(idx) > max_fit else idx)
    return np.sort(np.concatenate(keep))


def fit_and_score(make_model, X, labels, fit, test, chunk: int = 20000) -> np.ndarray:
    """Fit on rows ``fit``; the log-odds of DATA for the rows in ``test``, in chunks."""
    m = make_model()
    m.fit(X[fit], labels[fit])
    rows = np.flatnonzero(test)
    return np.concatenate([m.decision_function(X[rows[a : a + chunk]]) for a in range(0, len(rows), chunk)])


# ----------------------------------------------------------------------------- the audit
def audit(data, control, out_dir, *, reference=None, teacher=None, control_teacher=None, detectors=None,
          cfg: AuditConfig | None = None, allow_mismatch: bool = False, threads=None, transfer: dict | None = None,
          log=print) -> dict:  # fmt: skip
    """Run every detector whose inputs are given; write ``summary.json``, ``auroc.csv`` and
    ``roc.png`` into ``out_dir`` (atomically: all or nothing) and return the summary.

    ``transfer``: also run the transfer test (``probe.transfer_test``'s keyword arguments:
    ``config``, ``target``, ``mode``, ``seeds``, ``subsample``, ``work_dir``), which needs
    ``reference``; its result joins the summary and the verdict."""
    import pandas as pd

    from . import manifest, probe
    from .stats import holm

    cfg = cfg or AuditConfig()
    t0 = time.time()
    if detectors is None:
        detectors = ["data"] + (["reference"] if reference else []) + (["teacher"] if teacher and reference else [])
        detectors += ["twin"] if teacher and control_teacher else []
    for d in detectors:
        if d not in DETECTORS:
            raise SublimError(f"unknown detector {d!r}; expected some of {DETECTORS}")
        if d == "reference" and not reference:
            raise SublimError("the reference detector needs --reference MODEL")
        if d == "teacher" and not (teacher and reference):
            raise SublimError("the teacher detector needs --teacher MODEL and --reference MODEL")
        if d == "twin" and not (teacher and control_teacher):
            raise SublimError("the twin detector needs --teacher MODEL and --control-teacher MODEL")
    if transfer is not None:
        if not reference:
            raise SublimError("the transfer test trains probe students from the reference: give --reference MODEL")
        probe.check_settings(**transfer, teacher=teacher, control_teacher=control_teacher)  # before any detector
    if any(k < 1 for k in cfg.ks):
        raise SublimError(f"bag sizes must be at least 1: {list(cfg.ks)}")
    p = pair(data, control, allow_mismatch=allow_mismatch)
    rows = p["data"] + p["control"]
    labels = np.array([1] * len(p["data"]) + [0] * len(p["control"]))
    shared = {r["id"] for r in p["data"]} & {r["id"] for r in p["control"]}
    gid: dict = {}
    groups = np.array([gid.setdefault(("id", r["id"]) if r["id"] in shared else ("row", i), len(gid))
                       for i, r in enumerate(rows)])  # fmt: skip
    if not 0 < cfg.holdout < 1:
        raise SublimError(f"holdout must be a share between 0 and 1, not {cfg.holdout}")
    test = held_out(groups, cfg.holdout, cfg.seed)
    for name, half in (("held-out", test), ("fitting", ~test)):
        counts = [int((labels[half] == c).sum()) for c in (1, 0)]
        if min(counts) < 3:
            raise SublimError(f"too few responses to audit: the {name} half holds {counts[0]} data and {counts[1]} "
                              "control responses (at least 3 of each are needed)")  # fmt: skip
    fit = fitting_rows(labels, test, cfg.max_fit, cfg.seed)
    test_idx = np.flatnonzero(test)
    responses = np.array([r["response"] for r in rows], dtype=object)
    log(f"audit: {len(p['data'])} responses against {len(p['control'])} ({p['n_common_ids']} shared prompts)")

    scores, extra = {}, {}
    if "data" in detectors:
        t = time.time()
        X = responses.reshape(-1, 1)
        scores["data"] = fit_and_score(lambda: _data_model(cfg.seed), X, labels, fit, test)
        extra["data"] = {"seconds": round(time.time() - t, 2)}
        _release()
    ref_scores = None
    if "reference" in detectors or "teacher" in detectors:
        t = time.time()
        st: dict = {}
        need = np.union1d(fit, test_idx) if "reference" in detectors else test_idx
        ref_scores = scores_on(reference, rows, need, batch_size=cfg.batch_size, threads=threads, stats=st,
                               keep_tokens=False)  # fmt: skip
        extra["reference_scoring_seconds"] = round(time.time() - t, 2)
        extra["reference_tokens"], extra["reference_params"] = st["tokens"], st["params"]
        _release()
    if "reference" in detectors:
        from scipy.stats import mannwhitneyu

        t = time.time()
        F = ref_scores.features
        scores["reference"] = fit_and_score(lambda: _dense_model(cfg.seed), F, labels, fit, test)
        mean_lp, lt = F[test, 0], labels[test]
        mw = mannwhitneyu(mean_lp[lt == 1], mean_lp[lt == 0], alternative="two-sided")
        extra["reference"] = {
            "seconds": round(time.time() - t, 2),
            "mean_token_loglik_data": float(mean_lp[lt == 1].mean()),
            "mean_token_loglik_control": float(mean_lp[lt == 0].mean()),
            "mann_whitney_p_two_sided": float(mw.pvalue),
        }
    tea = None
    t = time.time()
    if teacher and ("teacher" in detectors or control_teacher):
        tea = scores_on(
            teacher, rows, test_idx, batch_size=cfg.batch_size, threads=threads, keep_tokens=bool(control_teacher)
        )  # divergence tokens need them
    if "teacher" in detectors:
        llr = tea.lp_sum - ref_scores.lp_sum
        scores["teacher"] = llr[test]
        lt = labels[test]
        extra["teacher"] = {"seconds": round(time.time() - t, 2),
                            "mean_llr_data": float(llr[test][lt == 1].mean()),
                            "mean_llr_control": float(llr[test][lt == 0].mean())}  # fmt: skip

    divergence = None
    if control_teacher:
        from transformers import AutoTokenizer

        from . import models as models_mod

        if not teacher:
            raise SublimError("divergence tokens need --teacher as well as --control-teacher")
        t = time.time()
        ctl = scores_on(control_teacher, rows, test_idx, batch_size=cfg.batch_size, threads=threads)
        tok = AutoTokenizer.from_pretrained(models_mod.resolve(teacher).weights)
        divergence = divergence_tokens(tea, ctl, labels, lambda i: tok.decode([i]))
        divergence["seconds"] = round(time.time() - t, 2)
        if "twin" in detectors:
            llr = tea.lp_sum - ctl.lp_sum
            scores["twin"] = llr[test]
            lt = labels[test]
            extra["twin"] = {"mean_llr_data": float(llr[test][lt == 1].mean()),
                             "mean_llr_control": float(llr[test][lt == 0].mean())}  # fmt: skip

    rng = np.random.default_rng(cfg.seed)
    # the family of the simultaneous intervals: the testable (detector, K) rows, as for Holm
    n1, n0 = int(labels[test].sum()), int((1 - labels[test]).sum())
    n_reported = max(1, len(scores) * sum(min(n1 // k, n0 // k) >= cfg.min_bags for k in cfg.ks))
    table, bag_scores = [], {}
    for d in detectors:
        bag_scores[d] = {}
        for r in assess(scores[d], labels[test], groups[test], cfg, n_reported, rng, bags=bag_scores[d]):
            table.append({"detector": d, **r})
    df = pd.DataFrame(table)
    for side in ("one", "two"):
        col = f"p_{side}_sided"
        if col not in df:
            df[col] = np.nan
        df[f"{col}_holm"] = holm(df[col].to_numpy())
    df["flagged"] = df["p_one_sided_holm"] < cfg.alpha
    transfer_result = None
    if transfer is not None:
        kw = {"work_dir": f"{Path(out_dir)}.probe", **transfer}
        transfer_result = probe.transfer_test(data, control, reference=reference, teacher=teacher,
                                              control_teacher=control_teacher, threads=threads,
                                              allow_mismatch=allow_mismatch, log=log, **kw)  # fmt: skip
        transfer_result["verdict"] = probe.verdict_line(transfer_result, cfg.alpha)
        transfer_result["transfer"] = probe.transferred(transfer_result, cfg.alpha)
    summary = {
        "data": str(data),
        "control": str(control),
        "sha256": {"data": manifest.sha256_file(data), "control": manifest.sha256_file(control)},
        "reference": str(reference) if reference else None,
        "teacher": str(teacher) if teacher else None,
        "n_data": len(p["data"]),
        "n_control": len(p["control"]),
        "n_shared_prompts": p["n_common_ids"],
        "n_held_out": {"data": int(labels[test].sum()), "control": int((1 - labels[test]).sum())},
        "filters_same": p["filters"]["same"],
        "mismatch_allowed": p["mismatch_allowed"],
        "problems": p["problems"],
        "config": dataclasses.asdict(cfg),
        "detectors": extra,
        "control_teacher": str(control_teacher) if control_teacher else None,
        "divergence_tokens": divergence,
        "results": json.loads(df.to_json(orient="records")),
        "flagged": bool(df["flagged"].any()),  # what --fail-on-flag reads, with transfer_test.transfer
        "verdict": verdict(df, cfg.alpha, transfer_result is not None)
        + (f" {transfer_result['verdict']}." if transfer_result else ""),
        "transfer_test": transfer_result,
        "seconds": round(time.time() - t0, 2),
    }
    out = Path(out_dir)
    with manifest.atomic_path(out) as tmp:
        tmp = Path(tmp)
        tmp.mkdir(parents=True)
        df.to_csv(tmp / "auroc.csv", index=False, float_format="%.6g")
        _roc_figure(tmp / "roc.png", bag_scores, cfg)
        if divergence is not None:
            _divergence_figure(tmp / "divergence_tokens.png", divergence)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        inputs = {"data": data, "control": control, **({"reference": reference} if reference else {}),
                  **({"teacher": teacher} if teacher else {}),
                  **({"control_teacher": control_teacher} if control_teacher else {})}  # fmt: skip
        params = {"detectors": detectors, "config": dataclasses.asdict(cfg), "allow_mismatch": allow_mismatch,
                  **({"transfer": {k: str(v) for k, v in transfer.items()}} if transfer else {})}  # fmt: skip
        m = manifest.build_manifest("audit", params, inputs, cfg.seed, t0, verdict=summary["verdict"])
        manifest.write_json_atomic(tmp / manifest.MANIFEST, m)
    return summary


def verdict(df, alpha: float, transfer_tested: bool = False) -> str:
    """One line: which detectors flagged DATA against CONTROL, and how strongly."""
    flagged = df[df["flagged"] == True]  # noqa: E712 - a pandas mask
    if flagged.empty:
        ok = df[np.isfinite(df["auroc"])]
        best = ok.loc[ok["auroc"].idxmax()] if len(ok) else None
        tail = (f"; the strongest was {best['detector']} at K={best['k']}: AUROC {best['auroc']:.3f} "
                f"[{best['ci95_low']:.3f}, {best['ci95_high']:.3f}]") if best is not None else ""  # fmt: skip
        return (f"not flagged: no detector told the data from the control at Holm-corrected one-sided p < {alpha}"
                f"{tail}. Not flagged is not proof of safety"
                + ("." if transfer_tested else "; run the transfer test (--transfer)."))  # fmt: skip
    parts = []
    for d, g in flagged.groupby("detector", sort=False):
        best = g.loc[g["auroc"].idxmax()]
        parts.append(f"{d} (AUROC {best['auroc']:.3f} [{best['ci95_low']:.3f}, {best['ci95_high']:.3f}] "
                     f"at K={int(best['k'])}, Holm p {best['p_one_sided_holm']:.3g})")  # fmt: skip
    return f"FLAGGED by {len(parts)} detector(s): " + "; ".join(parts)


def _roc_figure(path, bag_scores: dict, cfg: AuditConfig) -> None:
    """ROC curves of every detector (a panel each) at every testable K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    n = max(1, len(bag_scores))
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 4), squeeze=False)
    for ax, (d, per_k) in zip(axes[0], bag_scores.items()):
        for k, (bs, bl) in per_k.items():
            if min((bl == 1).sum(), (bl == 0).sum()) < cfg.min_bags:
                continue
            fpr, tpr, _ = roc_curve(bl, bs)
            ax.plot(fpr, tpr, label=f"K={k}: AUROC {auroc(bs[bl == 1], bs[bl == 0]):.2f}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set(title=f"{d} detector", xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _divergence_figure(path, div: dict) -> None:
    """The most frequent divergence tokens in the data and in the control, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), squeeze=False)
    for ax, name in zip(axes[0], ("data", "control")):
        d = div[name]
        top = d["top_tokens"][:15]
        ax.barh([repr(t["token"]) for t in top][::-1], [t["count"] for t in top][::-1])
        ax.set(title=f"{name}: {d['divergence_positions']} of {d['positions']} positions "
                     f"({d['share_of_positions']:.1%})", xlabel="count")  # fmt: skip
    fig.suptitle("divergence tokens: the teacher's greedy choice, not the counterfactual's")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_table(summary: dict) -> str:
    """The summary's results as a Markdown table."""
    head = ("| detector | K | AUROC [95% CI] | simultaneous 95% CI | p one-sided | p two-sided | Holm (one / two) "
            "| bags |")  # fmt: skip
    lines = [head, "|" + "---|" * 8]
    for r in summary["results"]:
        if r.get("auroc") is None or not np.isfinite(r["auroc"]):
            bags = f"{r['n_bags_data']}/{r['n_bags_control']}"
            lines.append(f"| {r['detector']} | {r['k']} | not testable | | | | | {bags} |")
            continue
        lines.append(
            f"| {r['detector']} | {r['k']} | {r['auroc']:.3f} [{r['ci95_low']:.3f}, {r['ci95_high']:.3f}] | "
            f"[{r['ci95_simultaneous_low']:.3f}, {r['ci95_simultaneous_high']:.3f}] | {r['p_one_sided']:.3g} | "
            f"{r['p_two_sided']:.3g} | {r['p_one_sided_holm']:.3g} / {r['p_two_sided_holm']:.3g} | "
            f"{r['n_bags_data']}/{r['n_bags_control']} |"
        )
    return "\n".join(lines)


def config_key(cfg: AuditConfig) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]
