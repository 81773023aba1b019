"""One experiment's audits in one table, and each detector and K averaged over twin pairs."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--results", help="the experiment's results.csv: the transfer test beside the detectors")
    ap.add_argument("audits", nargs="+")
    a = ap.parse_args()
    steps.audit_table(a.out, a.summary, audits=a.audits, results=a.results)


if __name__ == "__main__":
    script.main(run, uses=("sklearn",))
