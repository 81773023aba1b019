"""Aggregate evaluation CSVs into results/stats/specificity tables (each CSV's path says what it scores)."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("evals", nargs="+", help="results/eval/{variant}/{reference,teacher,student}/...csv")
    ap.add_argument("--results", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--specificity", required=True)
    a = ap.parse_args()
    steps.aggregate(a.evals, a.results, a.stats, a.specificity, **a.params)


if __name__ == "__main__":
    script.main(run)
