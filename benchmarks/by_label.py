"""Re-measure the by-label sample figures of the label-conditioned bundles and write them into
their model.json (`metrics.samples.by_label_*`), without re-running the rest of `train evaluate`.

    python benchmarks/by_label.py [--per 1000] [--seed 0] [NAME ...]

Samples are drawn with the library's one per-label rule (label i with seed + i,
`Model.sample_per_label`) and judged by the measuring classifier (train/classifier.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import vaegen_infer as vi
from train.evaluate import _classifier, by_label_metrics
from vaegen_infer.io import save_json

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["mnist-aae", "mnist-aae-swissroll"])
    parser.add_argument("--per", type=int, default=1000, help="samples per label")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    clf_mod = _classifier()
    clf = clf_mod.load_classifier()
    for name in args.names:
        path = ROOT / "exported" / name / "model.json"
        data = json.loads(path.read_text())
        g = vi.load(path.parent, providers="cpu")
        new = by_label_metrics(g, clf_mod, clf, args.per, args.seed)
        old = data["metrics"].get("samples", {}).get("by_label_recognised")
        data["metrics"].setdefault("samples", {}).update(new)
        save_json(path, data)
        per_label = new["by_label_recognised_per_label"]
        print(f"{name}: by_label_recognised {old} -> {new['by_label_recognised']} (per label {per_label})")


if __name__ == "__main__":
    main()
