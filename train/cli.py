"""`python -m train`: fit, export (and, later, evaluate) models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from train.config import ModelConfig, TrainConfig

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


@app.command()
def fit(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory for checkpoint.pt and run.json.")],
    model: Annotated[str, typer.Option(help="Model family: vae.")] = "vae",
    data: Annotated[str, typer.Option(help="mnist-5k, mnist-idx:DIR (train-*-ubyte[.gz]) or synthetic.")] = "mnist-5k",
    arch: Annotated[str, typer.Option(help="conv or mlp (the pytorch/examples recipe).")] = "conv",
    latent_dim: Annotated[int, typer.Option(min=1, help="Latent size D.")] = 16,
    channels: Annotated[str, typer.Option(help="Conv widths, comma-separated; each halves H and W.")] = "32,64",
    hidden: Annotated[int, typer.Option(min=1, help="Dense layer width.")] = 256,
    activation: Annotated[str, typer.Option(help="relu, elu, silu or gelu.")] = "relu",
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    lr_schedule: Annotated[str, typer.Option(help="constant or cosine.")] = "constant",
    beta: Annotated[float, typer.Option(min=0.0, help="Weight of the KL term.")] = 1.0,
    warmup_epochs: Annotated[int, typer.Option(min=0, help="KL warm-up epochs (beta from 0 up).")] = 0,
    free_bits: Annotated[float, typer.Option(min=0.0, help="KL floor per dimension, nats.")] = 0.0,
    binarize: Annotated[str, typer.Option(help="none or dynamic (fresh Bernoulli draw per batch).")] = "none",
    augment: Annotated[bool, typer.Option(help="Random shifts of up to 2 pixels.")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(min=0, help="Torch threads; 0 = physical cores.")] = 0,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Fit a model and write OUT/checkpoint.pt (config beside the weights) and OUT/run.json."""
    from train import data as datasets
    from train.fit import fit_vae

    if model != "vae":
        raise typer.BadParameter(f"unknown model '{model}': use vae", param_hint="--model")
    if binarize not in ("none", "dynamic"):
        raise typer.BadParameter("use none or dynamic", param_hint="--binarize")
    split = datasets.load(data)
    mcfg = ModelConfig(
        kind=model, arch=arch, image_shape=split.image_shape, latent_dim=latent_dim,
        channels=_ints(channels), hidden=hidden, activation=activation,
    )  # fmt: skip
    tcfg = TrainConfig(
        data=data, epochs=epochs, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, beta=beta,
        warmup_epochs=warmup_epochs, free_bits=free_bits, binarize=binarize, augment=augment, seed=seed,
        threads=threads,
    )  # fmt: skip
    summary = fit_vae(mcfg, tcfg, split, out, quiet=quiet)
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


def main() -> None:
    app()
