"""The one-step theorem on the MNIST branch (src/sublim/theory.py)."""

from sublim import script, theory


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    theory.mnist_theory(a.out, data=a.data, threads=a.threads, **a.params)


if __name__ == "__main__":
    script.main(run)
