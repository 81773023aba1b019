"""Apply the strict number-format filter, count rejection reasons, subsample to a fixed size."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--counts", required=True)
    a = ap.parse_args()
    steps.filter_numbers(a.out, a.counts, raw=a.raw, **a.params)


if __name__ == "__main__":
    script.main(run)
