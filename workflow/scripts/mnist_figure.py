"""Draw the MNIST figure (accuracy by condition with 95% CIs, and the sigma sweep) and its table."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--accuracy", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--caption", required=True)
    a = ap.parse_args()
    steps.mnist_figure(a.out, a.table, a.caption, accuracy=a.accuracy, **a.params)


if __name__ == "__main__":
    script.main(run)
