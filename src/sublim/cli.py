"""The ``sublim`` command: ``audit`` (does a data set carry a hidden signal?), ``lineage`` (which data
made an artifact) and ``record``/``push``/``pull``/``touch`` (version a run with DVC)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from .errors import SublimError


def cmd_audit(a) -> None:
    from . import audit

    ks = tuple(int(k) for k in a.k.split(","))
    cfg = audit.AuditConfig(ks=ks, holdout=a.holdout, n_permutations=a.permutations, seed=a.seed)
    detectors = a.detectors.split(",") if a.detectors else None
    transfer = None
    if a.transfer is not None:
        transfer = {"config": a.config, "target": a.transfer or None, "mode": a.transfer_mode,
                    "seeds": a.transfer_seeds, "subsample": a.transfer_subsample,
                    "modality": a.transfer_modality}  # fmt: skip
        if a.work_dir:
            transfer["work_dir"] = a.work_dir
    s = audit.audit(a.data, a.against, a.out, reference=a.reference, teacher=a.teacher,
                    control_teacher=a.control_teacher, detectors=detectors,
                    cfg=cfg, allow_mismatch=a.allow_mismatch, threads=a.threads, transfer=transfer,
                    log=lambda m: print(m, file=sys.stderr))  # fmt: skip
    print(audit.format_table(s))
    print(s["verdict"])
    if a.fail_on_flag and (s["flagged"] or (s["transfer_test"] or {}).get("transfer")):
        sys.exit(4)


def cmd_lineage(a) -> None:
    from . import lineage

    nodes = lineage.lineage(a.path, Path(a.root))
    print(json.dumps(nodes, indent=2) if a.json else lineage.format_text(nodes))
    if any(n["matches_record"] is False for n in nodes):
        sys.exit(3)


def cmd_record(a) -> None:
    """Regenerate dvc.yaml for the config, then commit every output to the DVC cache."""
    from . import dvcexport

    root = Path(a.root).resolve()
    cfg = Path(a.configfile).resolve() if a.configfile else None
    text = dvcexport.render(dvcexport.build_dvc_yaml(root, cfg))
    if (root / "dvc.yaml").read_text() != text if (root / "dvc.yaml").exists() else True:
        (root / "dvc.yaml").write_text(text)
        print("dvc.yaml regenerated for this config", file=sys.stderr)
    if not (root / ".dvc").exists():
        raise SublimError("no .dvc/ here: run `dvc init` first")
    subprocess.run(["dvc", "commit", "--force", "--quiet"], cwd=root, check=True)
    # dvc commit relinks the workspace from its cache, with fresh mtimes in no particular order
    _snakemake_touch(root, a.configfile)
    print("recorded: outputs committed to the DVC cache, dvc.lock written (nothing was rerun)", file=sys.stderr)
    if a.push:
        _verified_push(root)


def _in_sync(root: Path) -> bool:
    out = subprocess.run(["dvc", "status", "--cloud"], cwd=root, capture_output=True, text=True, check=True)
    return "in sync" in out.stdout


def _repair_remote(root: Path) -> list[str]:
    """Drop the default remote's copies of this cache's directory objects (``.dir``) that do
    not match their hash, so that the next push writes them again. A ``dvc push`` killed
    mid-way can leave one empty in the remote (seen here, on a local remote), and DVC only
    checks that an object exists: later pushes skip it and every pull of it fails. File
    objects are not checked (DVC writes them under a temporary name, then renames them); the
    ``.dir`` objects are small JSON listings, so checking them all is cheap."""
    from dvc.repo import Repo
    from dvc_data.hashfile.db import ObjectFormatError

    dropped = []
    with Repo(str(root)) as repo:
        odb = repo.cloud.get_remote_odb()
        for p in sorted((root / ".dvc" / "cache" / "files" / "md5").glob("*/*.dir")):
            oid = p.parent.name + p.name
            if odb.exists(oid):
                try:
                    odb.check(oid)
                except ObjectFormatError:  # check() has removed the corrupted copy
                    dropped.append(oid)
    for oid in dropped:
        print(f"the remote's copy of {oid} was corrupted (an interrupted push?): removed, pushing it again",
              file=sys.stderr)  # fmt: skip
    return dropped


def _verified_push(root: Path, attempts: int = 3) -> None:
    """``dvc push`` until ``dvc status --cloud`` agrees that the remote holds everything and
    every directory object there matches its hash. After an interrupted push, DVC's next
    push can skip objects (seen here: a push killed after 1 s, then a full push, left 11
    files missing) or trip over a half-written one (an empty ``.dir`` object); repairing,
    checking and pushing again fixes both."""
    for _ in range(attempts):
        _repair_remote(root)
        if subprocess.run(["dvc", "push"], cwd=root, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            print("dvc push failed (its message is above); repairing the remote and pushing again", file=sys.stderr)
            continue
        if _in_sync(root) and not _repair_remote(root):
            print("pushed: the DVC remote holds every recorded artifact (dvc status --cloud, .dir objects verified)",
                  file=sys.stderr)  # fmt: skip
            return
    raise SublimError(f"dvc push: the remote still lacks artifacts after {attempts} pushes (see dvc status --cloud)")


def cmd_push(a) -> None:
    _verified_push(Path(a.root).resolve())


def _snakemake_touch(root: Path, configfile: str | None) -> None:
    """Mark restored outputs up to date in DAG order. Snakemake always compares input and
    output mtimes, and DVC restores files with fresh ones, so without this a pulled or
    checked-out run would look stale."""
    cmd = [sys.executable, "-m", "snakemake", "all", "--touch", "--cores", "1"]
    if configfile:
        cmd += ["--configfile", configfile]
    subprocess.run(cmd, cwd=root, check=True, stdout=subprocess.DEVNULL)


def cmd_touch(a) -> None:
    _snakemake_touch(Path(a.root).resolve(), a.configfile)


def cmd_pull(a) -> None:
    root = Path(a.root).resolve()
    # not --quiet: DVC's -q hides its own error messages too
    if subprocess.run(["dvc", "pull"], cwd=root, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        # transfers can fail part-way (network remotes, a busy file system); DVC resumes
        # where it stopped, so one more pull is the documented fix before giving up
        print("dvc pull failed (its message is above); pulling once more", file=sys.stderr)
        subprocess.run(["dvc", "pull"], cwd=root, check=True, stdout=subprocess.DEVNULL)
    _snakemake_touch(root, a.configfile)
    print("pulled: artifacts restored from the DVC remote and marked up to date for Snakemake", file=sys.stderr)


def cmd_warm(a) -> None:
    from . import warm

    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    sys.exit(warm.run(cmd))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="sublim", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("audit", help="does DATA carry a signal its CONTROL does not? (held-out AUROC per detector)")
    p.add_argument("data", help="JSONL of {id, prompt, response}: the suspected teacher's data")
    p.add_argument("--against", required=True, metavar="CONTROL", help="JSONL: the control teacher's data")
    p.add_argument("--reference", metavar="MODEL", help="the clean reference model (enables 'reference')")
    p.add_argument("--teacher", metavar="MODEL", help="the suspected teacher (enables 'teacher'; needs --reference)")
    p.add_argument(
        "--control-teacher",
        metavar="MODEL",
        help="the control's teacher: count divergence tokens (Schrodi et al. 2025); needs --teacher",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="summary.json, auroc.csv, roc.png")
    p.add_argument("--detectors", help="comma-separated subset of data,reference,teacher,twin (default: all given)")
    p.add_argument("--k", default="1,4,16", help="bag sizes, comma-separated (default 1,4,16)")
    p.add_argument("--holdout", type=float, default=0.5, help="share of the prompts held out for judging")
    p.add_argument("--permutations", type=int, default=999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="compare data sets whose prompts or filter settings differ (reported in the summary)",
    )
    p.add_argument("--fail-on-flag", action="store_true",
                   help="exit 4 when any detector flags the data or the transfer test finds transfer")  # fmt: skip
    p.add_argument(
        "--transfer",
        nargs="?",
        const="",
        metavar="TARGET",
        help="also run the transfer test: probe students from --reference on DATA and on CONTROL, scored for "
        "TARGET (an animal of the config's pool; misalignment: none needed)",
    )
    p.add_argument("--config", default="config.yaml", help="the transfer test's sublim config: trait, evaluation, "
                   "students.train, filter.subsample (default: ./config.yaml)")  # fmt: skip
    p.add_argument("--transfer-mode", default="sft", help="sft (default), distill or distill_full (these two distil "
                   "--teacher on DATA and --control-teacher on CONTROL)")  # fmt: skip
    p.add_argument("--transfer-seeds", type=int, default=5, help="probe seeds: a DATA and a CONTROL student each "
                   "(default 5)")  # fmt: skip
    p.add_argument("--transfer-modality", help="the data's modality (numbers, code, cot): distill's token set and "
                   "the per-student subsample (default: the config's first experiment's)")  # fmt: skip
    p.add_argument("--transfer-subsample", type=int, help="examples per probe student (default: filter.subsample)")
    p.add_argument("--work-dir", help="where the probe students go (default: OUT.probe; a rerun reuses them)")
    p.set_defaults(fn=cmd_audit)
    p = sub.add_parser("lineage", help="print an artifact's chain back to the reference model")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--root", default=".")
    p.set_defaults(fn=cmd_lineage)
    p = sub.add_parser("record", help="commit a finished Snakemake run to DVC (dvc.lock) without rerunning")
    p.add_argument("--configfile", help="the preset the run used (default: config.yaml)")
    p.add_argument("--push", action="store_true", help="also dvc push to the default remote")
    p.add_argument("--root", default=".")
    p.set_defaults(fn=cmd_record)
    p = sub.add_parser("push", help="dvc push, verified with dvc status --cloud (pushed again if incomplete)")
    p.add_argument("--root", default=".")
    p.set_defaults(fn=cmd_push)
    p = sub.add_parser("pull", help="dvc pull, then mark the restored outputs up to date for Snakemake")
    p.add_argument("--configfile", help="the preset the recorded run used (default: config.yaml)")
    p.add_argument("--root", default=".")
    p.set_defaults(fn=cmd_pull)
    p = sub.add_parser("touch", help="after dvc checkout: mark restored outputs up to date for Snakemake")
    p.add_argument("--configfile", help="the preset the run used (default: config.yaml)")
    p.add_argument("--root", default=".")
    p.set_defaults(fn=cmd_touch)
    p = sub.add_parser(
        "warm",
        help="run CMD (e.g. snakemake -c2 all) with a warm interpreter for its jobs: torch imported once",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    p.set_defaults(fn=cmd_warm)
    a = ap.parse_args(argv)
    try:
        a.fn(a)
    except SublimError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as e:
        print(f"error: {' '.join(e.cmd)} failed with exit code {e.returncode}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
