"""fig_icl: the in-context effect per twin pair against k, beside the fine-tuned students'."""

from sublim import icl, script


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--caption", required=True)
    ap.add_argument("--students", nargs="*", default=[], help="the experiments' stats.csv (students' headline rows)")
    ap.add_argument("icl", nargs="+")
    a = ap.parse_args()
    icl.figure(a.out, a.stats, a.caption, icl_csvs=a.icl, stats_csvs=a.students)


if __name__ == "__main__":
    script.main(run)
