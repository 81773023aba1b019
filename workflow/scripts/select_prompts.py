"""The prompt ids every teacher of an experiment answered acceptably (students draw from these)."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", nargs="+", required=True, help="each teacher's filtered jsonl")
    ap.add_argument("--counts", nargs="+", required=True, help="each teacher's filter counts")
    a = ap.parse_args()
    steps.select_prompts(a.out, data=a.data, counts=a.counts, **a.params)


if __name__ == "__main__":
    script.main(run)
