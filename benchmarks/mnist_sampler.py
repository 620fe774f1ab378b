"""Would a fitted sampler (`export --sampler gmm:K`) help the shipped MNIST VAEs?

    python benchmarks/mnist_sampler.py [--models mnist-vae mnist-vae-2d] [--components 10 100]

For each bundle: one draw mu + sigma * eps per image of the 5k subset's 4,500 training images (as
the exporter draws them, through the bundle's encoder), a K-component diagonal mixture fitted to
them by train.analysis.fit_mixture (the exporter's), and 10,000 samples (seed 0) from the prior and
from each mixture, judged like benchmarks/aae_expost_prior.py without the test set: the digit
classifier's mean confidence, class balance (KL from uniform) and the Frechet distance to the
training images in the classifier's feature space; beside them the mean log-density of the 500
validation images' codes under each (nats per code), the exporter's sampler check.
Writes benchmarks/results/mnist_sampler.json and .md.
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
from train.analysis import fit_mixture  # noqa: E402
from train.classifier import frechet_distance, load_classifier, sample_quality  # noqa: E402
from train.data import load_mnist_5k, to_float  # noqa: E402
from vaegen_infer.io import save_json, write_bytes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mnist-vae", "mnist-vae-2d"])
    parser.add_argument("--components", type=int, nargs="+", default=[10, 100])
    args = parser.parse_args()
    started = time.time()
    split = load_mnist_5k()
    x_train, x_val = to_float(split.x_train[:]), to_float(split.x_val[:])  # (4500|500, 1, 28, 28)
    clf = load_classifier()
    _, f_train = clf.predict(x_train)

    def judge(samples: np.ndarray) -> dict[str, float]:
        quality = sample_quality(samples, classifier=clf)
        _, feats = clf.predict(samples)
        return {
            "fd_to_train": round(float(frechet_distance(feats, f_train)), 1),
            "confidence": round(float(quality["confidence"]), 3),
            "class_kl_from_uniform": round(float(quality["kl_from_uniform_nats"]), 3),
        }

    report: dict[str, Any] = {"command": " ".join(["python benchmarks/mnist_sampler.py", *sys.argv[1:]]),
                              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "models": {}}  # fmt: skip
    for name in args.models:
        g = vi.load(name, providers="cpu")
        rng = np.random.default_rng(0)
        mu, logvar = g.encode(x_train)
        codes = mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)  # (4500, D)
        mu_v, logvar_v = g.encode(x_val)
        val = mu_v + np.exp(0.5 * logvar_v) * rng.standard_normal(mu_v.shape)  # (500, D)
        rows = {f"prior ({g.prior.name})": {"val_log_density": round(float(g.prior.log_density(val).mean()), 2),
                                            **judge(g.sample(10_000, seed=0, from_prior=True))}}  # fmt: skip
        for k in args.components:
            mix = fit_mixture(codes, k)
            z = mix.sample(10_000, np.random.default_rng(0)).astype(np.float32)  # as Model.sample draws
            rows[f"gmm:{k}"] = {"val_log_density": round(float(mix.log_density(val).mean()), 2), **judge(g.decode(z))}
        report["models"][name] = rows
        print(name, rows, flush=True)
    report["seconds"] = round(time.time() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_json(RESULTS / "mnist_sampler.json", report)
    lines = [f"Command: `{report['command']}`, {report['date']}.", "",
             "| bundle | codes drawn from | validation codes' log-density (nats) | FD to training images | confidence "
             "| class KL from uniform |", "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, rows in report["models"].items():
        for source, r in rows.items():
            lines.append(f"| {name} | {source} | {r['val_log_density']:.2f} | {r['fd_to_train']:.1f} | "
                         f"{r['confidence']:.3f} | {r['class_kl_from_uniform']:.3f} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    write_bytes(RESULTS / "mnist_sampler.md", lambda fh: fh.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
