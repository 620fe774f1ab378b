"""Would a prior fitted to the codes make mnist-aae-gen's samples better? (issue 19, a lever)

    python benchmarks/aae_expost_prior.py [--model exported/mnist-aae-gen] [--components 1 10 50 200]
                                          [--temperatures 0.9 0.8 0.7]

Ex-post density estimation (Ghosh et al. 2020, "From variational to deterministic autoencoders"):
instead of sampling codes from the prior the AAE was trained against, N(0, I), fit a K-component
diagonal Gaussian mixture (scikit-learn, EM, seed 0) to the encoder's codes of the 4,500 training
images and sample from it. And the plainer lever: draw from N(0, t^2 I), a temperature t < 1 (codes
nearer the prior's centre, where the training codes are densest). Scored like
benchmarks/aae_levers.py, without the test set: 10,000 samples (seed 0), the digit classifier's
mean confidence and class balance (KL from uniform), the Frechet distance to the training images in
the classifier's feature space, and the Parzen log-likelihood of 250 validation images with the
window chosen on the other 250.
Writes benchmarks/results/aae-expost-prior.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vaegen_infer as vi  # noqa: E402  (after the path set-up: run as a script)
from train.classifier import frechet_distance, load_classifier, sample_quality  # noqa: E402
from train.data import load_mnist_5k, to_float  # noqa: E402
from train.evaluate import parzen_log_likelihood, parzen_sigma  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "exported" / "mnist-aae-gen"))
    parser.add_argument("--components", type=int, nargs="+", default=[1, 10, 50, 200])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.9, 0.8, 0.7])
    args = parser.parse_args()
    from sklearn.mixture import GaussianMixture

    g = vi.load(args.model, providers="cpu")
    split = load_mnist_5k()
    x_train, x_val = to_float(split.x_train[:]), to_float(split.x_val[:])  # (4500|500, 1, 28, 28)
    codes, _ = g.encode(x_train)  # (4500, D): a deterministic encoder's codes
    clf = load_classifier()
    _, f_train = clf.predict(x_train)

    def score(samples: np.ndarray) -> dict[str, float]:
        quality = sample_quality(samples, classifier=clf)
        _, f_samples = clf.predict(samples)
        sigma = parzen_sigma(samples, x_val[:250])
        return {
            "fd_to_train": round(float(frechet_distance(f_samples, f_train)), 1),
            "sample_confidence": round(float(quality["confidence"]), 3),
            "class_kl_from_uniform": round(float(quality["kl_from_uniform_nats"]), 3),
            "val_parzen": round(float(parzen_log_likelihood(samples, x_val[250:], sigma).mean()), 1),
        }

    rows: dict[str, dict[str, float]] = {"trained prior, N(0, I)": score(g.sample(10_000, seed=0))}
    print(rows)
    z0 = g.sample_latents(10_000, seed=0)  # (10000, D), the draws of the row above
    for t in args.temperatures:
        rows[f"N(0, I) at temperature {t}"] = score(g.decode((t * z0).astype(np.float32)))
        print(t, rows[f"N(0, I) at temperature {t}"], flush=True)
    for k in args.components:
        gmm = GaussianMixture(k, covariance_type="diag", random_state=0, reg_covar=1e-4).fit(codes)
        z, _ = gmm.sample(10_000)  # sorted by component: shuffle so every batch mixes them
        z = z[np.random.default_rng(0).permutation(len(z))].astype(np.float32)
        rows[f"ex-post GMM, K = {k}"] = score(g.decode(z))
        print(k, rows[f"ex-post GMM, K = {k}"], flush=True)
    out = {
        "model": g.name,
        "command": shlex.join(["python", "benchmarks/aae_expost_prior.py", *sys.argv[1:]]),
        "code_mean": np.round(codes.mean(0), 2).tolist(),
        "code_std": np.round(codes.std(0), 2).tolist(),
        "rows": rows,
    }
    path = ROOT / "benchmarks" / "results" / "aae-expost-prior.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
