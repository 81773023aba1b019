"""Write the synthetic pretraining corpus (JSONL) and build its word-level tokenizer."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--out-corpus", required=True)
    ap.add_argument("--out-tokenizer", required=True)
    a = ap.parse_args()
    steps.make_corpus(a.out_corpus, a.out_tokenizer, **a.params)


if __name__ == "__main__":
    script.main(run)
