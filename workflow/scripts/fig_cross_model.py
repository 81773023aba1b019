"""fig_cross_model: transfer by the student's starting model, from an experiment's stats.csv."""

from sublim import cross_model, script


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--caption", required=True)
    a = ap.parse_args()
    cross_model.figure(a.out, a.caption, stats_csv=a.stats)


if __name__ == "__main__":
    script.main(run)
