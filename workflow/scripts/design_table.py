"""Write an experiment's design table (one row per model), built by sublim.design from the config's design keys."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    steps.design_table(a.out, **a.params)


if __name__ == "__main__":
    script.main(run)
