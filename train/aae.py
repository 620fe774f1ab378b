"""Fitting an Adversarial Autoencoder (Makhzani et al. 2015, arXiv:1511.05644).

Each minibatch trains in two phases:
  1. reconstruction: encoder + decoder on the Bernoulli reconstruction loss;
  2. regularisation: a discriminator step (prior samples labelled 1, encoded codes 0), then an
     encoder ("generator") step that makes the codes look like prior samples.
With `conditional`, the discriminator also receives the label and the positive samples come from
that label's region of the prior (the paper's Figure 4), so class k maps to region k. Images whose
label is withheld (`label_fraction` < 1) get the extra "no label" input and positives from the
whole prior. The discriminator is a projection discriminator (see train/models.py) so that it
cannot ignore the label. The prior is the runtime's own numpy implementation (`vaegen_infer.priors`).

Supervised (`decoder_labels` = K > 0, the paper's Figure 7): the decoder takes the label one-hot
(N, K) beside the code, and the discriminator (label-free) pushes the codes to the whole prior.
The decoder gets the digit's identity for free, so the code is left to carry what the label does
not: the style (slant, thickness, width). Every training image needs its label.

Measured on mnist-5k (benchmarks/results/restyle.md): the prior alone did not take the label out of
an 8-D deterministic code. With the encoder's step against the discriminator at 1e-3 the codes
collapsed onto one point (the decoder drew each label's mean digit); at 1e-4 or 3e-4 they matched
the prior and still carried the label (restyled digits recognised as the requested label for
only 18-32% of images). `label_critic` > 0 adds a classifier guessing the label from the code, and pushes the
encoder to make its guesses uniform (weight `label_critic` on that loss in the encoder's step).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from train.config import ModelConfig, TrainConfig
from train.data import Split, to_float
from train.fit import BatchOrder, Ema, rec_per_image, save_checkpoint, set_seed, training_batch
from train.models import Autoencoder, Discriminator, LabelCritic
from vaegen_infer.errors import UsageError
from vaegen_infer.manifest import PriorSpec
from vaegen_infer.priors import Prior, make_prior


def _prior_draw(prior: Prior, labels: np.ndarray, rng: np.random.Generator, conditional: bool) -> torch.Tensor:
    """Positive samples for the discriminator, (N, D): from each label's region when conditional,
    from a random region for unlabelled rows, from the whole prior otherwise."""
    if not conditional:
        return torch.from_numpy(prior.sample(len(labels), rng))
    comp = np.where(labels < 0, rng.integers(0, prior.n_regions, len(labels)), labels)
    return torch.from_numpy(prior.sample(len(labels), rng, comp))


def _noisy(codes: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    """Instance noise (Sonderby et al. 2017) on the discriminator's input, (N, D) -> (N, D): both the
    prior draws and the codes are blurred by N(0, std^2), so the two distributions overlap and the
    discriminator's gradient stays informative when it is winning. std 0 returns the codes."""
    if std <= 0:
        return codes
    return codes + std * torch.randn(codes.shape, generator=gen)


