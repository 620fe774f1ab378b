"""Fitting a VAE: loss = -log p(x | z) + beta * KL, with the levers issue 5 measures (warm-up, free
bits, dynamic binarisation, augmentation, schedule) and the best-on-validation weights kept.

The loop is built from pieces that the AAE loop (train/aae.py) shares: `BatchOrder` (the data
order, resumable), `make_optimiser`, `Ema`, `Budget` and the resume checkpoint (`ResumeState`).

Likelihoods. `bernoulli`: BCE on grey levels. `gaussian`: N(x; mean, sigma^2 I) with mean =
sigmoid(logits) in [0, 1] and ONE sigma shared by every pixel and image, calibrated as in the
sigma-VAE (Rybkin, Daniilidis & Levine 2021, "Simple and Effective VAE Training with Calibrated
Decoders", their "optimal sigma" variant): each batch uses the analytic maximum-likelihood value
sigma* = sqrt(MSE of the batch), floored at exp(-6) (their code soft-clips there). No lambda against
MSE to tune. The value shipped in model.json (`likelihood_params.log_sigma`) is the same estimate
on the validation split with the kept weights.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from train.config import ModelConfig, TrainConfig, to_dict
from train.data import Split, to_float

if TYPE_CHECKING:
    from train.data import DataOptions
from train.models import LOG_2PI, Autoencoder, log_normal, log_normal_at_draw
from train.objectives import objective_loss
from vaegen_infer.errors import BundleError, UsageError

CHECKPOINT_FILE = "checkpoint.pt"
RESUME_FILE = "resume.pt"
CHECKPOINT_FORMAT = "vaegen-checkpoint-1"
RESUME_FORMAT = "vaegen-resume-1"
LOG_SIGMA_MIN = -6.0  # the sigma-VAE's soft floor on log sigma


def set_seed(seed: int, threads: int = 0) -> None:
    from vaegen_infer.providers import physical_cores

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(threads or physical_cores())


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(N(mu, sigma^2) || N(0, 1)) per example and dimension, (N, D)."""
    return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar)


