"""Distil a second reference to behave like the teachers' reference (reference.matched)."""

from sublim import matching, script


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint-dir")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    matching.match_reference(
        a.out,
        corpus=a.corpus,
        target=a.target,
        start=a.start,
        threads=a.threads,
        checkpoint_dir=a.checkpoint_dir,
        **a.params,
    )


if __name__ == "__main__":
    script.main(run)
