"""Train MNIST teachers and auxiliary-logit students, all models vectorised; write test accuracies."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint-dir")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    steps.mnist_experiment(a.out, data=a.data, threads=a.threads, checkpoint_dir=a.checkpoint_dir, **a.params)


if __name__ == "__main__":
    script.main(run)
