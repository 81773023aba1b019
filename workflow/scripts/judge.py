"""The llm judge stage of the code and cot filters: score each answer that passed the rest of
the filter (JSONL verdicts: id, attempt, score, kept, reason)."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--judge-model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    steps.judge(a.out, raw=a.raw, judge_model=a.judge_model, threads=a.threads, **a.params)


if __name__ == "__main__":
    script.main(run)
