"""How many mixture components should color-dsprites' fitted sampler have? (`export --sampler gmm:K`)

    python benchmarks/color_dsprites_sampler.py [--bundle color-dsprites] [--components 1 10 30 100 300]

The shipped bundle's codes fill N(0, I) unevenly (the variance of mu reaches 5 in some dimensions),
so most codes drawn from the prior decode to broken shapes. For each K this fits what `python -m
train export --sampler gmm:K` fits (train.analysis.fit_mixture: a diagonal Gaussian mixture, EM,
seed 0, to one draw mu + sigma * eps per image), here on 20,000 images rendered like the training set's (grid seed
0, colour seed 0) and encoded by the bundle, and reports: the mean log-density of 2,000 other
images' codes (seed 5) under it, and benchmarks/color_dsprites.py's sample figures for 1,000 draws
(the share showing one clean shape; for those, the Wasserstein distance of x, y, area and colour to
2,000 fresh images', in their standard deviations; the shape of each one's nearest fresh image).
Writes benchmarks/results/color_dsprites_sampler.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vaegen_infer as vi  # noqa: E402  (after the path set-up: run as a script)
from benchmarks.color_dsprites import SAMPLE_PROPERTIES, fresh_images, sample_stats  # noqa: E402
from train import dsprites  # noqa: E402
from vaegen_infer.io import save_json, write_bytes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def codes(g: vi.Model, n: int, seed: int) -> np.ndarray:
    """One aggregate-posterior draw per image for n images rendered with `seed` (grid and colour)."""
    x = dsprites.render(dsprites.sample_indices(n, seed), color=True, seed=seed).astype(np.float32) / 255.0
    mu, logvar = g.encode(x)  # (n, D) each
    eps = np.random.default_rng(seed).standard_normal(mu.shape)
    return mu.astype(np.float64) + np.exp(0.5 * logvar.astype(np.float64)) * eps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="color-dsprites", help="bundle name or directory")
    parser.add_argument("--components", type=int, nargs="+", default=[1, 10, 30, 100, 300])
    args = parser.parse_args()
    from train.analysis import fit_mixture
    from vaegen_infer.priors import GaussianPrior

    started = time.time()
    g = vi.load(args.bundle, providers="cpu")
    x, idx = fresh_images(2000, 2026, 7)
    shapes = dsprites.factors_of(idx).shape
    real_props = dsprites.measure(x)
    fit, val = codes(g, 20_000, 0), codes(g, 2000, 5)
    dim = fit.shape[1]
    rows: dict[str, dict[str, Any]] = {}
    prior = GaussianPrior(dim)
    rows["prior, N(0, I)"] = {
        "val_log_density": round(float(prior.log_density(val).mean()), 2),
        **sample_stats(g.sample(1000, seed=0, from_prior=True), x, real_props, shapes),
    }
    for k in args.components:
        mix = fit_mixture(fit, k)  # what `export --sampler gmm:K` fits, on these codes
        z = mix.sample(1000, np.random.default_rng(0)).astype(np.float32)  # as Model.sample draws
        rows[f"gmm:{k}"] = {
            "val_log_density": round(float(mix.log_density(val).mean()), 2),
            **sample_stats(g.decode(z), x, real_props, shapes),
        }
        print(k, rows[f"gmm:{k}"], flush=True)
    report = {
        "command": " ".join(["python benchmarks/color_dsprites_sampler.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "bundle": args.bundle,
        "seconds": round(time.time() - started, 1),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_json(RESULTS / "color_dsprites_sampler.json", report)
    lines = [
        f"Command: `{report['command']}`, {report['date']}. Bundle `{g.name}`.",
        "",
        "| draws from | held-out codes' log-density (nats) | one clean shape | x / y / area / red / green / blue "
        "(Wasserstein, in sd) | nearest fresh image a square / ellipse / heart |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name, r in rows.items():
        w1 = " / ".join(f"{r['w1_in_real_sd'][p]:.3f}" for p in SAMPLE_PROPERTIES)
        near = " / ".join(f"{v:.1%}" for v in r["nearest_real_shape_share"].values())
        lines.append(f"| {name} | {r['val_log_density']:.2f} | {r['one_clean_shape']:.1%} | {w1} | {near} |")
    text = "\n".join(lines) + "\n"
    write_bytes(RESULTS / "color_dsprites_sampler.md", lambda fh: fh.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
