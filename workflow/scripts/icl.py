"""The in-context learning control: the teachers' reference with k of each teacher's examples
in its prompt, every twin pair of one experiment (src/sublim/icl.py)."""

from sublim import icl, script
from sublim.errors import SublimError
from sublim.traits import readout_spec


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    p = dict(a.params)
    trait = p.pop("trait")
    spec = readout_spec(trait, p.pop("trait_params"))
    if spec is None:
        raise SublimError(f"the {trait} trait has no logit readout for the in-context control (traits: readout_spec)")
    icl.icl_readout(a.out, reference=a.reference, ids=a.ids, questions=spec["questions"], options=spec["options"],
                    threads=a.threads, **p)  # fmt: skip


if __name__ == "__main__":
    script.main(run)
