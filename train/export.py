"""The exporter: checkpoint -> bundle (`encoder.onnx`, `decoder.onnx`, `model.json`).

It checks its own output: `onnx.checker`, then ONNX Runtime against PyTorch on batches of 1, 7 and
64, failing above `PARITY_TOL`. The bundle is assembled in a temporary directory and moved into
place only when every check passed, so a failed export never leaves a half-written bundle.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vaegen_infer
from train import dsprites
from train.config import ModelConfig
from train.models import Autoencoder, DecoderGraph, EncoderGraph, LabelDecoderGraph
from vaegen_infer.bundle import sha256_file
from vaegen_infer.errors import VaegenError
from vaegen_infer.io import make_temp_dir
from vaegen_infer.manifest import (
    DECODER_INPUT,
    DECODER_LABEL_INPUT,
    DECODER_OUTPUTS,
    ENCODER_INPUT,
    ENCODER_OUTPUTS,
    MANIFEST_FILE,
    Attribute,
    ImageSpec,
    Manifest,
    PreprocessSpec,
    PriorSpec,
    graph_specs,
)
from vaegen_infer.priors import Prior, make_prior

PARITY_TOL = 1e-5
PARITY_BATCHES = (1, 7, 64)
OPSET = 18
# Chosen by measurement (benchmarks/results/exporter_choice.md): see `compare_exporters`.
DEFAULT_EXPORTER = "dynamo"
EXPORTERS = ("dynamo", "torchscript")


class ExportError(VaegenError):
    """The exported graphs are invalid or disagree with PyTorch."""


def _export_one(
    module: torch.nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    input_name: str | tuple[str, ...],
    output_names: tuple[str, ...],
    exporter: str,
) -> bytes:
    """Serialize one graph with a dynamic batch axis on its input(s) and every output. Several
    inputs (the supervised AAE's decoder: z and y) share the one batch axis."""
    examples = example if isinstance(example, tuple) else (example,)
    input_names = input_name if isinstance(input_name, tuple) else (input_name,)
    module.eval()
    # torch.onnx logs a warning per missing torchvision op; they are irrelevant to these graphs.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about deprecations, not about our graph
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=1 << 20)
            program = torch.onnx.export(
                module,
                examples,
                dynamo=True,
                input_names=list(input_names),
                output_names=list(output_names),
                # keyed by the forward()'s argument names, which are the tensor names (x; z and y)
                dynamic_shapes={name: {0: batch} for name in input_names},
                opset_version=OPSET,
                optimize=True,
                verbose=False,
            )
            program.save(buf)
        elif exporter == "torchscript":
            axes = {name: {0: "batch"} for name in (*input_names, *output_names)}
            torch.onnx.export(
                module,
                examples,
                buf,
                dynamo=False,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=axes,
                opset_version=17,
                do_constant_folding=True,
            )
        else:
            raise ExportError(f"unknown exporter '{exporter}': use one of {', '.join(EXPORTERS)}")
    return buf.getvalue()


def export_graphs(model: Autoencoder, exporter: str = DEFAULT_EXPORTER) -> dict[str, bytes]:
    """{'encoder.onnx': bytes, 'decoder.onnx': bytes}; examples use batch 4 so batch is not baked in."""
    c, h, w = model.cfg.image_shape
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((4, c, h, w), generator=gen)
    z = torch.randn((4, model.cfg.latent_dim), generator=gen)
    k = model.cfg.decoder_labels
    if k:  # supervised AAE: the decoder's second input, the label one-hot y (N, K)
        y = torch.nn.functional.one_hot(torch.arange(4) % k, k).float()
        decoder = _export_one(
            LabelDecoderGraph(model), (z, y), (DECODER_INPUT, DECODER_LABEL_INPUT), DECODER_OUTPUTS, exporter
        )
    else:
        decoder = _export_one(DecoderGraph(model), z, DECODER_INPUT, DECODER_OUTPUTS, exporter)
    return {
        "encoder.onnx": _export_one(EncoderGraph(model), x, ENCODER_INPUT, ENCODER_OUTPUTS, exporter),
        "decoder.onnx": decoder,
    }


