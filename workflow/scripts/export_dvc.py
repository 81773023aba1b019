"""Write dvc.yaml from the Snakemake DAG (one DVC stage per job); --check fails on drift."""

import argparse
import sys
from pathlib import Path

from sublim import dvcexport

ROOT = Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configfile", type=Path, help="a preset (default: the root config.yaml)")
    ap.add_argument("--out", type=Path, default=ROOT / "dvc.yaml")
    ap.add_argument("--check", action="store_true", help="exit 1 if --out differs from the DAG")
    a = ap.parse_args()
    cfg = a.configfile.resolve() if a.configfile else None
    text = dvcexport.render(dvcexport.build_dvc_yaml(ROOT, cfg))
    if a.check:
        if not a.out.exists() or a.out.read_text() != text:
            print(f"error: {a.out} is out of date with the Snakemake DAG; run {Path(__file__).name}", file=sys.stderr)
            sys.exit(1)
        return
    a.out.write_text(text)
    print(f"wrote {a.out} ({text.count(chr(10) + '  ')} lines of stages)", file=sys.stderr)


if __name__ == "__main__":
    main()
