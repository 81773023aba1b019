"""Apply the modality's filter: keep each prompt's first passing answer, count rejection reasons."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--counts", required=True)
    ap.add_argument("--verdicts", help="the judge step's verdicts (modalities with judge: llm)")
    a = ap.parse_args()
    steps.filter_responses(a.out, a.counts, raw=a.raw, verdicts=a.verdicts, **a.params)


if __name__ == "__main__":
    script.main(run)
