"""Shared plumbing for the thin command lines in ``workflow/scripts/``.

``parser`` builds an argparse parser with ``--params`` (a JSON object of step settings);
``main`` runs a step and turns a ``SublimError`` into one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=json.loads, default={}, help="step settings as a JSON object")
    return ap


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
    try:
        fn()
    except SublimError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
