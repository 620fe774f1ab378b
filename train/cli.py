"""`python -m train`: fit, export (and, later, evaluate) models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from train.config import LEARNED_PRIORS, ModelConfig, TrainConfig

app = typer.Typer(
    help="Train VAEs/AAEs on MNIST-like data and export them as vaegen-infer bundles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got '{text}'") from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"expected positive integers, got '{text}'")
    return values


DEFAULT_LR = {"vae": 1e-3, "aae": 5e-4}


def _prior_params(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value) if "." in value or "e" in value else int(value)
        except ValueError:
            raise typer.BadParameter(f"expected KEY=NUMBER, got '{item}'", param_hint="--prior-param") from None
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=NUMBER, got '{item}'", param_hint="--prior-param")
    return out


@app.command()
def fit(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory for checkpoint.pt and run.json.")],
    model: Annotated[str, typer.Option(help="Model family: vae or aae.")] = "vae",
    data: Annotated[str, typer.Option(help="mnist-5k, mnist-idx:DIR (train-*-ubyte[.gz]) or synthetic.")] = "mnist-5k",
    arch: Annotated[str, typer.Option(help="conv or mlp (the pytorch/examples recipe).")] = "conv",
    latent_dim: Annotated[int, typer.Option(min=1, help="Latent size D.")] = 16,
    channels: Annotated[str, typer.Option(help="Conv widths, comma-separated; each halves H and W.")] = "32,64",
    hidden: Annotated[int, typer.Option(min=1, help="Dense layer width.")] = 256,
    activation: Annotated[str, typer.Option(help="relu, elu, silu or gelu.")] = "relu",
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    lr: Annotated[
        float | None, typer.Option(min=0.0, help="Adam step size; AAE: the reconstruction phase. [vae 1e-3, aae 5e-4]")
    ] = None,
    lr_schedule: Annotated[str, typer.Option(help="constant or cosine.")] = "constant",
    beta: Annotated[float, typer.Option(min=0.0, help="VAE: weight of the KL term.")] = 1.0,
    warmup_epochs: Annotated[int, typer.Option(min=0, help="VAE: KL warm-up epochs (beta from 0 up).")] = 0,
    free_bits: Annotated[float, typer.Option(min=0.0, help="VAE: KL floor per dimension, nats.")] = 0.0,
    binarize: Annotated[str, typer.Option(help="none or dynamic (fresh Bernoulli draw per batch).")] = "none",
    shift: Annotated[float, typer.Option(min=0.0, help="Augmentation: random shifts up to this many pixels.")] = 0.0,
    rotate: Annotated[
        float, typer.Option(min=0.0, help="Augmentation: random rotations up to this many degrees.")
    ] = 0.0,
    iw_samples: Annotated[int, typer.Option(min=1, help="VAE: importance samples (1 = ELBO, K > 1 = IWAE).")] = 1,
    iw_estimator: Annotated[
        str, typer.Option(help="VAE: encoder gradient of the IWAE bound, iwae or dreg (doubly reparameterised).")
    ] = "iwae",
    blocks: Annotated[int, typer.Option(min=0, help="Extra 3x3 convolutions per resolution.")] = 0,
    prior: Annotated[
        str, typer.Option(help="AAE: gaussian, mog, swissroll or uniform. VAE: gaussian or vamp (learned mixture).")
    ] = "gaussian",
    prior_param: Annotated[
        list[str] | None, typer.Option(help="Prior parameter KEY=NUMBER (repeat); vamp: components=500.")
    ] = None,
    conditional: Annotated[bool, typer.Option(help="AAE: label-conditioned regularisation.")] = False,
    posterior: Annotated[str | None, typer.Option(help="gaussian or deterministic; default: per model.")] = None,
    label_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="AAE: share of labels used.")] = 1.0,
    lr_disc: Annotated[float, typer.Option(min=0.0, help="AAE: discriminator step size.")] = 1e-4,
    lr_gen: Annotated[float, typer.Option(min=0.0, help="AAE: encoder step size against the discriminator.")] = 1e-3,
    disc_hidden: Annotated[int, typer.Option(min=1, help="AAE: discriminator width.")] = 512,
    keep: Annotated[str, typer.Option(help="VAE: best (on validation ELBO) or last epoch's weights.")] = "best",
    ema: Annotated[float, typer.Option(min=0.0, max=0.99999, help="VAE: weight EMA decay (0 = off).")] = 0.0,
    dropout: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Dropout after each hidden activation while training.")
    ] = 0.0,
    weight_decay: Annotated[float, typer.Option(min=0.0, help="VAE: decoupled weight decay (AdamW).")] = 0.0,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(min=0, help="Torch threads; 0 = physical cores.")] = 0,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Fit a model and write OUT/checkpoint.pt (config beside the weights) and OUT/run.json."""
    from train import data as datasets

    if model not in ("vae", "aae"):
        raise typer.BadParameter(f"unknown model '{model}': use vae or aae", param_hint="--model")
    if binarize not in ("none", "dynamic"):
        raise typer.BadParameter("use none or dynamic", param_hint="--binarize")
    if model == "vae" and (prior not in ("gaussian", *LEARNED_PRIORS) or conditional or posterior == "deterministic"):
        raise typer.BadParameter(
            "a VAE has a Gaussian posterior and a gaussian or vamp prior; use --model aae", param_hint="--prior"
        )
    if model == "aae" and prior in LEARNED_PRIORS:
        raise typer.BadParameter(f"'{prior}' is learned with a VAE; an AAE needs a fixed prior", param_hint="--prior")
    split = datasets.load(data)
    mcfg = ModelConfig(
        kind=model, arch=arch, image_shape=split.image_shape, latent_dim=latent_dim,
        channels=_ints(channels), hidden=hidden, activation=activation, blocks=blocks,
        posterior=posterior or ("gaussian" if model == "vae" else "deterministic"),
        prior=prior, prior_params=_prior_params(prior_param or []), conditional=conditional, disc_hidden=disc_hidden,
        dropout=dropout,
    )  # fmt: skip
    tcfg = TrainConfig(
        data=data, epochs=epochs, batch_size=batch_size, lr=lr if lr is not None else DEFAULT_LR[model],
        lr_schedule=lr_schedule, beta=beta,
        warmup_epochs=warmup_epochs, free_bits=free_bits, binarize=binarize, shift=shift, rotate=rotate, seed=seed,
        iw_samples=iw_samples, iw_estimator=iw_estimator, keep=keep, ema=ema, weight_decay=weight_decay,
        threads=threads, lr_disc=lr_disc, lr_gen=lr_gen, label_fraction=label_fraction,
    )  # fmt: skip
    if model == "vae":
        from train.fit import fit_vae

        summary = fit_vae(mcfg, tcfg, split, out, quiet=quiet)
    else:
        from train.aae import fit_aae

        summary = fit_aae(mcfg, tcfg, split, out, quiet=quiet)
    typer.echo(f"wrote {out / 'checkpoint.pt'}: " + json.dumps(summary))


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory written by `fit` (or a checkpoint.pt).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write, e.g. exported/NAME.")],
    name: Annotated[str | None, typer.Option(help="Bundle name; default: the directory name.")] = None,
    description: Annotated[str, typer.Option(help="One line shown by `vaegen-infer models`.")] = "",
    exporter: Annotated[str, typer.Option(help="dynamo or torchscript.")] = "dynamo",
) -> None:
    """Export a run to encoder.onnx, decoder.onnx and model.json, checked against PyTorch."""
    from train.export import ExportError, export_run

    try:
        path, parity = export_run(run, out, name=name, description=description, exporter=exporter)
    except ExportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    worst = max(parity.values())
    typer.echo(f"wrote {path} (largest |ORT - PyTorch| over batches 1, 7, 64: {worst:.2e})")


