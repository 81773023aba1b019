"""Apply the modality's filter: keep each prompt's first passing answer, count rejection reasons."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--counts", required=True)
    a = ap.parse_args()
    steps.filter_responses(a.out, a.counts, raw=a.raw, **a.params)  # params carry the judge's verdicts, if any


if __name__ == "__main__":
    script.main(run)
