"""Evaluate a model's animal preference: logit readout and sampled answers per question."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    steps.evaluate(a.out, model=a.model, threads=a.threads, **a.params)


if __name__ == "__main__":
    script.main(run)
