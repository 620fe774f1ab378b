"""Fitting a VAE: loss = BCE + beta * KL, with the levers issue 5 measures (warm-up, free bits,
dynamic binarisation, augmentation, schedule) and the best-on-validation weights kept."""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from train.config import ModelConfig, TrainConfig, to_dict
from train.data import Split
from train.models import LOG_2PI, Autoencoder, reparameterize

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = "vaegen-checkpoint-1"


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


IW_ESTIMATORS = ("iwae", "dreg")


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
    if estimator not in IW_ESTIMATORS:
        raise SystemExit(f"error: unknown importance-weighting estimator '{estimator}': use iwae or dreg")
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
    log_px = -bce_per_image(logits, rep).view(k, -1)  # (k, B)
    if estimator == "dreg":
        log_qz = -0.5 * (LOG_2PI + logvar.detach() + (z - mu.detach()).pow(2) * torch.exp(-logvar.detach())).sum(-1)
    else:
        log_qz = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)  # (k, B) log q(z | x) at its own draws
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


@torch.no_grad()
def evaluate_elbo(model: Autoencoder, x: np.ndarray, batch: int = 500) -> dict[str, float]:
    """Mean ELBO terms on `x` (targets as given), using the posterior mean's sample once per image."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)  # fixed eps: validation numbers comparable across epochs
    rec_sum, kl_sum = 0.0, 0.0
    kl_dims = torch.zeros(model.cfg.latent_dim)
    for start in range(0, len(x), batch):
        xb = torch.from_numpy(x[start : start + batch])
        mu, logvar = model.encode(xb)
        eps = torch.randn(mu.shape, generator=gen)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = model.decode(z)
        rec_sum += bce_per_image(logits, xb).sum().item()
        kd = kl_per_dim(mu, logvar)  # against N(0, I): the per-dimension usage, whatever the prior
        kl_dims += kd.sum(0)
        if model.pseudo_logits is None:
            kl_sum += kd.sum().item()
        else:  # no closed form against a mixture: the one-sample estimate log q(z | x) - log p(z)
            log_qz = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)
            kl_sum += (log_qz - model.log_prior(z)).sum().item()
    n = len(x)
    return {
        "rec": rec_sum / n,
        "kl": kl_sum / n,
        "elbo": -(rec_sum + kl_sum) / n,
        "kl_per_dim": (kl_dims / n).tolist(),
    }


def fit_vae(mcfg: ModelConfig, tcfg: TrainConfig, data: Split, out: Path, quiet: bool = False) -> dict[str, Any]:
    """Train, keep the weights with the best validation ELBO, write `out/checkpoint.pt`."""
    set_seed(tcfg.seed, tcfg.threads)
    model = Autoencoder(mcfg)
    if model.pseudo_logits is not None:
        if tcfg.free_bits > 0:
            raise SystemExit("error: --free-bits needs the closed-form KL of the Gaussian prior; drop it with vamp")
        # Pseudo-inputs start as K distinct training images (clipped so their logits are finite).
        k = len(model.pseudo_logits)
        if k > len(data.x_train):
            raise SystemExit(f"error: {k} VampPrior components but only {len(data.x_train)} training images")
        pick = np.random.default_rng(tcfg.seed).choice(len(data.x_train), size=k, replace=False)
        start = torch.from_numpy(np.clip(data.x_train[pick], 0.05, 0.95))
        with torch.no_grad():
            model.pseudo_logits.copy_(torch.logit(start))
    if tcfg.weight_decay > 0:  # decoupled decay (Loshchilov & Hutter): shrinks weights, not the gradient scale
        opt: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
    steps_per_epoch = math.ceil(len(data.x_train) / tcfg.batch_size)
    total_steps = tcfg.epochs * steps_per_epoch
    sched = None
    if tcfg.keep not in ("best", "last"):
        raise SystemExit(f"error: unknown --keep '{tcfg.keep}': use best or last")
    if tcfg.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps), eta_min=tcfg.lr * 0.02)
    elif tcfg.lr_schedule != "constant":
        raise SystemExit(f"error: unknown --lr-schedule '{tcfg.lr_schedule}': use constant or cosine")

    gen = torch.Generator().manual_seed(tcfg.seed)
    x_train = torch.from_numpy(data.x_train)
    # Validation targets: grey levels, or one fixed binarisation when training on binary draws.
    x_val = data.x_val
    if tcfg.binarize == "dynamic":
        from vaegen_infer.datasets import binarize

        x_val = binarize(x_val, seed=tcfg.seed + 1)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"elbo": -math.inf}
    best_state = copy.deepcopy(model.state_dict())
    # Exponential moving average of the weights (Polyak averaging): smoother, less overfit weights.
    ema = copy.deepcopy(model) if tcfg.ema > 0 else None
    started = time.time()
    bar = tqdm(range(tcfg.epochs), desc="fit", unit="epoch", disable=quiet, dynamic_ncols=True)
    step = 0
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        sums = {"loss": 0.0, "rec": 0.0, "kl": 0.0}
        beta = tcfg.beta * min(1.0, (epoch + 1) / tcfg.warmup_epochs) if tcfg.warmup_epochs else tcfg.beta
        for b in range(steps_per_epoch):
            idx = perm[b * tcfg.batch_size : (b + 1) * tcfg.batch_size]
            target = training_batch(x_train[idx], tcfg, gen)
            if tcfg.iw_samples > 1 or model.pseudo_logits is not None:  # k = 1: the ELBO, KL sampled
                loss, rec, kd = iwae_loss(model, target, tcfg.iw_samples, beta, tcfg.iw_estimator)
                kl = kd.sum()
            else:
                mu, logvar = model.encode(target)
                logits = model.decode(reparameterize(mu, logvar))
                rec = bce_per_image(logits, target).mean()
                kd = kl_per_dim(mu, logvar).mean(0)  # (D,) batch-mean KL per dimension
                kl = kd.sum()
                # Free bits: dimensions below the floor carry no penalty, so they stay in use.
                kl_pen = torch.clamp(kd, min=tcfg.free_bits).sum() if tcfg.free_bits > 0 else kl
                loss = rec + beta * kl_pen
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            if ema is not None:
                with torch.no_grad():  # shadow weights: ema = d * ema + (1 - d) * current
                    for e, p in zip(ema.parameters(), model.parameters()):
                        e.lerp_(p, 1.0 - tcfg.ema)
            step += 1
            sums["loss"] += loss.item() * len(idx)
            sums["rec"] += rec.item() * len(idx)
            sums["kl"] += kl.item() * len(idx)
        n = len(x_train)
        judged = ema if ema is not None else model  # with EMA, the averaged weights are what ships
        val = evaluate_elbo(judged, x_val)
        record = {
            "epoch": epoch + 1,
            "loss": sums["loss"] / n,
            "rec": sums["rec"] / n,
            "kl": sums["kl"] / n,
            "beta": beta,
            "val_elbo": val["elbo"],
            "val_rec": val["rec"],
            "val_kl": val["kl"],
        }
        history.append(record)
        # Early stopping by selection: keep the weights with the best validation ELBO at full beta.
        if tcfg.keep == "last" or (beta >= tcfg.beta and val["elbo"] > best["elbo"]):
            best = {**val, "epoch": epoch + 1}
            best_state = copy.deepcopy(judged.state_dict())
        bar.set_postfix(
            loss=f"{record['loss']:.1f}", rec=f"{record['rec']:.1f}", kl=f"{record['kl']:.1f}",
            val_elbo=f"{val['elbo']:.1f}",
        )  # fmt: skip
    model.load_state_dict(best_state)
    summary = {
        "best_epoch": best.get("epoch"),
        "val_elbo": best.get("elbo"),
        "val_rec": best.get("rec"),
        "val_kl": best.get("kl"),
        "seconds": round(time.time() - started, 1),
    }
    save_checkpoint(out, model, tcfg, data, history, summary)
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
        raise SystemExit(f"error: no checkpoint at {path}: run `python -m train fit ... --out {run}` first")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise SystemExit(f"error: {path} is not a vaegen checkpoint (format {payload.get('format')!r})")
    model = Autoencoder(ModelConfig.from_dict(payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload
