"""What the objective buys on dSprites (issue 14): plain ELBO, beta-VAE and beta-TCVAE with the same
architecture and the same number of training images, measured with MIG, the FactorVAE metric and
DCI (train/disentangle.py, disentanglement_lib's protocol) through each model's exported encoder.

Each model trains into runs/disentangle/NAME-sSEED/ (checkpoint.pt, resume.pt) unless a finished
checkpoint for the same settings is there already, in which case it is loaded, not retrained; a run
stopped by --max-minutes is continued with issue 9's resume (train.fit.fit_vae(resume=True)). Each is
exported to RUN/bundle (with its `latent_factors`) and evaluated there.

The run behind the README's table (each model trained in its own process, the four at once, then the
table run loads them all; 300,000 images per model, about 55 minutes each on the shared 2-core
machine at 90 images/s, then several minutes of DCI per model at the full protocol):

    A="--images 300000 --epochs 10 --beta-vae 4 --beta-tcvae 6 --threads 1"
    python benchmarks/disentangle.py $A --seeds 0 --only beta-tcvae &
    python benchmarks/disentangle.py $A --seeds 1 --only beta-tcvae &
    python benchmarks/disentangle.py $A --baseline-seeds 0 --only elbo &
    python benchmarks/disentangle.py $A --baseline-seeds 0 --only beta-vae &
    wait; python benchmarks/disentangle.py $A --seeds 0,1 --baseline-seeds 0 --ship beta-tcvae-s1

The MLP table (benchmarks/results/disentangle-mlp/; the four at once, about 15 minutes of training
each, 303 s for one run alone with 2 threads):

    A="--images 1600000 --epochs 16 --beta-vae 4 --beta-tcvae 6 --threads 1 --arch mlp --hidden 200 --blocks 3 \\
       --batch-size 256 --runs runs/disentangle-mlp"
    (the same four --only runs as above, then)
    python benchmarks/disentangle.py $A --seeds 0,1 --baseline-seeds 0 --out benchmarks/results/disentangle-mlp

Smoke test (what was run, about a minute; the figures mean nothing at this size):

    nice -n 19 python benchmarks/disentangle.py --images 512 --n-images 2000 --image-size 32 \\
        --widths 4,8,8 --hidden 32 --points 100 --seeds 0 --runs /tmp/disent-smoke --out /tmp/disent-smoke

Writes OUT/disentangle.json and OUT/disentangle.md (default OUT: benchmarks/results).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = ROOT / "runs" / "disentangle"  # where each model's run directory goes (NAME-sSEED)


def configs(beta_vae: float, beta_tcvae: float) -> list[tuple[str, str, float]]:
    """(name, objective, beta) of the three models of the table."""
    return [("elbo", "elbo", 1.0), ("beta-vae", "beta-vae", beta_vae), ("beta-tcvae", "beta-tcvae", beta_tcvae)]


def plan(
    beta_vae: float, beta_tcvae: float, seeds: set[int], baseline_seeds: set[int], only: set[str]
) -> list[tuple[str, str, float, int]]:
    """(name, objective, beta, seed) of every run of the table: the shipped beta-TCVAE at `seeds`,
    the ELBO and beta-VAE baselines at `baseline_seeds`, restricted to `only` when it is not empty."""
    return [
        (name, objective, beta, seed)
        for seed in sorted(seeds | baseline_seeds)
        for name, objective, beta in configs(beta_vae, beta_tcvae)
        if (not only or name in only) and seed in (seeds if name == "beta-tcvae" else baseline_seeds)
    ]


def settings_differ(old_m: Any, old_t: Any, mcfg: Any, tcfg: Any) -> list[str]:
    """How a run's saved (ModelConfig, TrainConfig) differ from the asked ones in what makes it another
    model (architecture, objective, beta, seed, batch), one "name old (asked new)" per difference."""
    model_keys = ("arch", "hidden", "blocks", "latent_dim", *(("channels",) if mcfg.arch == "conv" else ()))
    train_keys = ("objective", "beta", "seed", "batch_size")
    return [
        f"{k} {getattr(old, k)} (asked {getattr(new, k)})"
        for old, new, keys in ((old_m, mcfg, model_keys), (old_t, tcfg, train_keys))
        for k in keys
        if getattr(old, k) != getattr(new, k)
    ]


def train_or_load(name: str, objective: str, beta: float, seed: int, args: argparse.Namespace) -> Path:
    """The run directory of one model, trained now unless a finished checkpoint of the same settings exists."""
    import torch

    from train import dsprites
    from train.config import ModelConfig, TrainConfig
    from train.fit import RESUME_FILE, fit_vae, load_data, read_resume_configs
    from train.models import conv_stages, default_widths

    run = Path(args.runs) / f"{name}-s{seed}"
    size = (args.image_size, args.image_size) if args.image_size else None
    tcfg = TrainConfig(
        data="dsprites", n_images=args.n_images, image_size=size, epochs=args.epochs,
        epoch_images=max(args.batch_size, args.images // args.epochs), batch_size=args.batch_size, lr=args.lr,
        objective=objective, beta=beta, seed=seed, keep="last", max_minutes=args.max_minutes, threads=args.threads,
        val_fraction=args.val_fraction,
    )  # fmt: skip
    side = args.image_size or dsprites.SIZE  # generated dSprites: one channel, side x side
    mcfg = ModelConfig(
        arch=args.arch, image_shape=(1, side, side), latent_dim=args.latent_dim, hidden=args.hidden,
        blocks=args.blocks,
    )  # fmt: skip
    if args.arch == "conv":
        widths = (
            tuple(int(v) for v in args.widths.split(",")) if args.widths else default_widths(conv_stages(side, side))
        )
        mcfg = dataclasses.replace(mcfg, channels=widths)
    checkpoint = run / "checkpoint.pt"
    if checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        old_m, old_t = ModelConfig.from_dict(saved["model_config"]), TrainConfig.from_dict(saved["train_config"])
        same_length = (old_t.epochs, old_t.epoch_images) == (tcfg.epochs, tcfg.epoch_images)
        finished = not saved["summary"].get("stopped_by_budget")
        if same_length and finished and not settings_differ(old_m, old_t, mcfg, tcfg):
            print(f"{run}: loaded (finished, {saved['summary']['images_seen']:,} images seen)")
            return run
    resume = (run / RESUME_FILE).exists()
    if resume:
        # A resumed run continues with the options it was started with: refuse to pass off a run of
        # other settings (another architecture, objective, beta, seed or batch) as this one.
        differ = settings_differ(*read_resume_configs(run), mcfg, tcfg)
        if differ:
            raise SystemExit(
                f"{run} holds a run of other settings ({', '.join(differ)}); pass another --runs directory"
            )
    split = load_data(tcfg)
    print(f"{run}: training {objective} beta={beta:g} seed={seed} ({'resumed' if resume else 'from scratch'})")
    fit_vae(mcfg, tcfg, split, run, quiet=True, resume=resume)
    return run


def measure(run: Path, points: str) -> dict[str, Any]:
    """Export the run (with its factor table) and measure it through the exported graphs, or read the
    measurement made before for the same checkpoint and protocol (RUN/measure.json)."""
    cache = run / "measure.json"
    stamp = {"checkpoint_mtime": (run / "checkpoint.pt").stat().st_mtime, "points": points}
    if cache.exists():
        saved = json.loads(cache.read_text())
        if saved.get("stamp") == stamp:
            print(f"{run}: measured before ({points} protocol)")
            return saved["result"]
    result = _measure(run, points)
    from vaegen_infer.io import save_json

    save_json(cache, {"stamp": stamp, "result": result})
    return result


def ship(run: Path, out: Path) -> dict[str, Any]:
    """Copy the bundle the table measured (RUN/bundle) to `out` as `dsprites-tcvae`, with the table's
    MIG / FactorVAE / DCI (and protocols) in model.json: the shipped graphs are the measured ones."""
    import shutil

    from vaegen_infer.io import save_json

    result = json.loads((run / "measure.json").read_text())["result"]
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(run / "bundle", out)
    manifest = json.loads((out / "model.json").read_text())
    manifest["name"] = out.name
    mc, tc = manifest["training"]["model_config"], manifest["training"]["train_config"]
    net = (
        f"MLP ({' -> '.join([str(mc['hidden'])] * (1 + mc['blocks']))})" if mc["arch"] == "mlp"
        else f"Convolutional ({', '.join(str(c) for c in mc['channels'])} channels)"
    )  # fmt: skip
    manifest["description"] = (
        f"{net} {tc['objective']} (beta {tc['beta']:g}), 64x64 dSprites, {mc['latent_dim']}-D latent, Bernoulli "
        f"likelihood; {result['images_seen']:,} generated dSprites images, {result['train_seconds'] / 60:.0f} min "
        "on a shared 2-core machine"
    )
    manifest["metrics"] = {
        **manifest.get("metrics", {}),
        "disentanglement": {
            k: {"score": result[k], "protocol": result["protocol"][k]} for k in ("mig", "factor_vae", "dci")
        },
    }
    save_json(out / "model.json", manifest)
    return manifest


def learning_curve(run: Path) -> list[dict[str, float]]:
    """(images seen, MIG on 2,000 fixed points, validation ELBO) after each epoch, from RUN/run.json."""
    history = json.loads((run / "run.json").read_text()).get("history", [])
    batch = json.loads((run / "run.json").read_text())["train_config"]["batch_size"]
    return [
        {"images": e["step"] * batch, "mig": e["mig_curve"], "val_elbo": e["val_elbo"]}
        for e in history if "mig_curve" in e
    ]  # fmt: skip


def _measure(run: Path, points: str) -> dict[str, Any]:
    import torch

    import vaegen_infer
    from train.disentangle import FULL, QUICK, evaluate_sizes, source_for
    from train.export import export_run

    bundle, _ = export_run(run, run / "bundle", name=run.name)
    g = vaegen_infer.load(bundle, providers="cpu")
    sizes = FULL if points == "full" else QUICK if points == "quick" else {k: int(points) for k in FULL}
    started = time.time()
    metrics = evaluate_sizes(source_for("dsprites", 0, size=g.image_shape[1]), lambda x: g.encode(x)[0], sizes)
    summary = torch.load(run / "checkpoint.pt", weights_only=False)["summary"]
    return {
        "run": str(run),
        "bundle": str(bundle),
        "images_seen": summary["images_seen"],
        "train_seconds": summary["seconds"],
        "val_rec_nats": summary["val_rec"],  # reconstruction error: Bernoulli NLL per image on validation images
        "val_kl_nats": summary["val_kl"],
        "mig": metrics["mig"]["score"],
        "factor_vae": metrics["factor_vae"]["score"],
        "dci": metrics["dci"]["score"],
        "metric_seconds": round(time.time() - started, 1),
        "protocol": {k: v["protocol"] for k, v in metrics.items()},
        "factors": g.manifest.latent_factors.get("per_dim"),
    }


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# Disentanglement on dSprites: ELBO vs beta-VAE vs beta-TCVAE",
        "",
        f"`{command}`",
        "",
        "| model | objective | beta | seed | images seen | MIG | FactorVAE | DCI | val rec (nats) | factors per dim |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        per_dim = " ".join(e["factor"] for e in r["factors"] or [])
        lines.append(
            f"| {r['name']} | {r['objective']} | {r['beta']:g} | {r['seed']} | {r['images_seen']:,} | {r['mig']:.3f} | "
            f"{r['factor_vae']:.3f} | {r['dci']:.3f} | {r['val_rec_nats']:.1f} | {per_dim} |"
        )
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_model.setdefault(r["name"], []).append(r)
    spread = [(n, rs) for n, rs in by_model.items() if len(rs) >= 2]
    if spread:
        lines += ["", "Across seeds (mean, min to max):", ""]
        for n, rs in spread:
            cells = []
            for key, label in (("mig", "MIG"), ("factor_vae", "FactorVAE"), ("dci", "DCI")):
                v = [r[key] for r in rs]
                cells.append(f"{label} {sum(v) / len(v):.3f} ({min(v):.3f} to {max(v):.3f})")
            lines.append(f"- {n}, {len(rs)} seeds: " + ", ".join(cells))
    curves = [r for r in rows if r.get("curve")]
    if curves:
        lines += ["", "Learning curve: MIG on 2,000 fixed fresh points (MigProbe) after each epoch:", ""]
        lines.append("| model | seed | " + " | ".join(f"{c['images'] / 1000:.0f}k" for c in curves[0]["curve"]) + " |")
        lines.append("| --- | --- |" + " --- |" * len(curves[0]["curve"]))
        for r in curves:
            lines.append(f"| {r['name']} | {r['seed']} | " + " | ".join(f"{c['mig']:.3f}" for c in r["curve"]) + " |")
    p = rows[0]["protocol"] if rows else {}
    if p:
        lines += ["", f"Protocol: MIG {p['mig']['num_train']:,} points, {p['mig']['num_bins']} bins; FactorVAE "
                  f"{p['factor_vae']['num_train']:,} / {p['factor_vae']['num_eval']:,} votes of "
                  f"{p['factor_vae']['batch_size']}; DCI {p['dci']['num_train']:,} / {p['dci']['num_test']:,} points; "
                  "seed 0, posterior means through encoder.onnx."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1_000_000, help="training images seen per model")
    ap.add_argument("--epochs", type=int, default=10, help="validations (learning-curve points) per run")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds of the shipped beta-TCVAE")
    ap.add_argument(
        "--baseline-seeds", default="0", help="comma-separated training seeds of the ELBO and beta-VAE baselines"
    )
    ap.add_argument("--beta-vae", type=float, default=4.0)
    ap.add_argument("--beta-tcvae", type=float, default=6.0)
    ap.add_argument("--latent-dim", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--arch", choices=("conv", "mlp"), default="conv")
    ap.add_argument("--widths", default=None, help="conv widths (default: from the image size)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--blocks", type=int, default=0, help="conv: extra 3x3 convolutions; mlp: extra hidden layers")
    ap.add_argument("--n-images", type=int, default=0, help="dSprites images in the data set; 0 = all 737,280")
    ap.add_argument("--image-size", type=int, default=0, help="0 = 64")
    ap.add_argument("--points", default="full", help="metric protocol: full, quick or N points per metric")
    ap.add_argument("--max-minutes", type=float, default=0.0, help="per-run budget; rerun to resume")
    ap.add_argument(
        "--val-fraction",
        type=float,
        default=0.005,
        help="validation share (0.005 = 3,686 images: 0.1 would validate 73,728 per epoch)",
    )
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated model names to train/measure (parallel runs); without it every model of the table",
    )
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument(
        "--ship",
        default="",
        help="after the table: copy this measured run's bundle (e.g. beta-tcvae-s1) to exported/dsprites-tcvae",
    )
    ap.add_argument("--runs", default=str(DEFAULT_RUNS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    from vaegen_infer.io import save_json, write_bytes

    only = {n for n in args.only.split(",") if n}
    known = {name for name, _, _ in configs(args.beta_vae, args.beta_tcvae)}
    if only - known:
        ap.error(f"--only: unknown model(s) {', '.join(sorted(only - known))}; choose from {', '.join(sorted(known))}")
    rows = []
    seeds = {int(s) for s in args.seeds.split(",")}
    baseline_seeds = {int(s) for s in args.baseline_seeds.split(",")}
    for name, objective, beta, seed in plan(args.beta_vae, args.beta_tcvae, seeds, baseline_seeds, only):
        run = train_or_load(name, objective, beta, seed, args)
        rows.append({"name": name, "objective": objective, "beta": beta, "seed": seed, **measure(run, args.points),
                     "curve": learning_curve(run)})  # fmt: skip
        print(json.dumps({k: rows[-1][k] for k in ("name", "seed", "mig", "factor_vae", "dci", "val_rec_nats")}))
    if only:
        print("--only: the table is written by a run without --only (it loads finished runs)")
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = (
        "python benchmarks/disentangle.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k not in ("runs", "out", "only") and v not in (None, "")  # None / "": not given, the default applies
        )
        + ("" if Path(args.runs) == DEFAULT_RUNS else f" --runs {args.runs}")
    )
    save_json(out / "disentangle.json", {"command": command, "machine": platform.platform(), "rows": rows})
    text = markdown(rows, command)
    write_bytes(out / "disentangle.md", lambda fh: fh.write(text.encode("utf-8")))
    chart = curve_chart(rows)
    if chart is not None:
        write_bytes(out / "disentangle-curve.png", lambda fh: chart.save(fh, format="PNG"))
    print(f"wrote {out / 'disentangle.json'}, {out / 'disentangle.md'} and the learning curve")
    if args.ship:
        shipped = ship(Path(args.runs) / args.ship, ROOT / "exported" / "dsprites-tcvae")
        print(f"shipped {args.ship} as exported/dsprites-tcvae: {shipped['description']}")


def curve_chart(rows: list[dict[str, Any]]) -> Any:
    """MIG (2,000 fixed points) against images seen, one line per model and seed (Pillow only)."""
    from vaegen_infer.plots import line_chart

    series = {
        f"{r['name']} s{r['seed']}": ([c["images"] for c in r["curve"]], [c["mig"] for c in r["curve"]])
        for r in rows if len(r.get("curve") or []) >= 2
    }  # fmt: skip
    if not series:
        return None
    title = "MIG during training (2,000 fixed points)"
    return line_chart(series, title, "images seen", "MIG", log_x=False, log_y=False)


if __name__ == "__main__":
    main()
