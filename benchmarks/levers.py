"""Which training levers make the VAE better? Train one variant per lever and judge it on the
validation split only (the test set is for the final report, not for choosing).

    python benchmarks/levers.py [--epochs 80] [--jobs 2] [--only NAME ...] [--combined]

Each variant is `python -m train fit ...` with one change against a reference, run `--jobs` at a
time with one torch thread each, exported, and scored by the IWAE bound (k = 200) on the 500
validation images binarised with a fixed seed, plus the digit classifier's mean confidence on
2,000 samples. `--combined` runs the COMBINED variants (winning levers together, at full length)
instead. Results: benchmarks/results/levers.json and benchmarks/levers.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "levers"
sys.path.insert(0, str(ROOT))

# name -> (what changes, fit flags). "grey" is the plain conv VAE on grey levels; every other
# variant starts from "dynamic" (binary targets, the likelihood the test protocol measures) and
# changes one thing.
REFERENCE = "--latent-dim 16 --binarize dynamic"
VARIANTS: dict[str, tuple[str, str]] = {
    "recipe-mlp": (
        "pytorch/examples recipe: 784-400-20 MLP, grey targets, last epoch",
        "--arch mlp --hidden 400 --latent-dim 20 --keep last",
    ),
    "grey": ("conv VAE, grey-level targets (BCE on intensities)", "--latent-dim 16"),
    "dynamic": ("+ dynamic binarisation (the reference for the rows below)", REFERENCE),
    "cosine": ("+ cosine learning-rate schedule", REFERENCE + " --lr-schedule cosine"),
    "warmup": ("+ KL warm-up over 10 epochs", REFERENCE + " --warmup-epochs 10"),
    "free-bits": ("+ free bits, 0.25 nats per dimension", REFERENCE + " --free-bits 0.25"),
    "augment": ("+ shifts up to 1 px and rotations up to 8 degrees", REFERENCE + " --shift 1 --rotate 8"),
    "iwae-5": ("+ IWAE objective, k = 5", REFERENCE + " --iw-samples 5"),
    "latent-32": ("+ 32-D latent", "--latent-dim 32 --binarize dynamic"),
    "deeper": ("+ one extra 3x3 convolution per resolution", REFERENCE + " --blocks 1"),
    "lr-2e-3": ("+ learning rate 2e-3", REFERENCE + " --lr 2e-3"),
}

# The winners combined, at full length: name -> (what, fit flags, epochs). Chosen on validation like
# the single levers; the lowest val NLL ships as mnist-vae (README, "Train and export").
WINNERS = "--latent-dim 32 --binarize dynamic --warmup-epochs 10"
COMBINED: dict[str, tuple[str, str, int]] = {
    "elbo-fb": ("32-D, warm-up, free bits 0.25", WINNERS + " --free-bits 0.25", 300),
    "elbo-fb-ema": ("32-D, warm-up, free bits 0.25, weight EMA 0.999", WINNERS + " --free-bits 0.25 --ema 0.999", 150),
    "iwae-ema": ("32-D, warm-up, IWAE k = 5, weight EMA 0.999", WINNERS + " --iw-samples 5 --ema 0.999", 150),
    "iwae-ema-64": (
        "64-D, warm-up, IWAE k = 5, weight EMA 0.999",
        "--latent-dim 64 --binarize dynamic --warmup-epochs 10 --iw-samples 5 --ema 0.999",
        150,
    ),
}

# Against overfitting: the shipped model scores 83.8 nats on 500 of its training images and 92.5 on
# validation (IWAE, k = 200), so regularisers are the next levers. Each row starts from `elbo-fb-ema`
# (three times faster to train than the IWAE runs) and adds one; the winner then goes on the IWAE run.
FB_EMA = WINNERS + " --free-bits 0.25 --ema 0.999"
REGULARISED: dict[str, tuple[str, str, int]] = {
    "fb-ema-drop-0.1": ("elbo-fb-ema + dropout 0.1", FB_EMA + " --dropout 0.1", 150),
    "fb-ema-drop-0.2": ("elbo-fb-ema + dropout 0.2", FB_EMA + " --dropout 0.2", 150),
    "fb-ema-wd-0.05": ("elbo-fb-ema + weight decay 0.05 (AdamW)", FB_EMA + " --weight-decay 0.05", 150),
}

# Beyond the iwae-ema recipe: a learned prior, the VampPrior (Tomczak & Welling 2018), and a better
# encoder gradient, DReG (Tucker et al. 2018), each on its own; Δ against `iwae-ema`.
IWAE_EMA = WINNERS + " --iw-samples 5 --ema 0.999"
BEYOND: dict[str, tuple[str, str, int]] = {
    "iwae-ema-vamp-500": ("iwae-ema + VampPrior, 500 pseudo-inputs", IWAE_EMA + " --prior vamp", 150),
    "iwae-ema-dreg": ("iwae-ema with the DReG encoder gradient", IWAE_EMA + " --iw-estimator dreg", 150),
    "iwae-ema-vamp-dreg": (
        "iwae-ema + VampPrior + DReG (shipped; 2 torch threads)",
        IWAE_EMA + " --prior vamp --iw-estimator dreg",
        150,
    ),
}


def train_and_score(
    name: str, flags: str, epochs: int, runs: Path = RUNS, prefix: str = "lever", script: Path = Path(__file__)
) -> dict[str, object]:
    """Fit RUNS/NAME with one torch thread on mnist-5k, export it, and score the bundle with
    `script --score BUNDLE` in a fresh process (so each score gets its own memory and threads)."""
    run = runs / name
    bundle = run / "bundle"
    log = run / "log.txt"
    run.mkdir(parents=True, exist_ok=True)
    started = time.time()
    fit = [sys.executable, "-m", "train", "fit", "--data", "mnist-5k", "--epochs", str(epochs), "--threads", "1",
           "--quiet", "--out", str(run), *shlex.split(flags)]  # fmt: skip
    export = [sys.executable, "-m", "train", "export", str(run), "-o", str(bundle), "--name", f"{prefix}-{name}"]
    with open(log, "w") as fh:
        for cmd in (fit, export):
            subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, check=True)
    minutes = (time.time() - started) / 60
    result = score_in_subprocess(script, bundle)
    result.update({"flags": flags, "epochs": epochs, "train_minutes": round(minutes, 1)})
    print(f"{name}: {result}", flush=True)
    return result


def score_in_subprocess(script: Path, bundle: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(Path(script).resolve()), "--score", str(bundle)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_variants(
    names: list[str], plan: dict[str, tuple[str, int]], out_json: Path, jobs: int, rescore: bool,
    runs: Path = RUNS, prefix: str = "lever", script: Path = Path(__file__),
) -> dict[str, dict[str, object]]:  # fmt: skip
    """Train and score each named variant of PLAN (name -> (fit flags, epochs)), JOBS at a time, or
    with RESCORE score the existing bundles again; merge into OUT_JSON and return every row."""
    fresh: dict[str, dict[str, object]] = {}
    if rescore:
        earlier = json.loads(out_json.read_text()) if out_json.exists() else {}
        for n in names:
            if n in earlier and (runs / n / "bundle" / "model.json").is_file():
                fresh[n] = {**earlier[n], **score_in_subprocess(script, runs / n / "bundle")}
                print(f"{n}: {fresh[n]}", flush=True)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {n: pool.submit(train_and_score, n, *plan[n], runs, prefix, script) for n in names}
            for n, fut in futures.items():
                try:
                    fresh[n] = fut.result()
                except subprocess.CalledProcessError as exc:  # keep the others' results; say which failed
                    print(f"{n}: failed ({exc}); see {runs / n / 'log.txt'}", file=sys.stderr, flush=True)
    # Read the file again just before writing, so runs started in parallel do not drop each other's rows.
    results = json.loads(out_json.read_text()) if out_json.exists() else {}
    results.update(fresh)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2) + "\n")
    return results


def variant_parser(doc: str) -> argparse.ArgumentParser:
    """The command line every lever script shares: --jobs, --only, --rescore (and --score BUNDLE,
    which train_and_score calls in a fresh process)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="Run these variants only (results are merged).")
    parser.add_argument("--rescore", action="store_true", help="Score the existing runs again, no training.")
    parser.add_argument("--score", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def run_variant_cli(
    args: argparse.Namespace, variants: dict[str, tuple[str, str, int]], score: Callable[[Path], dict[str, object]],
    write_table: Callable[[dict[str, dict[str, object]]], None], out_json: Path, runs: Path, prefix: str, script: Path,
) -> None:  # fmt: skip
    """What variant_parser's arguments ask: score one bundle, or train and score the chosen variants
    (name -> (what changes, fit flags, epochs)), merge them into OUT_JSON and write the table."""
    if args.score is not None:
        print(json.dumps(score(args.score)))
        return
    names = args.only or list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        raise SystemExit(f"error: unknown variants {unknown}; known: {', '.join(variants)}")
    plan = {n: (flags, epochs) for n, (_, flags, epochs) in variants.items()}
    write_table(run_variants(names, plan, out_json, args.jobs, args.rescore, runs=runs, prefix=prefix, script=script))


def score(bundle: Path) -> dict[str, object]:
    """Validation IWAE (k = 200) and sample confidence, through the exported graphs."""
    import vaegen_infer
    from train.classifier import load_classifier, sample_quality
    from train.data import load_mnist_5k
    from train.evaluate import BINARIZE_SEED, active_units, iwae
    from vaegen_infer.datasets import binarize

    g = vaegen_infer.load(bundle, providers="cpu")
    x_val = binarize(load_mnist_5k().x_val, BINARIZE_SEED)
    out = iwae(g, x_val, k=200, quiet=True)
    quality = sample_quality(g.sample(2000, seed=0), classifier=load_classifier())
    return {
        "val_nll": round(float(-out["log_likelihood"].mean()), 2),
        "val_elbo": round(float(-(out["rec"] + out["kl"]).mean()), 2),
        "val_kl": round(float(out["kl"].mean()), 2),
        "active_units": active_units(out["mu"]),
        "sample_confidence": round(float(quality["confidence"]), 4),
        "best_epoch": g.manifest.training["summary"].get("best_epoch"),
        "bundle_mb": round(sum(p.stat().st_size for p in Path(bundle).glob("*.onnx")) / 1e6, 2),
        "n_val": len(x_val),
        "class_kl_from_uniform": round(float(quality["kl_from_uniform_nats"]), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="Run these variants only (results are merged).")
    parser.add_argument("--combined", action="store_true", help="Run the combined variants at full length.")
    parser.add_argument("--regularised", action="store_true", help="Run the regularisation variants.")
    parser.add_argument("--rescore", action="store_true", help="Score the existing runs again, no training.")
    parser.add_argument("--score", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.score is not None:
        print(json.dumps(score(args.score)))
        return
    plan = {n: (flags, args.epochs) for n, (_, flags) in VARIANTS.items()}
    plan.update({n: (flags, epochs) for n, (_, flags, epochs) in {**COMBINED, **REGULARISED, **BEYOND}.items()})
    group = REGULARISED if args.regularised else COMBINED if args.combined else VARIANTS
    names = args.only or list(group)
    unknown = [n for n in names if n not in plan]
    if unknown:
        raise SystemExit(f"error: unknown variants {unknown}; known: {', '.join(plan)}")
    out_json = ROOT / "benchmarks" / "results" / "levers.json"
    write_table(run_variants(names, plan, out_json, args.jobs, args.rescore))


def _row(name: str, what: str, r: dict[str, object], delta: str) -> str:
    cells = [
        name, what, f"{r['val_nll']:.2f}", delta, f"{r['val_elbo']:.2f}", f"{r['val_kl']:.1f}",
        str(r["active_units"]), f"{r['sample_confidence']:.3f}", f"{r['epochs']} ({r['best_epoch']})",
        str(r["train_minutes"]),
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


# The later sections of levers.md: (title, variants, the row Δ is measured against, text under the title).
SECTIONS: list[tuple[str, dict[str, tuple[str, str, int]], str, list[str]]] = [
    (
        "The winners combined, at full length",
        COMBINED,
        "dynamic",
        [
            "Same scoring; Δ is still against the 80-epoch `dynamic` reference. The lowest validation NLL here,",
            "`iwae-ema`, is the base of the sections below. Training minutes are with one torch thread, two runs",
            "sharing the 2 cores. Command:",
            "`python benchmarks/levers.py --combined`.",
        ],
    ),
    (
        "Against overfitting",
        REGULARISED,
        "elbo-fb-ema",
        [
            "`iwae-ema` scored 83.8 nats on 500 of its training images and 92.5 on validation (same",
            "scoring), so regularisers come next. Each starts from `elbo-fb-ema` (150 epochs); Δ is against it.",
            "Command: `python benchmarks/levers.py --regularised`.",
        ],
    ),
    (
        "Beyond the iwae-ema recipe",
        BEYOND,
        "iwae-ema",
        [
            "A learned prior, the VampPrior (Tomczak & Welling 2018: p(z) is the mean of the encoder's posteriors",
            "at K learned pseudo-inputs, exported as a `gaussian-mixture` prior in `model.json`), and the doubly",
            "reparameterised encoder gradient DReG (Tucker et al. 2018). Δ is against `iwae-ema`. Command:",
            "`python benchmarks/levers.py --only NAME`. The VampPrior won on both counts, 0.65 nats lower and",
            "far more confident samples (0.983 against 0.905); retrained with two torch threads it scored 92.06",
            "(the thread count changes float sums, and so the trajectory). DReG on top of it gave 91.21 with",
            "the same sample confidence, and ships as `mnist-vae` (trained with two threads: the README's",
            "command). DReG alone is implemented and tested (tests/test_training.py) but was not run.",
        ],
    ),
]


def _delta(results: dict[str, dict[str, object]], name: str, against: str) -> str:
    ref = results.get(against, {}).get("val_nll")
    if ref is None or name == against:
        return "-"
    return f"{results[name]['val_nll'] - ref:+.2f}"  # type: ignore[operator]


def write_table(results: dict[str, dict[str, object]]) -> None:
    header = ["variant", "what changes", "val NLL", "Δ", "val ELBO", "KL", "active units", "sample confidence"]
    header += ["epochs (best)", "train min"]
    table = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines = [
        "# Training levers for the VAE, judged on validation",
        "",
        "Each row trains `python -m train fit --data mnist-5k --epochs E --threads 1 <flags>` (seed 0) and scores",
        "the exported bundle on the 500 validation images of the 5k split, binarised with seed 0: IWAE bound",
        "with k = 200 (nats, lower is better), one-sample ELBO, and the digit classifier's mean confidence on",
        "2,000 samples. Δ is against the `dynamic` reference. Command: `python benchmarks/levers.py`.",
        "",
        *table,
    ]
    lines += [_row(n, VARIANTS[n][0], r, _delta(results, n, "dynamic")) for n, r in results.items() if n in VARIANTS]
    for title, group, against, text in SECTIONS:
        rows = [_row(n, group[n][0], r, _delta(results, n, against)) for n, r in results.items() if n in group]
        if rows:
            lines += ["", f"## {title}", "", *text, "", *table, *rows]
    for name in ("aae-levers.md", "saae-levers.md"):  # written by benchmarks/aae_levers.py, saae_levers.py
        section = ROOT / "benchmarks" / "results" / name
        if section.is_file():
            lines += ["", section.read_text().rstrip("\n")]
    (ROOT / "benchmarks" / "levers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
