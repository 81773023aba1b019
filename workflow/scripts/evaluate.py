"""Evaluate a model for its trait (the trait module's readout), one tidy row per question and option."""

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
