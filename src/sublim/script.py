"""Shared plumbing for the thin command lines in ``workflow/scripts/``.

``parser`` builds an argparse parser with ``--params`` (a JSON object of step settings) and
``--code`` (the step's code version when Snakemake planned the job, ``sublim.codeversion``);
``main`` checks that version, runs the step and turns a ``SublimError`` into one line on
stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=json.loads, default={}, help="step settings as a JSON object")
    ap.add_argument(
        "--code",
        help="the code version the workflow planned this step with (sublim.codeversion); "
        "the step refuses to run other code, and its manifests record it",
    )
    return ap


def check_code(argv: list[str]) -> None:
    """With ``--code V`` on the command line: refuse (one line, exit 1) when the sublim code
    this script runs is no longer version V (edited between Snakemake's planning of the job
    and its start: the outputs would claim code they were not made by), else have the step's
    manifests record the version and its files."""
    from . import codeversion, manifest

    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--code")
    planned = ap.parse_known_args(argv[1:])[0].code
    if planned is None:
        return
    files = codeversion.describe(argv[0])
    now = codeversion.version_of(files)
    if now != planned:
        print(
            f"error: the sublim code that {Path(argv[0]).name} runs changed after Snakemake planned "
            f"this job (planned {planned}, now {now}); run snakemake again, it reruns what the "
            "change touches",
            file=sys.stderr,
        )
        sys.exit(1)
    manifest.STEP_CODE = {"version": now, "files": {k: v[:16] for k, v in files.items()}}


# Packages that other libraries import whenever they are installed, though no step but the
# audit uses them: transformers imports scikit-learn's metrics (for assisted generation,
# which sublim never runs) as soon as a model class is imported, and that pulls in scipy.stats
# and pandas: about 1.2 s of every job's start-up on this project's 2-core machine
# (benchmarks/startup.py measures it).
UNUSED = ("sklearn",)


def main(fn, *, uses: tuple[str, ...] = ()) -> None:
    """Run a step: a ``SublimError`` becomes one line on stderr and exit code 1. The packages
    of ``UNUSED`` that the step does not declare in ``uses`` are hidden (``None`` in
    ``sys.modules``: Python's own way to block an import), so libraries that probe for them
    skip them; importing one in such a step fails loudly, never silently.

    Under ``sublim warm`` (``SUBLIM_WARM`` set) the step runs in the warm server's forked
    child (``sublim.warm``) and this process waits for it and leaves with its status."""
    from . import warm
    from .errors import SublimError

    status = warm.delegate()  # under `sublim warm`: run in its warm interpreter instead
    if status is not None:
        warm.exit_like(status)
    for name in UNUSED:
        if name not in uses and name not in sys.modules:
            sys.modules[name] = None
    check_code(sys.argv)
    try:
        fn()
    except SublimError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
