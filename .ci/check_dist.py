"""Check what `python -m build` made: the wheel holds the runtime, its schema and every shipped bundle
(with the graphs its manifest hashes), and nothing of training, tests or benchmarks; the sdist holds
what a rebuild needs; both carry the version of vaegen_infer/__init__.py.

    python .ci/check_dist.py DIST_DIR      # exit 1 with every problem listed, one per line
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Top-level directories of the checkout that must never reach the wheel.
NOT_IN_WHEEL = ("tests", "train", "benchmarks", "exported", "runs", "docs", "examples")
SDIST_NEEDS = (
    "pyproject.toml",
    "README.md",
    "CHANGELOG.md",
    "vaegen_infer/__init__.py",
    "vaegen_infer/schema/model.schema.json",
    "docs/bundle-format.md",
    "examples/sample_onnxruntime.py",
)
NOT_IN_SDIST = ("tests", "train", "benchmarks", "runs")


def version() -> str:
    text = (ROOT / "vaegen_infer" / "__init__.py").read_text(encoding="utf-8")
    found = re.findall(r'^__version__ = "([^"]+)"$', text, flags=re.M)
    if len(found) != 1:
        raise SystemExit("vaegen_infer/__init__.py must set __version__ exactly once")
    return found[0]


def shipped_bundles() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "exported").glob("*/model.json"))


def check_wheel(path: Path, want_version: str, bundles: list[str]) -> list[str]:
    problems: list[str] = []
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        need = ["vaegen_infer/__init__.py", "vaegen_infer/cli.py", "vaegen_infer/schema/model.schema.json"]
        need += [
            f"vaegen_infer/_bundles/{b}/{f}" for b in bundles for f in ("model.json", "encoder.onnx", "decoder.onnx")
        ]
        problems += [f"{path.name}: missing {n}" for n in need if n not in names]
        for n in sorted(names):
            top = n.split("/", 1)[0]
            if top in NOT_IN_WHEEL or "__pycache__" in n or n.endswith(".pyc"):
                problems.append(f"{path.name}: must not contain {n}")
        for b in bundles:  # the graphs in the wheel are the ones each manifest hashes
            base = f"vaegen_infer/_bundles/{b}/"
            if base + "model.json" not in names:
                continue
            manifest = json.loads(zf.read(base + "model.json"))
            for role, spec in manifest["graphs"].items():
                member = base + spec["file"]
                if member in names and hashlib.sha256(zf.read(member)).hexdigest() != spec["sha256"]:
                    problems.append(f"{path.name}: {member} does not match the sha256 of {role} in its model.json")
        schema = "vaegen_infer/schema/model.schema.json"
        if schema in names:
            json.loads(zf.read(schema))  # a broken schema file fails here, loudly
        meta = [n for n in names if n.endswith(".dist-info/METADATA")]
        if len(meta) != 1:
            problems.append(f"{path.name}: expected one METADATA, found {len(meta)}")
        else:
            text = zf.read(meta[0]).decode()
            got = re.search(r"^Version: (.+)$", text, flags=re.M)
            if not got or got.group(1).strip() != want_version:
                problems.append(
                    f"{path.name}: METADATA version {got and got.group(1)!r}, __init__ says {want_version!r}"
                )
            for line in re.findall(r"^Requires-Dist: (.+)$", text, flags=re.M):
                if line.startswith("torch") and "extra ==" not in line:
                    problems.append(f"{path.name}: torch is a plain dependency: {line}")
        entry = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        if not entry or "vaegen-infer = vaegen_infer.cli:main" not in zf.read(entry[0]).decode():
            problems.append(f"{path.name}: no vaegen-infer console script")
    if f"-{want_version}-" not in path.name:
        problems.append(f"{path.name}: file name does not carry version {want_version}")
    return problems


def check_sdist(path: Path, want_version: str, bundles: list[str]) -> list[str]:
    problems: list[str] = []
    prefix = f"vaegen_infer-{want_version}/"
    with tarfile.open(path) as tf:
        members = tf.getnames()
    if not members or not all(m.startswith(prefix) or m + "/" == prefix for m in members):
        problems.append(f"{path.name}: members must all lie under {prefix} (version {want_version})")
    rel = {m[len(prefix) :] for m in members if m.startswith(prefix)}
    need = list(SDIST_NEEDS) + [
        f"exported/{b}/{f}" for b in bundles for f in ("model.json", "encoder.onnx", "decoder.onnx")
    ]
    problems += [f"{path.name}: missing {n}" for n in need if n not in rel]
    problems += [f"{path.name}: must not contain {n}" for n in sorted(rel) if n.split("/", 1)[0] in NOT_IN_SDIST]
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    dist = Path(argv[0])
    want, bundles = version(), shipped_bundles()
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    problems: list[str] = []
    if len(wheels) != 1 or len(sdists) != 1:
        problems.append(f"{dist}: expected one wheel and one sdist, found {len(wheels)} and {len(sdists)}")
    if not bundles:
        problems.append(f"{ROOT / 'exported'}: no shipped bundles to look for")
    for w in wheels:
        problems += check_wheel(w, want, bundles)
    for s in sdists:
        problems += check_sdist(s, want, bundles)
    for p in problems:
        print(f"dist check: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"dist check: {wheels[0].name} and {sdists[0].name} ok (version {want}, bundles {', '.join(bundles)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
