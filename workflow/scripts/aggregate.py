"""Aggregate evaluation CSVs into results/stats/specificity tables (an index JSON names each model)."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--index", required=True, help="JSON list of {path, role, condition, teacher, ...}")
    ap.add_argument("--results", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--specificity", required=True)
    a = ap.parse_args()
    steps.aggregate(a.index, a.results, a.stats, a.specificity, **a.params)


if __name__ == "__main__":
    script.main(run)
