"""One experiment's audits in one table, and each detector and K averaged over twin pairs."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("audits", nargs="+")
    a = ap.parse_args()
    steps.audit_table(a.out, a.summary, audits=a.audits)


if __name__ == "__main__":
    script.main(run)
