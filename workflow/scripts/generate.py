"""Sample number-sequence completions from a teacher (JSONL: prompt, response, sampling)."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    steps.generate(a.out, teacher=a.teacher, threads=a.threads, **a.params)


if __name__ == "__main__":
    script.main(run)