def code_error(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| for mu and logvar (N, D), relative to max(1, |want|): absolute below 1.

    An encoder that has learned to be sure of a dimension puts its logvar near -20 (mu reaches |14|
    on dSprites), where float32 values are 1.9e-6 apart and a 200-wide layer's sums, added in another
    order by ONNX Runtime, land a few of those steps away: 1.34e-5 measured at a logvar of -20.3 on an
    MLP beta-VAE baseline, 6.6e-7 of the value. That is rounding, not an unfaithful graph; a std
    exp(logvar / 2) moves by half the relative error."""
    return np.abs(got.astype(np.float64) - want) / np.maximum(1.0, np.abs(want))


def logit_error(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| for logits (N, C, H, W), relative to max(1, |want|, 1% of the batch's largest |logit|).

    Logits reach |20| and more, where float32 spacing alone is ~2e-6, so they are compared relative
    to their size. And where they span hundreds (a Gaussian decoder's background, pushed far below
    zero by the straight-through sigmoid; 1,140 measured on a FiLM Color-dSprites decoder), a logit
    near zero is a sum of terms of that size that cancel, exact only to float32 rounding of those
    terms: 1.8e-5 measured at a logit of -0.68 while the image differed by 4e-6. The image keeps the
    absolute 1e-5 bound, so what users get is held to it either way; codes use `code_error`."""
    scale = np.maximum(np.maximum(1.0, np.abs(want)), 0.01 * float(np.max(np.abs(want), initial=0.0)))
    return np.abs(got.astype(np.float64) - want) / scale


def check_graphs(
    model: Autoencoder, graphs: dict[str, bytes], batches: tuple[int, ...] = PARITY_BATCHES
) -> dict[str, float]:
    """onnx.checker, then ORT (CPU) vs PyTorch; returns the largest difference per graph output
    (absolute for images, mu and logvar; relative to max(1, |logit|) for logits).

    Raises ExportError naming the output and batch size when a difference exceeds PARITY_TOL.
    """
    import onnx
    import onnxruntime as ort

    for name, data in graphs.items():
        try:
            onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"{name} fails onnx.checker: {str(exc).splitlines()[0]}") from exc
    sessions = {name: ort.InferenceSession(data, providers=["CPUExecutionProvider"]) for name, data in graphs.items()}
    c, h, w = model.cfg.image_shape
    rng = np.random.default_rng(123)
    worst: dict[str, float] = {}
    model.eval()
    k = model.cfg.decoder_labels
    for n in batches:
        x = rng.random((n, c, h, w), dtype=np.float32)
        z = rng.standard_normal((n, model.cfg.latent_dim), dtype=np.float32)
        dec_feeds = {DECODER_INPUT: z}
        y = None
        if k:  # a random label per row, one-hot (n, K)
            y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
            dec_feeds[DECODER_LABEL_INPUT] = y
        with torch.no_grad():
            mu, logvar = model.encode(torch.from_numpy(x))
            logits = model.decode(torch.from_numpy(z), None if y is None else torch.from_numpy(y))
        expected = {
            ("encoder.onnx", "mu"): mu.numpy(),
            ("encoder.onnx", "logvar"): logvar.numpy(),
            ("decoder.onnx", "x"): torch.sigmoid(logits).numpy(),
            ("decoder.onnx", "logits"): logits.numpy(),
        }
        got_enc = dict(zip(ENCODER_OUTPUTS, sessions["encoder.onnx"].run(list(ENCODER_OUTPUTS), {ENCODER_INPUT: x})))
        got_dec = dict(zip(DECODER_OUTPUTS, sessions["decoder.onnx"].run(list(DECODER_OUTPUTS), dec_feeds)))
        for (graph, out), want in expected.items():
            got = (got_enc if graph == "encoder.onnx" else got_dec)[out]
            if got.shape != want.shape:
                raise ExportError(
                    f"{graph} output '{out}' has shape {got.shape} at batch {n}, PyTorch gives {want.shape}"
                )
            if out == "logits":
                err = logit_error(got, want)
            elif out in ("mu", "logvar"):
                err = code_error(got, want)
            else:
                err = np.abs(got.astype(np.float64) - want)
            diff = float(np.max(err))
            key = f"{graph}:{out}"
            worst[key] = max(worst.get(key, 0.0), diff)
            if not diff <= PARITY_TOL:
                kind = "difference" if out == "x" else "relative difference"
                raise ExportError(
                    f"{graph} output '{out}' differs from PyTorch (largest {kind} {diff:.2e} at batch {n}, "
                    f"tolerance {PARITY_TOL:.0e}); the export is not faithful"
                )
    return worst


