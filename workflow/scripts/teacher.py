"""Make a teacher from a reference: control (unchanged), system prompt, or fine-tuned on trait data."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint-dir")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    steps.make_teacher(a.out, reference=a.reference, threads=a.threads, checkpoint_dir=a.checkpoint_dir, **a.params)


if __name__ == "__main__":
    script.main(run)
