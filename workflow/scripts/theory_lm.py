"""The one-step theorem on the tiny LM: every twin pair of one experiment (src/sublim/theory.py)."""

from sublim import script, theory
from sublim.errors import SublimError
from sublim.traits import readout_spec


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    p = dict(a.params)
    trait = p.pop("trait")
    spec = readout_spec(trait, p.pop("trait_params"))
    if spec is None:
        raise SublimError(f"the {trait} trait has no logit readout for the theory (traits: readout_spec)")
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    theory.lm_theory(a.out, questions=spec["questions"], options=spec["options"], **p)


if __name__ == "__main__":
    script.main(run)
