"""Write an experiment's design table (one row per model) as CSV, from the rule's params."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    steps.design_table(a.out, rows=a.params)


if __name__ == "__main__":
    script.main(run)
