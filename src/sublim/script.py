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


def main(fn) -> None:
    from .errors import SublimError

    try:
        fn()
    except SublimError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
