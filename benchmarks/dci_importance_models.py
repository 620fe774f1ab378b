"""Can a faster classifier stand in for DCI's gradient boosting? (train/disentangle.py)

    python benchmarks/dci_importance_models.py [--mix 0.1 0.3]

On dSprites-sized factors (3, 6, 40, 32, 32 values) and 10-D codes (each factor in its own
dimension, plus `mix` times a random mixing into all ten, plus noise), at disentanglement_lib's
10,000 training and 5,000 test points, prints one JSON line per (mix, model): disentanglement,
completeness, test informativeness and seconds; appends them to
benchmarks/results/dci_importance_models.jsonl. Gradient boosting takes several minutes per mix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = np.array([3, 6, 40, 32, 32])


class Factors:
    factor_sizes = tuple(int(s) for s in SIZES)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(0, s, n) for s in SIZES], 1)

    def render(self, factors: np.ndarray) -> np.ndarray:
        return factors.astype(np.float64)


def representation(mix: float, seed: int = 0):  # type: ignore[no-untyped-def]
    w = np.zeros((5, 10))
    w[np.arange(5), np.arange(5)] = 1.0
    w += mix * np.random.default_rng(seed).normal(size=(5, 10))
    noise = np.random.default_rng(seed + 1)

    def rep(x: np.ndarray) -> np.ndarray:
        u = (x + 0.5) / SIZES - 0.5  # factor values in (-0.5, 0.5)
        return u @ w + 0.02 * noise.normal(size=(len(x), 10))

    return rep


def main() -> None:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    from train import disentangle as dis

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", type=float, nargs="+", default=[0.1, 0.3])
    args = parser.parse_args()
    models = {
        "gbt": lambda: GradientBoostingClassifier(random_state=0),
        "rf-all-leaf5": lambda: RandomForestClassifier(100, max_features=None, min_samples_leaf=5, random_state=0),
        "rf-sqrt-leaf5": lambda: RandomForestClassifier(100, min_samples_leaf=5, random_state=0),
    }
    out = ROOT / "benchmarks" / "results" / "dci_importance_models.jsonl"
    for mix in args.mix:
        rng = np.random.default_rng(0)
        rep = representation(mix)
        ct, ft = dis.sample_codes(Factors(), rep, 10_000, rng)
        ce, fe = dis.sample_codes(Factors(), rep, 5_000, rng)
        for name, make in models.items():
            t = time.time()
            imp = np.zeros((ct.shape[1], ft.shape[1]))
            acc = []
            for j in range(ft.shape[1]):
                clf = make().fit(ct, ft[:, j])
                imp[:, j] = clf.feature_importances_
                acc.append(np.mean(clf.predict(ce) == fe[:, j]))
            d, c = dis.dci_scores(imp)
            row = {"mix": mix, "model": name, "D_C_I": [round(d, 3), round(c, 3), round(float(np.mean(acc)), 3)],
                   "seconds": round(time.time() - t, 1)}  # fmt: skip
            print(json.dumps(row), flush=True)
            with out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
