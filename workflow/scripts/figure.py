"""Draw a figure from the aggregated tables: --kind animal_numbers | animal_specificity."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--kind", required=True, choices=["animal_numbers", "animal_specificity"])
    ap.add_argument("--results", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--specificity")
    ap.add_argument("--out", required=True)
    ap.add_argument("--caption")
    a = ap.parse_args()
    steps.figure(
        a.kind, a.out, results=a.results, stats=a.stats, specificity=a.specificity, caption_out=a.caption, **a.params
    )


if __name__ == "__main__":
    script.main(run)
