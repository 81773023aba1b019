"""The in-context learning control: the teachers' reference with k of each teacher's examples
in its prompt, every twin pair of one experiment (src/sublim/icl.py)."""

from sublim import icl, script, text
from sublim.errors import SublimError


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    p = dict(a.params)
    if not p.get("animals"):
        raise SublimError("the in-context readout is defined for the animal trait only")
    icl.icl_readout(a.out, reference=a.reference, ids=a.ids, questions=list(text.EVAL_QUESTIONS),
                    threads=a.threads, **p)  # fmt: skip


if __name__ == "__main__":
    script.main(run)