def producer_versions(exporter: str) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    return {
        "vaegen_infer": vaegen_infer.__version__,
        "torch": str(torch.__version__),
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "exporter": exporter,
        "opset": OPSET if exporter == "dynamo" else 17,
    }


def write_bundle(
    out: Path,
    graphs: dict[str, bytes],
    build_manifest: Callable[[dict[str, str]], Manifest],
    overwrite: bool = True,
) -> Path:
    """Write graphs and model.json into a temporary sibling directory, validate it, then swap it in."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; pass --overwrite to replace it")
    tmp = make_temp_dir(out)
    try:
        for name, data in graphs.items():
            (tmp / name).write_bytes(data)
        hashes = {name: sha256_file(tmp / name) for name in graphs}
        manifest = build_manifest(hashes)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
        # The runtime must accept what we wrote: load it the way users will.
        check = vaegen_infer.load(tmp, providers="cpu")
        check.sample(2, seed=0, label=0 if check.label_decoder else None)
        check.encode(np.zeros((1, *check.image_shape), np.float32))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def check_prior(model: Autoencoder, prior: Prior, tol: float = 1e-3) -> None:
    """The runtime's log p(z) (numpy, float64) against training's (torch) at 256 codes near the
    prior's mass, for priors with a density; nats per code. Training has a density of its own only
    for N(0, I) and the learned VampPrior (`Autoencoder.log_prior`); the AAE's named priors (mog,
    swiss roll) are the runtime's own numpy code in training too, so there is nothing to drift."""
    if not (model.has_learned_prior or model.cfg.prior == "gaussian") or not prior.has_density:
        return
    z = prior.sample(256, np.random.default_rng(0))  # (256, D)
    ours = prior.log_density(z)
    with torch.no_grad():
        theirs = model.log_prior(torch.from_numpy(z).double()).numpy()
    worst = float(np.abs(ours - theirs).max())
    if worst > tol:
        raise ExportError(f"the exported prior's log-density differs from training's by {worst:.2e} nats (> {tol})")


def image_spec(model: Autoencoder, payload: dict[str, Any]) -> ImageSpec:
    """The manifest's `image` entry: shape, likelihood (with the Gaussian's shared log_sigma from
    the run's summary), the data kind scores are reported in, and the preprocessing of the data."""
    cfg: ModelConfig = model.cfg
    c, h, w = cfg.image_shape
    tcfg = payload["train_config"]
    params: dict[str, float] = {}
    if cfg.likelihood == "gaussian":
        log_sigma = payload["summary"].get("log_sigma")
        if log_sigma is None:
            raise ExportError("this gaussian run's summary has no log_sigma (validation never ran); refit it")
        params["log_sigma"] = round(float(log_sigma), 6)
    # 8-bit data are scored in bits/dim with the discretised likelihood; binarised digits in nats.
    data = "8bit" if cfg.likelihood == "gaussian" else "binary"
    preprocess = PreprocessSpec(tcfg.get("crop"), tcfg.get("resize", "auto"), tcfg.get("aspect", "stretch"))
    return ImageSpec(c, h, w, (0.0, 1.0), cfg.likelihood, params, data, preprocess)


