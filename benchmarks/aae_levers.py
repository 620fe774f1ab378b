"""Which levers make the AAE a good generator? Train one variant per lever on mnist-5k and judge it
on data that is not the test set (the test set is for the shipped model's report, not for choosing).

    python benchmarks/aae_levers.py [--jobs 2] [--only NAME ...] [--rescore]
    python benchmarks/aae_levers.py --references ../shared/data/mnist   # Parzen of real data, k-means

Each variant is `python -m train fit --model aae --data mnist-5k --threads 1 ...`, run `--jobs` at a
time, exported, and scored through its ONNX graphs on 10,000 samples (seed 0):
  - Parzen log-likelihood of 250 validation images, the window chosen on the other 250 (the test
    protocol of `train evaluate`, moved to validation data);
  - the digit classifier's mean confidence and class balance (KL from uniform, nats);
  - the Frechet distance in the classifier's feature space to the 4,500 training images;
  - for a Gaussian posterior, the IWAE bound (k = 200) on the 500 validation images, binarised.
Results: benchmarks/results/aae-levers.json and the "AAE as a generator" section of
benchmarks/levers.md (written by benchmarks/levers.py, which includes benchmarks/results/aae-levers.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "aae-levers"
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from benchmarks.levers import run_variant_cli, variant_parser  # noqa: E402  (after the path set-up: run as a script)

BASE = "--model aae --prior gaussian --binarize dynamic"
# name -> (what changes, fit flags, epochs)
VARIANTS: dict[str, tuple[str, str, int]] = {
    "d8": ("8-D code, deterministic encoder, Gaussian prior", BASE + " --latent-dim 8", 100),
    "d16": ("16-D code", BASE + " --latent-dim 16", 100),
    "d8-slow-gen": (
        "8-D, encoder's step against the discriminator 2e-4 (was 1e-3), 5 reconstruction-only epochs first",
        BASE + " --latent-dim 8 --lr-gen 2e-4 --warmup-epochs 5",
        100,
    ),
    "d8-slow-gen-gpost": (
        "d8-slow-gen with a Gaussian-posterior encoder",
        BASE + " --latent-dim 8 --lr-gen 2e-4 --warmup-epochs 5 --posterior gaussian",
        100,
    ),
    "d8-slow-gen-ema": (
        "d8-slow-gen + weight EMA 0.999",
        BASE + " --latent-dim 8 --lr-gen 2e-4 --warmup-epochs 5 --ema 0.999",
        100,
    ),
    "d8-slow-gen-gpost-ema": (
        "d8-slow-gen, Gaussian posterior, weight EMA 0.999",
        BASE + " --latent-dim 8 --lr-gen 2e-4 --warmup-epochs 5 --posterior gaussian --ema 0.999",
        100,
    ),
    "d8-slow-gen-noise": (
        "d8-slow-gen + instance noise 0.3 on the discriminator's inputs",
        BASE + " --latent-dim 8 --lr-gen 2e-4 --warmup-epochs 5 --disc-noise 0.3",
        100,
    ),
    "d8-slow-gen-fast-disc": (
        "d8-slow-gen with the discriminator's step at 3e-4 (was 1e-4)",
        BASE + " --latent-dim 8 --lr-gen 2e-4 --warmup-epochs 5 --lr-disc 3e-4",
        100,
    ),
    "d16-slow-gen": ("d8-slow-gen with a 16-D code", BASE + " --latent-dim 16 --lr-gen 2e-4 --warmup-epochs 5", 100),
    "d4-slow-gen": ("d8-slow-gen with a 4-D code", BASE + " --latent-dim 4 --lr-gen 2e-4 --warmup-epochs 5", 100),
    "d8-slow-gen-wide-disc": (
        "d8-slow-gen with a discriminator twice as wide (1,024 units)",
        BASE + " --latent-dim 8 --lr-gen 2e-4 --warmup-epochs 5 --disc-hidden 1024",
        100,
    ),
    "d8-slow-gen-e200": (
        "d8-slow-gen trained twice as long",
        BASE + " --latent-dim 8 --lr-gen 2e-4 --warmup-epochs 5",
        200,
    ),
    "d8-slow-gen-e300": (
        "d8-slow-gen trained three times as long",
        BASE + " --latent-dim 8 --lr-gen 2e-4 --warmup-epochs 5",
        300,
    ),
    "d8-slow-gen-e400": (
        "d8-slow-gen trained four times as long",
        BASE + " --latent-dim 8 --lr-gen 2e-4 --warmup-epochs 5",
        400,
    ),
}


def score(bundle: Path) -> dict[str, object]:
    """Validation Parzen, sample confidence / balance / FD, and (Gaussian posterior) validation IWAE."""

    import vaegen_infer
    from train.classifier import frechet_distance, load_classifier, sample_quality
    from train.data import load_mnist_5k, to_float
    from train.evaluate import BINARIZE_SEED, iwae, parzen_log_likelihood, parzen_sigma
    from vaegen_infer.datasets import binarize

    g = vaegen_infer.load(bundle, providers="cpu")
    split = load_mnist_5k()
    x_val = to_float(split.x_val[:])  # (500, 1, 28, 28) grey levels
    x_train = to_float(split.x_train[:])  # (4500, 1, 28, 28)
    samples = g.sample(10_000, seed=0)
    choose, report = x_val[:250], x_val[250:]
    sigma = parzen_sigma(samples, choose)
    parzen = parzen_log_likelihood(samples, report, sigma)
    clf = load_classifier()
    quality = sample_quality(samples, classifier=clf)
    _, f_samples = clf.predict(samples)
    _, f_train = clf.predict(x_train)
    out: dict[str, object] = {
        "val_parzen": round(float(parzen.mean()), 1),
        "parzen_sigma": round(sigma, 4),
        "sample_confidence": round(float(quality["confidence"]), 4),
        "class_kl_from_uniform": round(float(quality["kl_from_uniform_nats"]), 4),
        "fd_to_train": round(float(frechet_distance(f_samples, f_train)), 2),
        "bundle_mb": round(sum(p.stat().st_size for p in Path(bundle).glob("*.onnx")) / 1e6, 2),
    }
    if g.manifest.training["model_config"].get("posterior") == "gaussian" and g.prior.has_density:
        bound = iwae(g, binarize(split.x_val[:], BINARIZE_SEED), k=200, quiet=True)
        out["val_nll"] = round(float(-bound["log_likelihood"].mean()), 2)
    return out


def references(mnist_dir: Path) -> dict[str, object]:
    """The test protocol of `train evaluate` (window chosen on the 500 validation images, all 10,000
    test images) applied to stand-ins for samples: the 4,500 training images themselves and k-means
    centroids of them (Theis, van den Oord and Bethge 2016: Parzen rewards prototypes). 4,500
    centroids of 4,500 images would be the images, so the centroid counts are below that."""
    import numpy as np

    import vaegen_infer
    from train.data import load_mnist_5k, to_float
    from train.evaluate import _sq_distances, parzen_log_likelihood, parzen_sigma
    from vaegen_infer.datasets import load_idx_dir

    split = load_mnist_5k()
    x_val, x_train = to_float(split.x_val[:]), to_float(split.x_train[:])
    x_test, _ = load_idx_dir(str(mnist_dir), "test")

    def parzen(samples: np.ndarray) -> dict[str, float]:
        sigma = parzen_sigma(samples, x_val)
        ll = parzen_log_likelihood(samples, x_test, sigma)
        return {"parzen": round(float(ll.mean()), 1), "sem": round(float(ll.std() / np.sqrt(len(ll))), 1),
                "sigma": round(sigma, 4), "n": len(samples)}  # fmt: skip

    flat = x_train.reshape(len(x_train), -1).astype(np.float64)  # (4500, 784)

    def kmeans(k: int, iterations: int = 30) -> np.ndarray:
        """Lloyd's algorithm from k training images drawn with seed 0 -> (k, 1, 28, 28) centroids."""
        centres = flat[np.random.default_rng(0).choice(len(flat), k, replace=False)].copy()
        for _ in range(iterations):
            nearest = _sq_distances(x_train, centres.reshape(k, 1, 28, 28)).argmin(1)
            for j in range(k):
                if (nearest == j).any():
                    centres[j] = flat[nearest == j].mean(0)
        return centres.reshape(k, 1, 28, 28).astype(np.float32)

    out: dict[str, object] = {"training images (4,500)": parzen(x_train)}
    for k in (300, 1000, 2000):
        out[f"k-means centroids of them ({k:,})"] = parzen(kmeans(k))
    vae = vaegen_infer.load("mnist-vae", providers="cpu")
    out["mnist-vae samples (10,000)"] = parzen(vae.sample(10_000, seed=0))
    out["protocol"] = (
        "Parzen log-likelihood of all 10,000 MNIST test images (grey levels); window from 19 values in "
        "[0.05, 0.5] maximising the 500 validation images' log-likelihood; k-means: Lloyd, 30 iterations, seed 0"
    )
    return out