def region_loss(prior: Prior, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each labelled code's label under the prior's component posterior p(k | z)
    (equal weights, so the component log-densities are the logits): codes (B, D), labels (B,) with
    -1 where withheld -> a scalar, the mean over labelled rows (0 when there are none)."""
    seen = labels >= 0
    if not bool(seen.any()):
        return codes.sum() * 0.0  # keeps the graph, adds nothing
    return F.cross_entropy(prior.component_log_density(codes[seen]), labels[seen])


def one_hot(labels: torch.Tensor | np.ndarray, k: int) -> torch.Tensor:
    """Class indices (N,) -> float32 one-hot (N, K), the supervised decoder's `y`."""
    return F.one_hot(torch.as_tensor(np.asarray(labels), dtype=torch.int64), k).float()


@torch.no_grad()
def _validate(model: Autoencoder, prior: Prior, data: Split, conditional: bool) -> dict[str, float]:
    model.eval()
    x = torch.from_numpy(to_float(data.x_val[:]))
    mu, _ = model.encode(x)
    k = model.cfg.decoder_labels
    y = one_hot(data.y_val, k) if k else None
    rec = rec_per_image(model.cfg.likelihood, model.decode(mu, y), x).mean().item()
    # The codes' spread per dimension, averaged: near 0 means the encoder collapsed every image onto
    # one point (seen with a label-taking decoder and no warm-up; see fit_aae).
    out = {"val_rec": rec, "val_code_std": float(mu.std(0).mean())}
    if prior.n_regions:
        region = prior.region_of(mu.numpy())
        out["val_in_own_region"] = float((region == data.y_val).mean())
    return out


def fit_aae(mcfg: ModelConfig, tcfg: TrainConfig, data: Split, out: Path, quiet: bool = False) -> dict[str, Any]:
    """Train an AAE and write `out/checkpoint.pt` (the discriminator is saved too, for resuming)."""
    set_seed(tcfg.seed, tcfg.threads)
    prior = make_prior(PriorSpec(mcfg.prior, mcfg.prior_params), mcfg.latent_dim)
    if mcfg.conditional and prior.n_regions == 0:
        raise UsageError(f"a conditional AAE needs a prior with per-label regions; '{prior.name}' has none")
    n_labels = len(data.labels or [])
    if mcfg.conditional and prior.n_regions != n_labels:
        raise UsageError(f"the prior has {prior.n_regions} regions but the data has {n_labels} classes")
    if mcfg.decoder_labels and mcfg.decoder_labels != n_labels:
        raise UsageError(f"the decoder takes {mcfg.decoder_labels} labels but the data has {n_labels} classes")
    if tcfg.region_weight > 0 and not mcfg.conditional:
        raise UsageError("the region loss (--region-weight) asks codes into their label's region: use --conditional")
    if mcfg.decoder_labels and tcfg.label_fraction < 1.0:
        raise UsageError("a supervised AAE's decoder needs every image's label: use --label-fraction 1")
    mcfg.prior_params = prior.params()  # store every parameter, defaults included
    model = Autoencoder(mcfg)
    disc = Discriminator(mcfg, n_labels)
    opt_ae = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=tcfg.lr_disc, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(model.encoder.parameters(), lr=tcfg.lr_gen, betas=(0.5, 0.999))
    critic = LabelCritic(mcfg.latent_dim, n_labels) if mcfg.decoder_labels and tcfg.label_critic > 0 else None
    opt_c = torch.optim.Adam(critic.parameters(), lr=tcfg.lr_disc, betas=(0.5, 0.999)) if critic else None

    # With EMA the averaged weights are validated and shipped; the discriminator trains against the
    # live encoder, whose codes the averaged one tracks.
    ema = Ema(model, tcfg.ema) if tcfg.ema > 0 else None

    gen = torch.Generator().manual_seed(tcfg.seed)
    rng = np.random.default_rng(tcfg.seed)
    n_train = len(data.x_train)
    y_train = torch.from_numpy(np.asarray(data.y_train, dtype=np.int64))
    # Withhold labels from a fixed random share of the images (semi-supervised regularisation).
    known = torch.from_numpy(rng.random(len(y_train)) < tcfg.label_fraction)
    y_used = torch.where(known, y_train, torch.full_like(y_train, -1))

    steps = math.ceil(n_train / tcfg.batch_size)
    order = BatchOrder(n_train, tcfg.batch_size, gen)
    history: list[dict[str, Any]] = []
    started = time.time()
    bar = tqdm(range(tcfg.epochs), desc="fit aae", unit="epoch", disable=quiet, dynamic_ncols=True)
    for epoch in bar:
        model.train()
        disc.train()
        sums = {"rec": 0.0, "d": 0.0, "g": 0.0, "d_acc": 0.0, **({"critic_acc": 0.0} if critic else {})}
        if tcfg.region_weight > 0:
            sums["region"] = 0.0
        for _ in range(steps):
            idx = order.next()
            target = training_batch(torch.from_numpy(to_float(data.x_train[idx])), tcfg, gen)
            labels = y_used[torch.from_numpy(idx)]  # (B,), -1 where the label is withheld
            cond = labels if mcfg.conditional else None
            y = one_hot(labels, mcfg.decoder_labels) if mcfg.decoder_labels else None  # (B, K)

            # 1. reconstruction phase
            mu, logvar = model.encode(target)
            rec = rec_per_image(mcfg.likelihood, model.decode(model.code(mu, logvar), y), target).mean()
            loss = rec
            if tcfg.region_weight > 0:
                region = region_loss(prior, mu, labels)
                loss = rec + tcfg.region_weight * region
                sums["region"] += region.item() * len(idx)
            opt_ae.zero_grad(set_to_none=True)
            loss.backward()
            opt_ae.step()

            # 2a. regularisation phase, discriminator: prior samples -> 1, codes -> 0
            with torch.no_grad():
                mu, logvar = model.encode(target)
                fake = model.code(mu, logvar)
            real = _prior_draw(prior, labels.numpy(), rng, mcfg.conditional)
            d_real = disc(_noisy(real, tcfg.disc_noise, gen), cond)
            d_fake = disc(_noisy(fake, tcfg.disc_noise, gen), cond)
            loss_d = F.binary_cross_entropy_with_logits(
                d_real, torch.ones_like(d_real)
            ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            # 2b. regularisation phase, generator: the encoder learns to fool the discriminator
            # (from epoch warmup_epochs + 1 on; the discriminator trains from the start)
            mu, logvar = model.encode(target)
            code = model.code(mu, logvar)
            d_gen = disc(_noisy(code, tcfg.disc_noise, gen), cond)
            loss_g = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
            if critic is not None and opt_c is not None:
                # the critic learns to guess the label from the code (B, K logits) ...
                c_logits = critic(code.detach())
                loss_c = F.cross_entropy(c_logits, labels)
                opt_c.zero_grad(set_to_none=True)
                loss_c.backward()
                opt_c.step()
                sums["critic_acc"] += (c_logits.argmax(1) == labels).float().mean().item() * len(idx)
                # ... and the encoder to make its guess uniform: cross-entropy to 1/K on every label
                loss_g = loss_g - tcfg.label_critic * F.log_softmax(critic(code), dim=1).mean()
            if epoch >= tcfg.warmup_epochs:
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
            if ema is not None:
                ema.update(model)

            n = len(idx)
            sums["rec"] += rec.item() * n
            sums["d"] += loss_d.item() * n
            sums["g"] += loss_g.item() * n
            sums["d_acc"] += 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean()).item() * n
        n = n_train
        record = {"epoch": epoch + 1, **{k: v / n for k, v in sums.items()}}
        record.update(_validate(ema.model if ema else model, prior, data, mcfg.conditional))
        history.append(record)
        post = {"rec": f"{record['rec']:.1f}", "D": f"{record['d']:.2f}", "G": f"{record['g']:.2f}"}
        post["val_rec"] = f"{record['val_rec']:.1f}"
        post["code_std"] = f"{record['val_code_std']:.2f}"
        if critic is not None:
            post["critic_acc"] = f"{record['critic_acc']:.2f}"
        if "val_in_own_region" in record:
            post["own_region"] = f"{record['val_in_own_region']:.2f}"
        bar.set_postfix(post)
    summary = {
        "epochs": tcfg.epochs,
        "final": history[-1],
        "seconds": round(time.time() - started, 1),
        "labelled_images": int(known.sum()),
    }
    extra = {"discriminator": disc.state_dict(), **({"label_critic": critic.state_dict()} if critic else {})}
    save_checkpoint(out, ema.model if ema else model, tcfg, data, history, summary, extra_state=extra)
    return summary