def base_manifest(
    name: str,
    model: Autoencoder,
    payload: dict[str, Any],
    hashes: dict[str, str],
    exporter: str,
    description: str,
    prior: PriorSpec,
    labels: list[str] | None,
    conditional: bool,
) -> Manifest:
    cfg: ModelConfig = model.cfg
    image = image_spec(model, payload)
    encoder, decoder = graph_specs(image, cfg.latent_dim, hashes, cfg.decoder_labels)
    return Manifest(
        name=name,
        kind=cfg.kind,
        description=description,
        image=image,
        latent_dim=cfg.latent_dim,
        prior=prior,
        labels=labels,
        conditional=conditional,
        label_input=DECODER_LABEL_INPUT if cfg.decoder_labels else None,
        encoder=encoder,
        decoder=decoder,
        attributes={},
        training={
            "model_config": payload["model_config"],
            "train_config": payload["train_config"],
            "seed": payload["train_config"]["seed"],
            "data": payload["data"],
            "summary": payload["summary"],
        },
        producer=producer_versions(exporter),
    )


def graph_representation(encoder_onnx: bytes, channels: int) -> Callable[[np.ndarray], np.ndarray]:
    """images (n, C', H, W) -> posterior means (n, D) through the exported encoder (ONNX Runtime,
    CPU), converting grey / RGB renderings to the model's channels as the runtime does."""
    import onnxruntime as ort

    session = ort.InferenceSession(encoder_onnx, providers=["CPUExecutionProvider"])

    def representation(images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32)
        if x.shape[1] == 1 and channels == 3:
            x = np.repeat(x, 3, axis=1)  # grey -> RGB: replicate
        elif x.shape[1] == 3 and channels == 1:  # RGB -> grey: ITU-R 601 luma
            x = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), x, axes=([0], [1]))[:, None]
        return session.run([ENCODER_OUTPUTS[0]], {ENCODER_INPUT: x})[0]  # (n, D) mu

    return representation


def export_latent_factors(model: Autoencoder, payload: dict[str, Any], encoder_onnx: bytes) -> dict[str, Any]:
    """`latent_factors` of a run on data with ground-truth factors (dSprites), measured through the
    exported encoder on freshly rendered images (train/disentangle.py, EXPORT_MIG_POINTS)."""
    from train.disentangle import latent_factors, source_for
    from vaegen_infer.factors import DEFAULT_THRESHOLD

    c, h, _ = model.cfg.image_shape
    tcfg = payload["train_config"]
    source = source_for(tcfg["data"], int(tcfg.get("data_seed", 0)), size=h)
    return latent_factors(source, graph_representation(encoder_onnx, c), DEFAULT_THRESHOLD)