def bce_per_image(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood summed over pixels, (N,). Works on logits to avoid log(0)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def squared_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over pixels of (x - sigmoid(logits))^2, (N,).

    The value is exact; the gradient reaching `logits` is dL/dmean itself, without the sigmoid's
    derivative mean (1 - mean) (a straight-through step, as BCE's gradient mean - x has). Under
    squared error a sigmoid mean saturates: measured on Color-dSprites (95% black pixels), the
    logits reached -100..-9 within 600 steps, every pixel black, the MSE stuck at the mean image's
    0.0283 and the gradient at the shapes' pixels ~0. The optimum (mean = x) is unchanged."""
    mean = torch.sigmoid(logits)
    if logits.requires_grad:
        mean = mean.detach() + (logits - logits.detach())  # forward: sigmoid(logits); backward: identity
    return (target - mean).pow(2).flatten(1).sum(1)


def optimal_log_sigma(sse: torch.Tensor, pixels: int) -> torch.Tensor:
    """The shared sigma maximising the Gaussian likelihood: log sqrt(sum SSE / (N * pixels)), held
    at or above LOG_SIGMA_MIN. sse (N,) -> scalar. (The sigma-VAE's code soft-clips; a hard floor
    keeps the value exactly the maximum-likelihood one above it, which is what model.json stores.)"""
    log_sigma = 0.5 * torch.log(sse.sum() / (sse.numel() * pixels))
    return torch.clamp(log_sigma, min=LOG_SIGMA_MIN)


def gaussian_nll(sse: torch.Tensor, pixels: int, log_sigma: torch.Tensor | float) -> torch.Tensor:
    """-log N(x; mean, sigma^2 I) per image from its squared error, (N,) -> (N,), in nats:
    pixels * (log(2 pi) / 2 + log sigma) + SSE / (2 sigma^2)."""
    log_sigma = torch.as_tensor(log_sigma, dtype=sse.dtype)
    return pixels * (0.5 * LOG_2PI + log_sigma) + 0.5 * sse * torch.exp(-2.0 * log_sigma)


def rec_per_image(likelihood: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) per image, (N,), nats. Gaussian: with the batch's optimal shared sigma."""
    if likelihood == "bernoulli":
        return bce_per_image(logits, target)
    pixels = math.prod(target.shape[1:])
    sse = squared_error(logits, target)
    return gaussian_nll(sse, pixels, optimal_log_sigma(sse, pixels))


def augment(x: torch.Tensor, shift: float, rotate: float, gen: torch.Generator) -> torch.Tensor:
    """Random shifts of up to `shift` pixels and rotations of up to `rotate` degrees, bilinear,
    zero padding. (N, C, H, W) -> (N, C, H, W)."""
    n, _, h, w = x.shape
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(rotate)
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2 s / size
    tx = (torch.rand(n, generator=gen) * 2 - 1) * shift * 2 / w
    ty = (torch.rand(n, generator=gen) * 2 - 1) * shift * 2 / h
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def training_batch(xb: torch.Tensor, tcfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Images (B, C, H, W) as the model trains on them: augmented if asked, then binarised afresh
    (dynamic binarisation) or kept as grey levels."""
    if tcfg.shift or tcfg.rotate:
        xb = augment(xb, tcfg.shift, tcfg.rotate, gen)
    return torch.bernoulli(xb, generator=gen) if tcfg.binarize == "dynamic" else xb


def iwae_loss(
    model: Autoencoder, target: torch.Tensor, k: int, beta: float, estimator: str = "iwae"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-log (1/k) sum_j w_j with w_j = p(x | z_j) p(z_j)^beta / q(z_j | x)^beta, z_j ~ q(z | x),
    averaged over the batch; k = 1 is the (beta-weighted) ELBO. Also returns the one-sample
    reconstruction term and the analytic KL per dimension (D,) for logging.

    The returned loss's gradient is the IWAE gradient for the decoder and the prior. For the encoder,
    `iwae` differentiates the bound as it is; `dreg` (Tucker et al. 2018) drops the score-function
    part (q's parameters are held fixed inside log q) and weighs each sample's path gradient by the
    squared normalised weight w~_j^2 instead of w~_j."""
    if estimator not in ("iwae", "dreg"):
        raise UsageError(f"iw_estimator must be one of iwae, dreg; got {estimator!r}")
    mu, logvar = model.encode(target)  # (B, D)
    eps = torch.randn((k, *mu.shape), dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps  # (k, B, D)
    weights: list[torch.Tensor] = []  # filled after the forward pass, read by the hook in backward
    if estimator == "dreg" and z.requires_grad:
        # Scale the gradient reaching z (and through it the encoder) by w~_j: combined with the w~_j
        # of the surrogate below, the encoder's path gradient is weighted by w~_j^2.
        z.register_hook(lambda grad: grad * weights[0].unsqueeze(-1))
    logits = model.decode(z.reshape(-1, mu.shape[1]))
    rep = target.unsqueeze(0).expand(k, *target.shape).reshape(-1, *target.shape[1:])
    log_px = -rec_per_image(model.cfg.likelihood, logits, rep).view(k, -1)  # (k, B)
    # (k, B) log q(z | x): DReG holds q's parameters fixed; IWAE takes it at its own draws
    dreg = estimator == "dreg"
    log_qz = log_normal(z, mu.detach(), logvar.detach()) if dreg else log_normal_at_draw(eps, logvar)
    log_w = log_px + beta * (model.log_prior(z) - log_qz)  # (k, B)
    bound = torch.logsumexp(log_w, 0) - math.log(k)  # (B,)
    if estimator == "dreg":
        w_tilde = torch.softmax(log_w.detach(), 0)  # (k, B) normalised importance weights
        weights.append(w_tilde)
        # Same value as -bound; the gradient of sum_j w~_j log w_j is the IWAE gradient for the
        # decoder and the prior, and, after the hook, DReG's for the encoder.
        surrogate = -(w_tilde * log_w).sum(0)
        loss = (surrogate - surrogate.detach() - bound.detach()).mean()
    else:
        loss = -bound.mean()
    return loss, -log_px[0].mean(), kl_per_dim(mu, logvar).mean(0)


# The objective's extra terms that go into the history (beta-tcvae: the KL's parts, train/objectives.py).
LOGGED_TERMS = ("mi", "tc", "dimwise_kl")
StepLosses = tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]


def vae_step_loss(
    model: Autoencoder, target: torch.Tensor, tcfg: TrainConfig, beta: float, dataset_size: int = 0
) -> StepLosses:
    """(loss, reconstruction term, KL, extra terms to log) of one batch, each a scalar (batch
    means); `dataset_size` (the training set's) is what beta-tcvae's estimator needs."""
    if tcfg.iw_samples > 1 or model.pseudo_logits is not None:  # k = 1: the ELBO, KL sampled
        loss, rec, kd = iwae_loss(model, target, tcfg.iw_samples, beta, tcfg.iw_estimator)
        return loss, rec, kd.sum(), {}
    mu, logvar = model.encode(target)
    z = model.code(mu, logvar)
    logits = model.decode(z)
    rec = rec_per_image(model.cfg.likelihood, logits, target).mean()
    kd = kl_per_dim(mu, logvar).mean(0)  # (D,) batch-mean KL per dimension
    kl = kd.sum()
    # Free bits: dimensions below the floor carry no penalty, so they stay in use.
    kl_pen = torch.clamp(kd, min=tcfg.free_bits).sum() if tcfg.free_bits > 0 else kl
    loss, extra = objective_loss(tcfg.objective, rec, kl_pen, z, mu, logvar, beta, dataset_size)
    return loss, rec, kl, {k: extra[k] for k in LOGGED_TERMS if k in extra}


@torch.no_grad()
def evaluate_elbo(model: Autoencoder, x: Any, batch: int = 500) -> dict[str, Any]:
    """Mean ELBO terms on images `x` ((N, C, H, W) array-like, uint8 or float; targets as given),
    one posterior draw per image with fixed noise. Gaussian decoders use the shared sigma that is
    optimal on `x` (returned as `log_sigma`), as the sigma-VAE calibrates it."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)  # fixed eps: validation numbers comparable across epochs
    gaussian = model.cfg.likelihood == "gaussian"
    rec_sum, kl_sum, sse_sum = 0.0, 0.0, 0.0
    kl_dims = torch.zeros(model.cfg.latent_dim)
    n = len(x)
    for start in range(0, n, batch):
        xb = torch.from_numpy(to_float(x[start : start + batch]))
        mu, logvar = model.encode(xb)
        eps = torch.randn(mu.shape, generator=gen)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = model.decode(z)
        if gaussian:
            sse_sum += squared_error(logits, xb).double().sum().item()
        else:
            rec_sum += bce_per_image(logits, xb).sum().item()
        kd = kl_per_dim(mu, logvar)  # against N(0, I): the per-dimension usage, whatever the prior
        kl_dims += kd.sum(0)
        if model.pseudo_logits is None:
            kl_sum += kd.sum().item()
        else:  # no closed form against a mixture: the one-sample estimate log q(z | x) - log p(z)
            log_qz = log_normal_at_draw(eps, logvar)
            kl_sum += (log_qz - model.log_prior(z)).sum().item()
    out: dict[str, Any] = {}
    if gaussian:
        pixels = math.prod(model.cfg.image_shape)
        log_sigma = optimal_log_sigma(torch.tensor([sse_sum], dtype=torch.float64), pixels * n)
        rec_sum = float(gaussian_nll(torch.tensor([sse_sum], dtype=torch.float64), pixels * n, log_sigma).item())
        out["log_sigma"] = float(log_sigma)
        out["mse"] = sse_sum / (n * pixels)
    return {
        "rec": rec_sum / n,
        "kl": kl_sum / n,
        "elbo": -(rec_sum + kl_sum) / n,
        "kl_per_dim": (kl_dims / n).tolist(),
        **out,
    }


# ------------------------------------------------------------------------------------------
# Pieces of the loop
# ------------------------------------------------------------------------------------------


class BatchOrder:
    """Endless shuffled minibatch indices: a fresh permutation of range(n) from `gen` each time the
    last one is used up (drawn when the first batch of the next pass is asked for, so a run whose
    epochs are whole passes draws exactly as the one-permutation-per-epoch loop did). Its state
    (permutation and position) is part of the resume checkpoint."""

    def __init__(self, n: int, batch: int, gen: torch.Generator) -> None:
        self.n, self.batch, self.gen = n, batch, gen
        self.perm = torch.randperm(n, generator=gen)
        self.pos = 0

    def next(self) -> np.ndarray:
        if self.pos >= self.n:
            self.perm = torch.randperm(self.n, generator=self.gen)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch]  # (B,), the last of a pass may be shorter
        self.pos += len(idx)
        return idx.numpy()

    def state_dict(self) -> dict[str, Any]:
        return {"perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["perm"]) != self.n:
            raise UsageError(
                f"the resume state was saved for {len(state['perm'])} training images; the data has {self.n}"
            )
        self.perm, self.pos = state["perm"].clone(), int(state["pos"])


def optimiser_step(
    losses: StepLosses,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler | None,
    ema: Ema | None,
) -> dict[str, float]:
    """Backpropagate the first of (loss, rec, kl, extra), step the optimiser, the schedule and the
    EMA; returns the three and the extra terms as floats."""
    loss, rec, kl, extra = losses
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()
    if ema is not None:
        ema.update(model)
    return {"loss": loss.item(), "rec": rec.item(), "kl": kl.item(), **extra}


def steps_per_epoch(tcfg: TrainConfig, n_train: int) -> int:
    """An epoch is `epoch_images` images (validation and best-weight choice after each), or one pass."""
    return math.ceil((tcfg.epoch_images or n_train) / tcfg.batch_size)


def images_after(steps: int, n_train: int, batch_size: int) -> int:
    """Training images seen after `steps` steps of BatchOrder: whole passes of n_train images in
    ceil(n_train / batch_size) steps each (the last batch of a pass is short), then full batches."""
    per_pass = math.ceil(n_train / batch_size)
    passes, rest = divmod(steps, per_pass)
    return passes * n_train + min(rest * batch_size, n_train)


def make_optimiser(
    params: list[torch.nn.Parameter], tcfg: TrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """Adam (AdamW with decoupled decay when asked) and the step-wise schedule."""
    if tcfg.weight_decay > 0:  # decoupled decay (Loshchilov & Hutter): shrinks weights, not the gradient scale
        opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=tcfg.lr)
    sched = None
    if tcfg.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps), eta_min=tcfg.lr * 0.02)
    return opt, sched


class Ema:
    """Exponential moving average of the weights (Polyak averaging): ema = d * ema + (1 - d) * w."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p, 1.0 - self.decay)


class Budget:
    """Wall-clock budget in minutes (0 = none), counting time already spent before a resume."""

    def __init__(self, minutes: float, spent: float = 0.0) -> None:
        self.limit = minutes * 60.0
        self.spent = spent
        self.started = time.time()

    @property
    def elapsed(self) -> float:
        return self.spent + time.time() - self.started

    def exhausted(self) -> bool:
        return self.limit > 0 and self.elapsed >= self.limit


def init_vamp(model: Autoencoder, data: Split, tcfg: TrainConfig) -> None:
    """VampPrior pseudo-inputs start as K distinct training images (clipped so their logits are finite)."""
    if model.pseudo_logits is None:
        return
    if tcfg.free_bits > 0:
        raise UsageError("free_bits needs the closed-form KL of the Gaussian prior; set it to 0 with the vamp prior")
    k = len(model.pseudo_logits)
    if k > len(data.x_train):
        raise UsageError(f"{k} VampPrior components but only {len(data.x_train)} training images; ask for fewer")
    pick = np.random.default_rng(tcfg.seed).choice(len(data.x_train), size=k, replace=False)
    start = torch.from_numpy(np.clip(to_float(data.x_train[pick]), 0.05, 0.95))  # (K, C, H, W)
    with torch.no_grad():
        model.pseudo_logits.copy_(torch.logit(start))


def validation_targets(data: Split, tcfg: TrainConfig) -> Any:
    """Validation images as the loss sees them: as stored, or binarised once with a fixed seed when
    training on fresh binary draws."""
    if tcfg.binarize != "dynamic":
        return data.x_val
    from vaegen_infer.datasets import binarize

    return binarize(to_float(data.x_val[:]), seed=tcfg.seed + 1)


def beta_at(tcfg: TrainConfig, epoch: int) -> float:
    """KL weight in epoch `epoch` (0-based): linear warm-up from beta / warmup_epochs to beta."""
    return tcfg.beta * min(1.0, (epoch + 1) / tcfg.warmup_epochs) if tcfg.warmup_epochs else tcfg.beta


def is_better(tcfg: TrainConfig, beta: float, val: dict[str, Any], best: dict[str, Any]) -> bool:
    """Early stopping by selection: the best validation ELBO at full beta (or always, keep=last)."""
    return tcfg.keep == "last" or (beta >= tcfg.beta and val["elbo"] > best["elbo"])


@dataclass
class ResumeState:
    """Everything a resumed run needs to continue as if never stopped; saved as RESUME_FILE."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps completed
    step_in_epoch: int = 0
    images: int = 0  # training images seen
    sums: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "rec": 0.0, "kl": 0.0, "images": 0.0})
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"elbo": -math.inf})
    best_state: dict[str, torch.Tensor] | None = None
    elapsed: float = 0.0

    def count(self, losses: dict[str, float], images: int) -> None:
        """One optimiser step on `images` images with these batch-mean losses."""
        self.step += 1
        self.step_in_epoch += 1
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + value * images  # extra terms appear on first use
        self.sums["images"] += images
        self.images += images

    def record(self, beta: float, val: dict[str, Any], elapsed: float) -> dict[str, Any]:
        """The history row of the epoch that just ended: training means and validation terms."""
        seen = max(1.0, self.sums["images"])
        return {
            "epoch": self.epoch + 1,
            "step": self.step,
            **{key: self.sums[key] / seen for key in ("loss", "rec", "kl")},
            "beta": beta,
            **{key: self.sums[key] / seen for key in LOGGED_TERMS if key in self.sums},
            "val_elbo": val["elbo"],
            "val_rec": val["rec"],
            "val_kl": val["kl"],
            **({"val_mse": val["mse"], "log_sigma": val["log_sigma"]} if "log_sigma" in val else {}),
            "seconds": round(elapsed, 1),
        }


def save_resume(
    out: Path,
    state: ResumeState,
    modules: dict[str, Any],
    gen: torch.Generator,
    order: BatchOrder,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
) -> Path:
    """Model, optimiser(s), schedule, EMA, RNG states (torch global, the data generator, numpy's
    global) and the data order, atomically. `modules` maps names to objects with state_dict()."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": RESUME_FORMAT,
        "model_config": to_dict(mcfg),
        "train_config": to_dict(tcfg),
        "modules": {name: m.state_dict() for name, m in modules.items() if m is not None},
        "torch_rng": torch.get_rng_state(),
        "gen_rng": gen.get_state(),
        "numpy_rng": _numpy_state(),
        "order": order.state_dict(),
        "loop": {k: v for k, v in state.__dict__.items() if k != "best_state"},
        "best_state": state.best_state,
    }
    tmp = out / (RESUME_FILE + ".part")
    torch.save(payload, tmp)
    tmp.replace(out / RESUME_FILE)
    return out / RESUME_FILE


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "g": has_gauss, "c": cached}


def load_resume(out: Path, modules: dict[str, Any], gen: torch.Generator, order: BatchOrder) -> ResumeState:
    path = out / RESUME_FILE
    if not path.is_file():
        raise UsageError(f"no resume state at {path}: a run writes it every few minutes; start afresh without --resume")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != RESUME_FORMAT:
        raise BundleError(f"{path} is not a vaegen resume file (format {payload.get('format')!r})")
    for name, m in modules.items():
        if m is not None:
            m.load_state_dict(payload["modules"][name])
    torch.set_rng_state(payload["torch_rng"])
    gen.set_state(payload["gen_rng"])
    s = payload["numpy_rng"]
    np.random.set_state((s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["g"], s["c"]))
    order.load_state_dict(payload["order"])
    return ResumeState(**payload["loop"], best_state=payload["best_state"])


def read_resume_configs(out: Path) -> tuple[ModelConfig, TrainConfig]:
    """The configs a run was started with, from its resume file."""
    path = out / RESUME_FILE
    if not path.is_file():
        raise UsageError(f"no resume state at {path}: nothing to resume")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return ModelConfig.from_dict(payload["model_config"]), TrainConfig.from_dict(payload["train_config"])


# ------------------------------------------------------------------------------------------
# The VAE loop
# ------------------------------------------------------------------------------------------


def mig_probe(tcfg: TrainConfig, data: Split) -> Callable[[Callable[[np.ndarray], np.ndarray]], float] | None:
    """The learning-curve MIG probe for data with ground-truth factors, else None."""
    from train.disentangle import FACTOR_DATA, MigProbe

    if tcfg.data not in FACTOR_DATA:
        return None
    return MigProbe(tcfg.data, size=data.image_shape[1])


def posterior_means(model: Autoencoder) -> Callable[[np.ndarray], np.ndarray]:
    """images (n, C, H, W) float32 in [0, 1] -> mu (n, D), in eval mode without gradients."""

    def encode(images: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return model.encode(torch.from_numpy(images))[0].numpy()

    return encode


def fit_vae(
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    data: Split,
    out: Path,
    quiet: bool = False,
    resume: bool = False,
    stop_at_step: int | None = None,
) -> dict[str, Any]:
    """Train, keep the weights with the best validation ELBO, write `out/checkpoint.pt`.

    On data with ground-truth factors (dsprites, color-dsprites) each epoch's history record also
    holds `mig_curve`: MIG on 2,000 fixed fresh points (train.disentangle.MigProbe), the learning
    curve of disentanglement against images seen.

    A resume checkpoint (`out/resume.pt`: model, optimiser, schedule, EMA, RNG states, data order,
    history and best weights) is written between steps every `checkpoint_minutes`, when the time
    budget runs out (before the partial epoch is validated) and at the end; `resume=True`
    continues from it. A kill or Ctrl-C loses the steps since the last one. `stop_at_step`
    simulates an interruption (tests): the loop saves after that many steps and returns
    {"stopped_at_step": N}.

    A resumed run ends with the same weights as an uninterrupted one (tested, bit for bit) when it
    runs with the same torch build and thread count on the same data. It does not when those
    differ (float sums in another order), when folder data changed between the runs (a changed
    image count is refused; changed contents are not detected), or after a budget stop, for the
    history (checkpoint.pt of the stopped run records its partial epoch and its best weights).
    """
    if tcfg.objective == "beta-tcvae" and mcfg.prior != "gaussian":
        raise UsageError(f"objective beta-tcvae splits the KL against N(0, I); prior '{mcfg.prior}' is not that")
    set_seed(tcfg.seed, tcfg.threads)
    model = Autoencoder(mcfg)
    init_vamp(model, data, tcfg)
    n_train = len(data.x_train)
    per_epoch = steps_per_epoch(tcfg, n_train)
    opt, sched = make_optimiser(list(model.parameters()), tcfg, tcfg.epochs * per_epoch)
    ema = Ema(model, tcfg.ema) if tcfg.ema > 0 else None
    gen = torch.Generator().manual_seed(tcfg.seed)
    order = BatchOrder(n_train, tcfg.batch_size, gen)
    x_val = validation_targets(data, tcfg)
    modules = {"model": model, "opt": opt, "sched": sched, "ema": ema.model if ema else None}
    state = load_resume(out, modules, gen, order) if resume else ResumeState()
    if state.best_state is None:
        state.best_state = copy.deepcopy(model.state_dict())
    budget = Budget(tcfg.max_minutes, state.elapsed)
    last_save = time.time()
    probe = mig_probe(tcfg, data)

    def save() -> None:
        state.elapsed = budget.elapsed
        save_resume(out, state, modules, gen, order, mcfg, tcfg)

    # the bar counts images, so that a short last batch of a pass does not leave it short of 100%
    total = images_after(tcfg.epochs * per_epoch, n_train, tcfg.batch_size)
    bar = tqdm(total=total, initial=images_after(state.step, n_train, tcfg.batch_size), desc="fit", unit="img",
               unit_scale=True, disable=quiet, dynamic_ncols=True)  # fmt: skip
    stopped_early = False
    while state.epoch < tcfg.epochs and not stopped_early:
        model.train()
        beta = beta_at(tcfg, state.epoch)
        while state.step_in_epoch < per_epoch:
            idx = order.next()
            target = training_batch(torch.from_numpy(to_float(data.x_train[idx])), tcfg, gen)
            losses = optimiser_step(vae_step_loss(model, target, tcfg, beta, n_train), model, opt, sched, ema)
            state.count(losses, len(idx))
            bar.update(len(idx))
            if stop_at_step is not None and state.step >= stop_at_step:
                save()
                bar.close()
                return {"stopped_at_step": state.step}
            if tcfg.checkpoint_minutes and time.time() - last_save >= tcfg.checkpoint_minutes * 60:
                save()
                last_save = time.time()
            if budget.exhausted():
                save()  # mid-epoch: a resumed run continues exactly here
                stopped_early = True
                break
        judged = ema.model if ema is not None else model  # with EMA, the averaged weights are what ships
        val = evaluate_elbo(judged, x_val)
        seen = max(1.0, state.sums["images"])
        record = {
            "epoch": state.epoch + 1,
            "step": state.step,
            "loss": state.sums["loss"] / seen,
            "rec": state.sums["rec"] / seen,
            "kl": state.sums["kl"] / seen,
            "beta": beta,
            **{key: state.sums[key] / seen for key in LOGGED_TERMS if key in state.sums},
            "val_elbo": val["elbo"],
            "val_rec": val["rec"],
            "val_kl": val["kl"],
            **({"val_mse": val["mse"], "log_sigma": val["log_sigma"]} if "log_sigma" in val else {}),
            **({"mig_curve": probe(posterior_means(judged))} if probe is not None else {}),
            "seconds": round(budget.elapsed, 1),
        }
        if stopped_early:
            record["partial"] = True  # the budget ran out inside this epoch
        state.history.append(record)
        if is_better(tcfg, beta, val, state.best):
            state.best = {**val, "epoch": state.epoch + 1}
            state.best_state = copy.deepcopy(judged.state_dict())
        state.epoch += 1
        state.step_in_epoch = 0
        state.sums = {k: 0.0 for k in state.sums}
        bar.set_postfix(
            loss=f"{record['loss']:.1f}", rec=f"{record['rec']:.1f}", kl=f"{record['kl']:.1f}",
            val_elbo=f"{val['elbo']:.1f}",
        )  # fmt: skip
    bar.close()
    if not stopped_early:
        save()
    model.load_state_dict(state.best_state)
    summary = {
        "best_epoch": state.best.get("epoch"),
        "val_elbo": state.best.get("elbo"),
        "val_rec": state.best.get("rec"),
        "val_kl": state.best.get("kl"),
        "seconds": round(budget.elapsed, 1),
        "steps": state.step,
        "images_seen": state.images,
        "stopped_by_budget": stopped_early,
    }
    if "log_sigma" in state.best:
        summary["log_sigma"] = state.best["log_sigma"]
        summary["val_mse"] = state.best["mse"]
    save_checkpoint(out, model, tcfg, data, state.history, summary)
    return summary


def save_checkpoint(
    out: Path,
    model: torch.nn.Module,
    tcfg: TrainConfig,
    data: Split,
    history: list[dict[str, Any]],
    summary: dict[str, Any],
    extra_state: dict[str, Any] | None = None,
) -> Path:
    """Config beside weights: plain dicts, lists and tensors only, so `weights_only=True` loads it."""
    out.mkdir(parents=True, exist_ok=True)
    mcfg: ModelConfig = model.cfg  # type: ignore[assignment]
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_config": to_dict(mcfg),
        "train_config": to_dict(tcfg),
        "state_dict": model.state_dict(),
        "history": history,
        "summary": summary,
        "data": {"source": data.source, "labels": data.labels, "n_train": len(data.x_train), "n_val": len(data.x_val)},
        "versions": {"torch": str(torch.__version__)},
    }
    if extra_state:
        payload["extra_state"] = extra_state
    tmp = out / (CHECKPOINT_FILE + ".part")
    torch.save(payload, tmp)
    tmp.replace(out / CHECKPOINT_FILE)
    readable = {k: v for k, v in payload.items() if k not in ("state_dict", "extra_state")}
    (out / "run.json").write_text(json.dumps(readable, indent=2) + "\n")
    return out / CHECKPOINT_FILE


def load_checkpoint(run: Path) -> tuple[Autoencoder, dict[str, Any]]:
    """Rebuild the model from its saved config and load the weights (no pickle: weights_only=True)."""
    path = run / CHECKPOINT_FILE if run.is_dir() else run
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}: run `python -m train fit ... --out {run}` first")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise BundleError(f"{path} is not a vaegen checkpoint (format {payload.get('format')!r})")
    model = Autoencoder(ModelConfig.from_dict(payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload


def data_options(tcfg: TrainConfig) -> DataOptions:
    """The loader options a run's config records."""
    from train.data import DataOptions

    return DataOptions(
        attributes=Path(tcfg.attributes) if tcfg.attributes else None,
        val_fraction=tcfg.val_fraction,
        strict=tcfg.strict,
        channels=tcfg.channels or None,
        image_size=tcfg.image_size,
        crop=tcfg.crop,
        aspect=tcfg.aspect,
        resize=tcfg.resize,
        seed=tcfg.data_seed,
        n_images=tcfg.n_images or None,
    )


def load_data(tcfg: TrainConfig, note: Callable[[str], None] | None = None) -> Split:
    """The run's data, as its config names them (the exporter re-reads them the same way)."""
    from train import data as datasets

    return datasets.load(tcfg.data, data_options(tcfg), note)
