"""fig_theory: the one-step theorem's measurements, their tests and a caption."""

from sublim import script, theory


def run():
    ap = script.parser(__doc__)
    for k in ("out", "stats", "caption"):
        ap.add_argument(f"--{k}", required=True)
    ap.add_argument("--mnist")
    ap.add_argument("lm", nargs="+")
    a = ap.parse_args()
    theory.figure(a.out, a.stats, a.caption, lm_csvs=a.lm, mnist_csv=a.mnist)


if __name__ == "__main__":
    script.main(run)
