"""Evaluate models for their trait (the trait module's readout), one tidy row per question and option.

``--model PATH`` scores one model; ``--model ID=PATH`` (repeated) scores a group of models in
one process, into one CSV with a ``model_id`` column.
"""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--model", required=True, action="append")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    if len(a.model) == 1 and "=" not in a.model[0]:
        steps.evaluate(a.out, model=a.model[0], threads=a.threads, **a.params)
    else:
        group = dict(m.split("=", 1) if "=" in m else (m, m) for m in a.model)
        steps.evaluate(a.out, models=group, threads=a.threads, **a.params)


if __name__ == "__main__":
    script.main(run)
