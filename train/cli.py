"""`python -m train`: fit, export (and, later, evaluate) models."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from train.config import DEFAULT_EPOCHS, LEARNED_PRIORS, ModelConfig, TrainConfig, auto_epochs

if TYPE_CHECKING:
    from train.data import Split

app = typer.Typer(
    help="Train VAEs/AAEs on MNIST-like data and export them as vaegen-infer bundles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help at 120 columns whatever the terminal says, so option help is never cut.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120, "terminal_width": 120},
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


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    values = _ints(text)
    if len(values) == 1:
        return (values[0], values[0])
    if len(values) == 2:
        return (values[0], values[1])
    raise typer.BadParameter(f"expected S or H,W, got '{text}'", param_hint="--image-size")


def _fail(exc: Exception, debug: bool) -> typer.Exit:
    """A typed error as one line on stderr; exit 2 for usage errors, 1 for failures."""
    if debug:
        raise exc
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(getattr(exc, "exit_code", 1))


DATA_HELP = (
    "mnist-5k, mnist-idx:DIR (train-*-ubyte[.gz]), folder:DIR (images; sub-folders = classes), npz:FILE, "
    "dsprites, color-dsprites or synthetic."
)


@app.command()
def fit(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory for checkpoint.pt, run.json.")] = None,
    model: Annotated[str, typer.Option(help="Model family: vae or aae.")] = "vae",
    data: Annotated[str, typer.Option(help=DATA_HELP)] = "mnist-5k",
    arch: Annotated[str, typer.Option(help="conv or mlp (the pytorch/examples recipe).")] = "conv",
    latent_dim: Annotated[int, typer.Option(min=1, help="Latent size D.")] = 16,
    image_size: Annotated[
        str | None, typer.Option(help="Resize images to S x S or H,W (conv: 28, 32, 64, 128, ...); default: as stored.")
    ] = None,
    channels: Annotated[int, typer.Option(help="Image channels: 1 (grey) or 3 (RGB); 0 = follow the data.")] = 0,
    crop: Annotated[int | None, typer.Option(min=1, help="Centre square crop, source pixels, before resizing.")] = None,
    resize: Annotated[str, typer.Option(help="Resize filter: auto, box, bilinear, bicubic, lanczos, nearest.")] = (
        "auto"
    ),
    aspect: Annotated[
        str,
        typer.Option(
            help="keep: centre-crop each image to the model's aspect ratio before resizing, so nothing is "
            "stretched; stretch: resize as it is."
        ),
    ] = "keep",
    widths: Annotated[
        str | None, typer.Option(help="Conv widths, one per stage (each halves H and W); default: from the size.")
    ] = None,
    hidden: Annotated[int, typer.Option(min=1, help="Dense layer width.")] = 256,
    activation: Annotated[str, typer.Option(help="relu, elu, silu or gelu.")] = "relu",
    likelihood: Annotated[
        str, typer.Option(help="bernoulli (binary/grey digits) or gaussian (8-bit photos; shared learned sigma).")
    ] = "bernoulli",
    attributes: Annotated[
        Path | None, typer.Option(help="Per-image attributes: CelebA list_attr format or CSV (file,attr1,...).")
    ] = None,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share held out for validation.")] = 0.1,
    strict: Annotated[bool, typer.Option(help="Refuse unreadable images instead of skipping them.")] = False,
    n_images: Annotated[
        int, typer.Option(min=0, help="Generated data (dsprites, synthetic): images in all; 0 = the default.")
    ] = 0,
    epochs: Annotated[
        int,
        typer.Option(
            min=0,
            help="Passes over the training images (or of --epoch-images each). 0 = auto: 30, or more for a small "
            "set, so that at least 100,000 images are seen (270 training images: 371 epochs).",
        ),
    ] = 0,
    epoch_images: Annotated[
        int, typer.Option(min=0, help="Images per epoch (validated after each); 0 = one pass over the data.")
    ] = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    lr: Annotated[
        float | None, typer.Option(min=0.0, help="Adam step size; AAE: the reconstruction phase. [vae 1e-3, aae 5e-4]")
    ] = None,
    lr_schedule: Annotated[str, typer.Option(help="constant or cosine.")] = "constant",
    objective: Annotated[
        str, typer.Option(help="VAE: elbo, beta-vae (rec + beta KL) or beta-tcvae (beta weighs the total correlation).")
    ] = "elbo",
    beta: Annotated[float, typer.Option(min=0.0, help="VAE: weight of the KL (beta-tcvae: of its TC part).")] = 1.0,
    warmup_epochs: Annotated[
        int,
        typer.Option(
            min=0,
            help="VAE: KL warm-up epochs (beta from 0 up). AAE: reconstruction-only epochs before the encoder "
            "is pushed to the prior.",
        ),
    ] = 0,
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
    blocks: Annotated[
        int, typer.Option(min=0, help="conv: extra 3x3 convolutions per resolution; mlp: extra hidden layers.")
    ] = 0,
    film: Annotated[
        bool,
        typer.Option(
            help="Conv decoder: scale and shift each stage's feature maps per channel by a linear map of the code "
            "(FiLM). Lets the decoder paint a colour onto a shape; measured on Color-dSprites, see the README."
        ),
    ] = False,
    pooled_input: Annotated[
        bool,
        typer.Option(
            help="Conv encoder: feed each input channel's mean and maximum over the image to the dense layer "
            "(a direct path for global colour)."
        ),
    ] = False,
    prior: Annotated[
        str, typer.Option(help="AAE: gaussian, mog, swissroll or uniform. VAE: gaussian or vamp (learned mixture).")
    ] = "gaussian",
    prior_param: Annotated[
        list[str] | None, typer.Option(help="Prior parameter KEY=NUMBER (repeat); vamp: components=500.")
    ] = None,
    conditional: Annotated[bool, typer.Option(help="AAE: label-conditioned regularisation.")] = False,
    supervised: Annotated[
        bool,
        typer.Option(
            help="AAE: supervised AAE (Makhzani et al. Fig. 7): the decoder also takes the label one-hot and the code, "
            "pushed to a label-free prior, keeps only style; exports a decoder with a second input y (N, K)."
        ),
    ] = False,
    posterior: Annotated[str | None, typer.Option(help="gaussian or deterministic; default: per model.")] = None,
    label_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="AAE: share of labels used.")] = 1.0,
    label_critic: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Supervised AAE: weight of the encoder's loss against a classifier guessing the label "
            "from the code (pushes the label out of the code); 0 = off.",
        ),
    ] = 0.0,
    lr_disc: Annotated[float, typer.Option(min=0.0, help="AAE: discriminator step size.")] = 1e-4,
    lr_gen: Annotated[float, typer.Option(min=0.0, help="AAE: encoder step size against the discriminator.")] = 1e-3,
    disc_hidden: Annotated[int, typer.Option(min=1, help="AAE: discriminator width.")] = 512,
    disc_noise: Annotated[
        float, typer.Option(min=0.0, help="AAE: std of instance noise on the discriminator's inputs (0 = off).")
    ] = 0.0,
    region_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Conditional AAE: weight of a cross-entropy asking each labelled code into its own label's "
            "prior region (0 = off).",
        ),
    ] = 0.0,
    keep: Annotated[str, typer.Option(help="VAE: best (on validation ELBO) or last epoch's weights.")] = "best",
    ema: Annotated[
        float, typer.Option(min=0.0, max=0.99999, help="VAE, AAE: weight EMA decay (0 = off); the average ships.")
    ] = 0.0,
    dropout: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Dropout after each hidden activation while training.")
    ] = 0.0,
    weight_decay: Annotated[float, typer.Option(min=0.0, help="VAE: decoupled weight decay (AdamW).")] = 0.0,
    max_minutes: Annotated[
        float | None, typer.Option(min=0.0, help="VAE: wall-clock budget; stops cleanly, keeps the best weights.")
    ] = None,
    checkpoint_minutes: Annotated[
        float, typer.Option(min=0.0, help="VAE: write OUT/resume.pt at least this often (0 = only at the end).")
    ] = 5.0,
    resume: Annotated[
        Path | None, typer.Option(help="VAE: continue RUN from its resume.pt, with the options it was started with.")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(min=0, help="Torch threads; 0 = physical cores.")] = 0,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    debug: Annotated[bool, typer.Option(help="Show the traceback of an error.")] = False,
) -> None:
    """Fit a model and write OUT/checkpoint.pt (config beside the weights) and OUT/run.json."""
    from train.fit import load_data
    from vaegen_infer.errors import VaegenError

    try:
        if resume is not None:
            from train.fit import read_resume_configs

            mcfg, tcfg = read_resume_configs(resume)
            if max_minutes is not None:
                tcfg.max_minutes = max_minutes  # a new budget, counting the time already spent
            split = load_data(tcfg, note=lambda text: typer.echo(text, err=True))
            run_dir = resume
        else:
            if out is None:
                raise typer.BadParameter("give the run directory (or --resume RUN)", param_hint="--out")
            mcfg, tcfg, split = _configs(
                model=model, data=data, arch=arch, latent_dim=latent_dim, image_size=_size(image_size),
                channels=channels, crop=crop, resize=resize, aspect=aspect, widths=widths, hidden=hidden,
                activation=activation,
                likelihood=likelihood, attributes=attributes, val_fraction=val_fraction, strict=strict,
                n_images=n_images, epochs=epochs,
                epoch_images=epoch_images, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule,
                objective=objective, beta=beta,
                warmup_epochs=warmup_epochs, free_bits=free_bits, binarize=binarize, shift=shift, rotate=rotate,
                iw_samples=iw_samples, iw_estimator=iw_estimator, blocks=blocks, film=film, pooled_input=pooled_input,
                prior=prior,
                prior_param=prior_param, conditional=conditional, supervised=supervised, posterior=posterior,
                label_fraction=label_fraction, label_critic=label_critic,
                lr_disc=lr_disc, lr_gen=lr_gen, disc_hidden=disc_hidden, disc_noise=disc_noise,
                region_weight=region_weight, keep=keep, ema=ema,
                dropout=dropout,
                weight_decay=weight_decay, max_minutes=max_minutes or 0.0, checkpoint_minutes=checkpoint_minutes,
                seed=seed, threads=threads,
            )  # fmt: skip
            run_dir = out
        if mcfg.kind == "vae":
            from train.fit import fit_vae

            summary = fit_vae(mcfg, tcfg, split, run_dir, quiet=quiet, resume=resume is not None)
        else:
            from train.aae import fit_aae

            summary = fit_aae(mcfg, tcfg, split, run_dir, quiet=quiet)
    except VaegenError as exc:
        raise _fail(exc, debug) from None
    typer.echo(f"wrote {run_dir / 'checkpoint.pt'}: " + json.dumps(summary))


def _configs(
    *, model: str, data: str, arch: str, latent_dim: int, image_size: tuple[int, int] | None, channels: int,
    crop: int | None, resize: str, aspect: str, widths: str | None, hidden: int, activation: str, likelihood: str,
    attributes: Path | None, val_fraction: float, strict: bool, n_images: int, epochs: int,
    epoch_images: int, batch_size: int,
    lr: float | None, lr_schedule: str, objective: str, beta: float, warmup_epochs: int, free_bits: float,
    binarize: str,
    shift: float, rotate: float, iw_samples: int, iw_estimator: str, blocks: int, film: bool, pooled_input: bool,
    prior: str,
    prior_param: list[str] | None, conditional: bool, supervised: bool, posterior: str | None, label_fraction: float,
    label_critic: float, lr_disc: float,
    lr_gen: float, disc_hidden: int, disc_noise: float, region_weight: float,
    keep: str, ema: float, dropout: float, weight_decay: float, max_minutes: float,
    checkpoint_minutes: float, seed: int, threads: int,
) -> tuple[ModelConfig, TrainConfig, Split]:  # fmt: skip
    """The two configs from the command line (each validates itself) and the data, which give the
    model its image shape (after --channels / --image-size)."""
    from train.fit import load_data
    from train.models import conv_stages, default_widths

    if model not in ("vae", "aae"):
        raise typer.BadParameter(f"unknown model '{model}': use vae or aae", param_hint="--model")
    if model == "vae" and (prior not in ("gaussian", *LEARNED_PRIORS) or conditional or posterior == "deterministic"):
        raise typer.BadParameter(
            "a VAE has a Gaussian posterior and a gaussian or vamp prior; use --model aae", param_hint="--prior"
        )
    if supervised and (model != "aae" or conditional):
        raise typer.BadParameter(
            "--supervised is an AAE whose code follows a label-free prior: use --model aae without --conditional",
            param_hint="--supervised",
        )
    tcfg = TrainConfig(
        data=data, epochs=epochs or DEFAULT_EPOCHS, batch_size=batch_size,
        lr=lr if lr is not None else DEFAULT_LR[model],
        lr_schedule=lr_schedule, objective=objective, beta=beta,
        warmup_epochs=warmup_epochs, free_bits=free_bits, binarize=binarize, shift=shift, rotate=rotate, seed=seed,
        iw_samples=iw_samples, iw_estimator=iw_estimator, keep=keep, ema=ema, weight_decay=weight_decay,
        threads=threads, lr_disc=lr_disc, lr_gen=lr_gen, disc_noise=disc_noise, region_weight=region_weight,
        label_fraction=label_fraction, label_critic=label_critic,
        max_minutes=max_minutes,
        checkpoint_minutes=checkpoint_minutes, epoch_images=epoch_images, val_fraction=val_fraction, strict=strict,
        n_images=n_images,
        attributes=str(attributes) if attributes is not None else None, channels=channels, image_size=image_size,
        crop=crop, resize=resize, aspect=aspect,
    )  # fmt: skip
    split = load_data(tcfg, note=lambda text: typer.echo(text, err=True))
    if epochs == 0:
        tcfg = dataclasses.replace(tcfg, epochs=auto_epochs(len(split.x_train), tcfg.epoch_images))
    shape = split.image_shape
    if supervised and not split.labels:
        raise typer.BadParameter(f"--supervised needs labelled data; {data} has no classes", param_hint="--data")
    if widths is not None:
        conv_widths = _ints(widths)
    elif arch == "conv":
        conv_widths = default_widths(conv_stages(shape[1], shape[2]))
    else:
        conv_widths = (32, 64)
    mcfg = ModelConfig(
        kind=model, arch=arch, image_shape=shape, latent_dim=latent_dim,
        channels=conv_widths, hidden=hidden, activation=activation, blocks=blocks, film=film,
        pooled_input=pooled_input,
        posterior=posterior or ("gaussian" if model == "vae" else "deterministic"),
        prior=prior, prior_params=_prior_params(prior_param or []), conditional=conditional, disc_hidden=disc_hidden,
        decoder_labels=len(split.labels or []) if supervised else 0,
        dropout=dropout, likelihood=likelihood,
    )  # fmt: skip
    if epochs == 0 and tcfg.epochs != DEFAULT_EPOCHS:  # said once both configs are valid
        typer.echo(f"{tcfg.epochs} epochs, to see {tcfg.epochs * (tcfg.epoch_images or len(split.x_train)):,} "
                   f"images of a small set (--epochs N to choose)", err=True)  # fmt: skip
    return mcfg, tcfg, split


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory written by `fit` (or a checkpoint.pt).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write, e.g. exported/NAME.")],
    name: Annotated[str | None, typer.Option(help="Bundle name; default: the directory name.")] = None,
    description: Annotated[str, typer.Option(help="One line shown by `vaegen-infer models`.")] = "",
    exporter: Annotated[str, typer.Option(help="dynamo or torchscript.")] = "dynamo",
    sampler: Annotated[
        str,
        typer.Option(
            help="What `vaegen-infer sample` draws codes from: prior (the one trained with), or gmm:K, a "
            "K-component Gaussian mixture fitted to the training images' codes. Try gmm:10 when samples "
            "look worse than reconstructions (codes that miss the prior's regions; the export prints "
            "whether the mixture fits held-out codes better than the prior)."
        ),
    ] = "prior",
    turn_orientation: Annotated[
        int,
        typer.Option(
            min=0,
            help="dSprites runs: after the regression, turn the orientation directions through the decoder "
            "for this many search steps (300 ships): the direction of the same length whose decodes turn 600 "
            "training ellipses the right way most often. 0 = the regression alone.",
        ),
    ] = 0,
    debug: Annotated[bool, typer.Option(help="Show the traceback of an error.")] = False,
) -> None:
    """Export a run to encoder.onnx, decoder.onnx and model.json, checked against PyTorch."""
    from train.analysis import parse_sampler
    from train.export import export_run
    from vaegen_infer.errors import VaegenError

    try:
        components = parse_sampler(sampler)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--sampler "), param_hint="--sampler") from None
    try:
        path, parity = export_run(
            run, out, name=name, description=description, exporter=exporter, sampler_components=components,
            turn_steps=turn_orientation,
        )
    except VaegenError as exc:
        raise _fail(exc, debug) from None
    worst = max(parity.values())
    typer.echo(f"wrote {path} (largest |ORT - PyTorch| over batches 1, 7, 64: {worst:.2e})")
    _say_sampler(path)


def _say_sampler(bundle: Path) -> None:
    """One line on the fitted sampler (held-out codes' log-density under it and under the prior),
    or, without one, a note when a mixture would fit those codes clearly better than the prior."""
    import json

    from train.analysis import SAMPLER_CHECK_MARGIN

    training = json.loads((bundle / "model.json").read_text())["training"]
    check = training.get("sampler_check")
    if check is not None:
        mixture, prior = check["val_log_density_mixture"], check["val_log_density_prior"]
        if mixture > prior + SAMPLER_CHECK_MARGIN:
            typer.echo(
                f"note: a {check['components']}-component mixture fits the validation codes better than the prior "
                f"({mixture:.2f} against {prior:.2f} nats per code): if samples look worse than reconstructions, "
                f"export with --sampler gmm:{check['components']} (or more components)"
            )
    if "sampler" not in training:
        return
    record = training["sampler"]
    line = f"sampler: {record['components']}-component mixture fitted to {record['images']:,} training codes"
    if "val_log_density_sampler" in record:
        line += f"; validation codes' mean log-density {record['val_log_density_sampler']:.2f} nats under it"
        if "val_log_density_prior" in record:
            line += f", {record['val_log_density_prior']:.2f} under the prior"
    typer.echo(line)


@app.command()
def evaluate(
    bundle: Annotated[str, typer.Argument(help="Bundle name or directory.")],
    data: Annotated[
        str,
        typer.Option(
            help="mnist-idx:DIR holding t10k-*-ubyte[.gz] (the MNIST test set); dsprites or color-dsprites "
            "(freshly rendered with --data-seed); or any --data source of `fit` (its validation split)."
        ),
    ] = "mnist-idx:../shared/data/mnist",
    k: Annotated[
        int, typer.Option(min=1, help="VAE, Gaussian-posterior AAE: importance samples per image for the IWAE bound.")
    ] = 1000,
    images: Annotated[int, typer.Option(min=1, help="IWAE bound: evaluate the first N test images.")] = 10_000,
    samples: Annotated[bool, typer.Option(help="Also judge 10,000 samples with the digit classifier.")] = True,
    write: Annotated[bool, typer.Option(help="Store the results in the bundle's model.json (metrics).")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    data_seed: Annotated[int, typer.Option(help="Generated test data: the seed of the fresh images.")] = 1000,
    quick: Annotated[
        bool, typer.Option(help="dSprites: MIG, FactorVAE and DCI on a fifth to a tenth of the full protocol's points.")
    ] = False,
    points: Annotated[
        int, typer.Option(min=0, help="dSprites: every factor metric on N points (smoke runs and tests); 0 = off.")
    ] = 0,
    debug: Annotated[bool, typer.Option(help="Show the traceback of an error.")] = False,
) -> None:
    """Measure a bundle through its ONNX graphs: VAE test NLL (IWAE; nats for binary data, bits/dim
    for 8-bit data), ELBO, active units; AAE Parzen log-likelihood and prior fit (and the IWAE bound
    when its posterior is Gaussian); sample quality by
    the digit classifier (28x28 digit models)."""
    from vaegen_infer.errors import VaegenError

    try:
        _evaluate(bundle, data, k, images, samples, write, seed, data_seed, _factor_sizes(quick, points))
    except VaegenError as exc:
        raise _fail(exc, debug) from None


def _factor_sizes(quick: bool, points: int) -> dict[str, int]:
    """Points per factor metric: the full protocol, --quick, or N for each (--points)."""
    from train.disentangle import FULL, QUICK

    if points:
        return {key: points for key in FULL}
    return dict(QUICK if quick else FULL)


def _factor_metrics(g: object, sizes: dict[str, int], seed: int) -> dict[str, object]:
    """MIG, the FactorVAE metric and DCI through the bundle's encoder on freshly rendered images."""
    from train.disentangle import evaluate_sizes, source_for

    m = g.manifest  # type: ignore[attr-defined]
    tcfg = m.training["train_config"]
    source = source_for(tcfg["data"], int(tcfg.get("data_seed", 0)), size=m.image.height)
    return evaluate_sizes(source, lambda x: g.encode(x)[0], sizes, seed=seed)  # type: ignore[attr-defined]


def _evaluate(
    bundle: str, data: str, k: int, images: int, samples: bool, write: bool, seed: int, data_seed: int,
    factor_sizes: dict[str, int],
) -> None:  # fmt: skip
    import numpy as np

    import vaegen_infer
    from train.config import TrainConfig
    from train.disentangle import FACTOR_DATA
    from train.evaluate import aae_metrics, sample_metrics, vae_metrics, vae_metrics_8bit
    from train.fit import load_data
    from vaegen_infer.datasets import load_idx_dir
    from vaegen_infer.errors import UsageError
    from vaegen_infer.io import save_json
    from vaegen_infer.manifest import MANIFEST_FILE

    g = vaegen_infer.load(bundle, providers="cpu")
    if g.label_decoder:
        raise UsageError(
            f"model '{g.name}' has a label-conditioned decoder (supervised AAE); `evaluate` measures unconditional "
            "samples: measure it with benchmarks/restyle.py"
        )
    metrics: dict[str, object] = {}
    has_factors = g.manifest.training.get("train_config", {}).get("data") in FACTOR_DATA
    if has_factors:  # ground-truth factors: the disentanglement metrics, each with its protocol
        metrics["disentanglement"] = _factor_metrics(g, factor_sizes, seed)
    if has_factors and g.manifest.image.data_kind != "8bit":
        samples = False  # binary dSprites: no test set of record; reconstruction comes with the benchmark
    elif g.manifest.image.data_kind == "8bit":
        if g.manifest.kind != "vae":
            raise UsageError("8-bit evaluation covers VAEs (the IWAE bound); this bundle is an AAE")
        x_test, subset = _test_images_8bit(g, data, images, data_seed)
        metrics.update(vae_metrics_8bit(g, x_test, k=k, subset=subset, seed=seed))
        samples = False  # the digit classifier judges 28x28 digits only
    else:
        if not data.startswith("mnist-idx:"):
            raise typer.BadParameter("binary (MNIST) bundles are measured on mnist-idx:DIR", param_hint="--data")
        x_test, y_test = load_idx_dir(data.split(":", 1)[1], "test")
        if g.manifest.kind == "vae":
            metrics.update(vae_metrics(g, x_test, k=k, n_images=min(images, len(x_test)), seed=seed))
        else:
            split = load_data(TrainConfig.from_dict(g.manifest.training["train_config"]))
            x_val = np.concatenate(
                [split.to_float(split.x_val[i : i + 1000]) for i in range(0, len(split.x_val), 1000)]
            )
            metrics.update(aae_metrics(g, x_test, y_test, x_val, seed=seed))
            if g.manifest.training.get("model_config", {}).get("posterior") == "gaussian" and g.prior.has_density:
                # A Gaussian-posterior AAE has a density too: the VAE's IWAE bound, prior in closed form
                metrics.update(vae_metrics(g, x_test, k=k, n_images=min(images, len(x_test)), seed=seed))
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


def _test_images_8bit(g: object, data: str, images: int, data_seed: int) -> tuple[object, str]:
    """(N, C, H, W) float32 test images with values k / 255, and a description of them."""
    import numpy as np

    from train.config import TrainConfig
    from train.fit import load_data

    h = g.image_shape[1]  # type: ignore[attr-defined]
    if data in ("dsprites", "color-dsprites"):
        from train import dsprites as ds

        idx = ds.sample_indices(images, data_seed)
        x = ds.render(idx, color=data == "color-dsprites", seed=data_seed, size=h).astype(np.float32) / np.float32(255)
        return x, f"{images:,} {data} images rendered afresh (factors and colours from seed {data_seed})"
    tcfg = TrainConfig.from_dict(g.manifest.training["train_config"])  # type: ignore[attr-defined]
    tcfg.data = data
    split = load_data(tcfg)
    n = min(images, len(split.x_val))
    x = np.concatenate([split.to_float(split.x_val[i : min(n, i + 1000)]) for i in range(0, n, 1000)])
    return x, f"the first {n:,} validation images of {data}"


def main() -> None:
    app()


@app.command()
def variants(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory, e.g. exported/mnist-vae.")],
    int8: Annotated[
        bool, typer.Option("--int8", help="Add a statically quantised (QDQ) int8 variant, for CPUs.")
    ] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="Add a half-precision variant, for GPUs.")] = False,
    calibration_images: Annotated[int, typer.Option(min=16, help="Training images to calibrate int8 on.")] = 512,
    debug: Annotated[bool, typer.Option(help="Show the traceback of an error.")] = False,
) -> None:
    """Add reduced-precision copies of a bundle's graphs (files beside them, listed in model.json
    `variants` with their parity against float32); `vaegen-infer --precision int8` uses them."""
    from train.variants import build_variants
    from vaegen_infer.errors import VaegenError

    try:
        summary = build_variants(bundle, int8=int8, fp16=fp16, calibration_images=calibration_images)
    except VaegenError as exc:
        raise _fail(exc, debug) from None
    for precision, parity in summary.items():
        worst = {role: max(d.values()) for role, d in parity["max_abs_diff"].items()}
        typer.echo(
            f"wrote {precision} variant of {bundle} (largest |{precision} - float32|: "
            + ", ".join(f"{role} {v:.2e}" for role, v in worst.items())
            + ")"
        )