def export_run(
    run: Path,
    out: Path,
    name: str | None = None,
    description: str = "",
    exporter: str = DEFAULT_EXPORTER,
    attributes: dict[str, Attribute] | None = None,
    latent_stats: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    sampler_components: int = 0,
    turn_steps: int = 0,
) -> tuple[Path, dict[str, float]]:
    """Export a training run to a checked bundle at `out`; returns the path and the parity report.
    `sampler_components` K > 0 also fits a K-component mixture to the training codes for `sample`
    to draw from (model.json's `sampler`; train.analysis.fit_sampler). `turn_steps` > 0 turns
    dSprites' orientation directions through the decoder (train.analysis.turn_through_decoder)."""
    from train.analysis import builtin_attributes, fit_sampler, latent_statistics, sampler_check
    from train.config import TrainConfig
    from train.fit import load_checkpoint, load_data

    model, payload = load_checkpoint(run)
    if sampler_components and model.cfg.conditional:
        raise ExportError(
            f"{run}: a label-conditioned model samples by label from its prior's regions; --sampler "
            "cannot replace them: leave --sampler at prior"
        )
    started = time.time()
    split = load_data(TrainConfig.from_dict(payload["train_config"]))
    if turn_steps and not any(n in dsprites.FIT_ON_SHAPE for n in split.attribute_kinds):
        raise ExportError(f"{run}: --turn-orientation applies to dSprites runs, whose orientation it turns; "
                          f"this one has no orientation attributes")  # fmt: skip
    if attributes is None:
        attributes = builtin_attributes(model, split, turn_steps)
    if latent_stats is None:
        latent_stats = latent_statistics(model, split)
    graphs = export_graphs(model, exporter)
    parity = check_graphs(model, graphs)
    labels = payload["data"].get("labels")
    cfg = model.cfg
    # Rebuild the prior through the runtime's registry so model.json records every parameter; a
    # learned prior must give the runtime the same density as in training.
    runtime_prior = make_prior(model.prior_spec(), cfg.latent_dim)
    check_prior(model, runtime_prior)
    prior = runtime_prior.spec()
    conditional = cfg.conditional
    factors = export_latent_factors(model, payload, graphs["encoder.onnx"]) if split.factors else {}
    sampler, sampler_record, check = None, None, None
    if sampler_components:
        try:
            fitted, sampler_record = fit_sampler(model, split, sampler_components, runtime_prior)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
        sampler = fitted.spec()
    elif not conditional:  # would a fitted sampler do better? (recorded; `train export` says so)
        check = sampler_check(model, split, runtime_prior)

    def build(hashes: dict[str, str]) -> Manifest:
        m = base_manifest(name or out.name, model, payload, hashes, exporter, description, prior, labels, conditional)
        m.attributes = dict(attributes or {})
        m.latent_stats = dict(latent_stats or {})
        m.latent_factors = factors
        m.sampler = sampler
        if sampler_record is not None:
            m.training["sampler"] = sampler_record
        if check is not None:
            m.training["sampler_check"] = check
        m.metrics = dict(metrics or {})
        m.producer["parity_max_abs_diff"] = {k: float(f"{v:.3g}") for k, v in parity.items()}
        m.producer["parity_batches"] = list(PARITY_BATCHES)
        m.producer["export_seconds"] = round(time.time() - started, 2)
        return m

    return write_bundle(out, graphs, build), parity


def model_from_bundle(path: Path) -> Autoencoder:
    """Rebuild the PyTorch model of a bundle from its manifest config and its ONNX weights.

    The exporter keeps parameter names (`model.<state_dict key>`), so the shipped graphs carry
    everything needed to recreate the PyTorch model they came from: parity tests and the PyTorch
    latency baselines use this instead of a second copy of the weights in git. A VampPrior comes
    back as the mixture the bundle stores (`Autoencoder.fix_prior`), not as pseudo-inputs.
    """
    import onnx
    from onnx import numpy_helper

    manifest = vaegen_infer.load(path, providers="cpu").manifest
    model = Autoencoder(ModelConfig.from_dict(manifest.training["model_config"]))
    weights: dict[str, torch.Tensor] = {}
    for role in ("encoder", "decoder"):
        graph = onnx.load(str(Path(path) / manifest.graph(role).file))
        for init in graph.graph.initializer:
            if init.name.startswith("model."):
                weights[init.name.removeprefix("model.")] = torch.from_numpy(numpy_helper.to_array(init).copy())
    if model.pseudo_logits is not None:
        # The graphs hold no pseudo-inputs: the bundle keeps the learned prior as its components.
        spec = manifest.prior
        weights_k = spec.params["weights"]
        if max(weights_k) - min(weights_k) > 1e-9:
            raise ExportError(f"{path}: a VampPrior's mixture has equal weights; this bundle's do not")
        means = torch.tensor(spec.params["means"], dtype=torch.float32)  # (K, D)
        logvars = torch.tensor(spec.params["logvars"], dtype=torch.float32)  # (K, D)
        model.fix_prior(means, logvars)
    state = model.state_dict()
    missing = sorted(set(state) - set(weights))
    if missing:
        raise ExportError(f"{path}: the graphs lack weights for {', '.join(missing[:3])}; cannot rebuild the model")
    model.load_state_dict({k: weights[k] for k in state})
    model.eval()
    return model
