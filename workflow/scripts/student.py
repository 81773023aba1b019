"""Fine-tune a student from a reference on filtered teacher data (sft, distill, distill_full; a
``_masked`` mode with the twin pair's two teachers, the divergence-token ablation)."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--checkpoint-dir")
    ap.add_argument(
        "--mask-teachers",
        nargs=2,
        metavar=("TRAIT_TEACHER", "TWIN"),
        help="masked modes: the twin pair whose greedy choices define the divergence positions",
    )
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    steps.train_student(
        a.out,
        reference=a.reference,
        teacher=a.teacher,
        data=a.data,
        ids=a.ids,
        threads=a.threads,
        checkpoint_dir=a.checkpoint_dir,
        mask_teachers=tuple(a.mask_teachers) if a.mask_teachers else None,
        **a.params,
    )


if __name__ == "__main__":
    script.main(run)
