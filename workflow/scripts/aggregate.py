"""Model-level tables and tests of one experiment, from its design table and evaluation CSVs."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("evals", nargs="+", help="the evaluation CSVs the design table names")
    ap.add_argument("--design", required=True)
    ap.add_argument("--ids", required=True, help="the experiment's prompt_ids.json (keep rates)")
    ap.add_argument("--results", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--arms", required=True)
    ap.add_argument("--specificity", required=True)
    a = ap.parse_args()
    steps.aggregate(
        a.evals,
        design=a.design,
        ids=a.ids,
        out_results=a.results,
        out_stats=a.stats,
        out_arms=a.arms,
        out_specificity=a.specificity,
        **a.params,
    )


if __name__ == "__main__":
    script.main(run)
