"""Which Color-dSprites training seed to ship, chosen on validation images, reported on test ones.

    python benchmarks/color_dsprites_seeds.py LABEL=BUNDLE [LABEL=BUNDLE ...] [--reference LABEL=BUNDLE]

Each bundle is an export of the same recipe with another `--seed` (README, "The shipped RGB bundle").
For each, the share of images that every continuous shift of +1 moves the right way
(benchmarks/color_dsprites.py's `shift_effects`, orientation on ellipses) on two sets of 2,000
fresh images: validation (factor seed 99, colour seed 5), on which the seed is chosen (the one
whose smallest share is largest), and test (factor seed 2026, colour seed 7, the README's
figures), which plays no part in the choice. --reference bundles (the shipped one, say) are
measured the same way but not chosen from. Writes benchmarks/results/color_dsprites_seeds.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import vaegen_infer as vi
from benchmarks import write_results
from benchmarks.color_dsprites import CONTINUOUS, GOAL_SHARE, fresh_images, shift_effects
from train import dsprites

ROOT = Path(__file__).resolve().parents[1]
SETS = {"validation": (99, 5), "test": (2026, 7)}  # (factor seed, colour seed)


def shares(g: vi.Model, images: dict[str, tuple[Any, Any]]) -> dict[str, dict[str, float]]:
    """set name -> factor -> share of images moved the right way at +1."""
    out = {}
    for name, (x, shapes) in images.items():
        out[name] = {f: e["moved_right_way"] for f, e in shift_effects(g, x, shapes).items()}
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Command: `{report['command']}`, {report['started_utc']} UTC. Shares of 2,000 fresh images moved "
             "the right way at +1 (orientation: of the ellipses among them); validation: factor seed 99, colour "
             "seed 5; test: factor seed 2026, colour seed 7.", "",
             "| seed | set | " + " | ".join(CONTINUOUS) + " | smallest |",
             "|---|---|" + "---:|" * (len(CONTINUOUS) + 1)]  # fmt: skip
    for label, r in report["bundles"].items():
        for name, s in r.items():
            cells = " | ".join(f"{s[f]:.1%}" for f in CONTINUOUS)
            lines.append(f"| {label} | {name} | {cells} | {min(s.values()):.1%} |")
    chosen = report["bundles"][report["chosen"]]["test"]
    refs = f" (not {', '.join(report['references'])}, measured for reference)" if report["references"] else ""
    test = ", ".join(f"{f} {v:.1%}" for f, v in chosen.items())
    lines += ["", f"Chosen on validation (the largest smallest share){refs}: **{report['chosen']}**; "
              f"goal {GOAL_SHARE:.0%} for each. Its test shares: {test}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", help="LABEL=BUNDLE (a name or a directory), one per seed")
    ap.add_argument("--reference", action="append", default=[],
                    help="LABEL=BUNDLE measured beside the seeds but not chosen from (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    pairs = [b.split("=", 1) for b in [*args.bundles, *args.reference]]
    if any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
        sys.exit("error: give each bundle as LABEL=BUNDLE, e.g. seed0=color-dsprites")
    images = {}
    for name, (seed, colour_seed) in SETS.items():
        x, idx = fresh_images(2000, seed, colour_seed)
        images[name] = (x, dsprites.factors_of(idx).shape)
    given = sys.argv[1:] if argv is None else argv
    report: dict[str, Any] = {
        "command": " ".join(["python benchmarks/color_dsprites_seeds.py", *given]),
        "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "sets": {k: {"factor_seed": s, "colour_seed": c, "images": 2000} for k, (s, c) in SETS.items()},
        "bundles": {label: shares(vi.load(path, providers="cpu"), images) for label, path in pairs},
    }
    candidates = [label for label, _ in pairs[: len(args.bundles)]]
    report["references"] = [label for label, _ in pairs[len(args.bundles) :]]
    report["chosen"] = max(candidates, key=lambda k: min(report["bundles"][k]["validation"].values()))
    write_results(args.out, "color_dsprites_seeds", report, markdown(report))


if __name__ == "__main__":
    main()
