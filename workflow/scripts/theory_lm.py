"""The one-step theorem on the tiny LM: every twin pair of one experiment (src/sublim/theory.py)."""

from sublim import script, text, theory
from sublim.errors import SublimError


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    p = dict(a.params)
    if p.pop("trait") != "animal":
        raise SublimError("the theory's readout is defined for the animal trait only")
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    theory.lm_theory(a.out, questions=list(text.EVAL_QUESTIONS), **p)


if __name__ == "__main__":
    script.main(run)