def write_table(results: dict[str, dict[str, object]]) -> None:
    """benchmarks/results/aae-levers.md, the section levers.md includes."""
    header = ["variant", "what changes", "val Parzen", "σ", "sample confidence", "class KL", "FD to train",
              "val NLL", "epochs", "train min"]  # fmt: skip
    lines = [
        "## The AAE as a generator",
        "",
        "Each row trains `python -m train fit --model aae --data mnist-5k --epochs E --threads 1 <flags>`",
        "(seed 0; two to four runs shared the 2 cores, so the minutes are loaded ones) and scores the exported",
        "bundle on 10,000 samples (seed 0),",
        "without the test set: Parzen log-likelihood of 250 validation images with the window chosen on the",
        "other 250 (nats, higher is better), the digit classifier's mean confidence and class balance (KL",
        "from uniform, nats), the Frechet distance to the 4,500 training images in the classifier's feature",
        "space, and for a Gaussian posterior the IWAE bound (k = 200) on the 500 validation images.",
        "Command: `python benchmarks/aae_levers.py [--only NAME]`.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    for name, r in results.items():
        if name not in VARIANTS:
            continue
        nll = f"{r['val_nll']:.2f}" if "val_nll" in r else "-"
        cells = [
            name, VARIANTS[name][0], f"{r['val_parzen']:.1f}", f"{r['parzen_sigma']:.3f}",
            f"{r['sample_confidence']:.3f}", f"{r['class_kl_from_uniform']:.3f}", f"{r['fd_to_train']:.2f}", nll,
            str(r["epochs"]), str(r["train_minutes"]),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    (RESULTS / "aae-levers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _include_in_levers_md("\n".join(lines))


def _include_in_levers_md(section: str) -> None:
    """Replace (or append) this section in benchmarks/levers.md, leaving every other section as it is."""
    path = ROOT / "benchmarks" / "levers.md"
    text = path.read_text() if path.is_file() else ""
    heading = "\n" + section.splitlines()[0] + "\n"
    head, found, rest = text.partition(heading)
    tail = ""
    if found:  # the old section runs to the next "## " heading, or to the end
        _, nxt, after = rest.partition("\n## ")
        tail = "\n## " + after if nxt else ""
    head = head.rstrip("\n")
    path.write_text((head + "\n\n" if head else "") + section.rstrip("\n") + "\n" + tail)


def main() -> None:
    parser = variant_parser(__doc__)
    parser.add_argument(
        "--references", type=Path, default=None, metavar="MNIST_DIR",
        help="Instead: the test Parzen figure of the training images, k-means centroids and mnist-vae's samples.",
    )  # fmt: skip
    args = parser.parse_args()
    if args.references is not None:
        refs = references(args.references)
        (RESULTS / "parzen-references.json").write_text(json.dumps(refs, indent=2) + "\n")
        print(json.dumps(refs, indent=2))
        return
    run_variant_cli(args, VARIANTS, score, write_table, RESULTS / "aae-levers.json", RUNS, "aae-lever", Path(__file__))


if __name__ == "__main__":
    main()
