"""Make a reference model: pretrain the tiny Llama from scratch, or register a local path."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--corpus")
    ap.add_argument("--tokenizer")
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint-dir")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    steps.make_reference(
        a.out, corpus=a.corpus, tokenizer=a.tokenizer, threads=a.threads, checkpoint_dir=a.checkpoint_dir, **a.params
    )


if __name__ == "__main__":
    script.main(run)
