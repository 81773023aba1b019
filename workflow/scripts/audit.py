"""Audit a teacher's data against its neutral twin's (``sublim audit``, as a workflow step)."""

from sublim import script, steps


def run():
    ap = script.parser(__doc__)
    for k in ("data", "control", "reference", "teacher", "control-teacher", "out"):
        ap.add_argument(f"--{k}", required=True)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    steps.audit(a.out, data=a.data, control=a.control, reference=a.reference, teacher=a.teacher,
                control_teacher=a.control_teacher, threads=a.threads, **a.params)  # fmt: skip


if __name__ == "__main__":
    script.main(run, uses=("sklearn",))