@app.command()
def evaluate(
    bundle: Annotated[str, typer.Argument(help="Bundle name or directory.")],
    data: Annotated[str, typer.Option(help="mnist-idx:DIR holding t10k-*-ubyte[.gz] (the MNIST test set).")] = (
        "mnist-idx:../shared/data/mnist"
    ),
    k: Annotated[int, typer.Option(min=1, help="VAE: importance samples per image for the IWAE bound.")] = 1000,
    images: Annotated[int, typer.Option(min=1, help="VAE: evaluate the first N test images.")] = 10_000,
    samples: Annotated[bool, typer.Option(help="Also judge 10,000 samples with the digit classifier.")] = True,
    write: Annotated[bool, typer.Option(help="Store the results in the bundle's model.json (metrics).")] = False,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Measure a bundle through its ONNX graphs: VAE test NLL (IWAE), ELBO, active units; AAE Parzen
    log-likelihood and prior fit; sample quality by the digit classifier."""
    import vaegen_infer
    from train import data as datasets
    from train.evaluate import aae_metrics, sample_metrics, vae_metrics
    from vaegen_infer.datasets import load_idx_dir
    from vaegen_infer.io import save_json
    from vaegen_infer.manifest import MANIFEST_FILE

    if not data.startswith("mnist-idx:"):
        raise typer.BadParameter("use mnist-idx:DIR", param_hint="--data")
    x_test, y_test = load_idx_dir(data.split(":", 1)[1], "test")
    g = vaegen_infer.load(bundle, providers="cpu")
    metrics: dict[str, object] = {}
    if g.manifest.kind == "vae":
        metrics.update(vae_metrics(g, x_test, k=k, n_images=min(images, len(x_test)), seed=seed))
    else:
        x_val = datasets.load(g.manifest.training["train_config"]["data"]).x_val
        metrics.update(aae_metrics(g, x_test, y_test, x_val, seed=seed))
    if samples:
        metrics["samples"] = sample_metrics(g, x_test, seed=seed)
    typer.echo(json.dumps(metrics, indent=2))
    if write:
        if g.bundle.origin != "path" and g.bundle.origin != "shipped":
            raise typer.BadParameter("--write takes a bundle in exported/ or a directory", param_hint="BUNDLE")
        manifest = g.manifest
        manifest.metrics = {**manifest.metrics, **metrics}
        save_json(g.bundle.path / MANIFEST_FILE, manifest.to_dict())
        typer.echo(f"wrote metrics to {g.bundle.path / MANIFEST_FILE}")


def main() -> None:
    app()
