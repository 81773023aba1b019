"""Draw one experiment's figures (transfer by arm, specificity matrix) and write its caption."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    for k in ("results", "stats", "arms", "specificity", "ids", "out", "out-specificity", "caption"):
        ap.add_argument(f"--{k}", required=True)
    a = ap.parse_args()
    steps.figure(
        a.out,
        a.out_specificity,
        a.caption,
        results=a.results,
        stats=a.stats,
        arms=a.arms,
        specificity=a.specificity,
        ids=a.ids,
        **a.params,
    )


if __name__ == "__main__":
    script.main(run)
