"""Objectives that split the VAE's KL term: the beta-TCVAE decomposition (Chen et al. 2018,
"Isolating Sources of Disentanglement in VAEs", arXiv:1802.04942) and FactorVAE's
dimension permutation (Kim and Mnih 2018, "Disentangling by Factorising", arXiv:1802.05983).

With n the data index, q(z|n) the encoder's diagonal Gaussian and q(z) = 1/N sum_n q(z|n) the
aggregate posterior, the batch-mean of log q(z|n) - log p(z) (a one-sample estimate of the KL)
splits exactly into

    index-code MI      E[log q(z|n) - log q(z)]
    total correlation  E[log q(z) - sum_j log q(z_j)]      (the term beta-TCVAE weights by beta)
    dimension-wise KL  E[sum_j log q(z_j) - log p(z_j)]

so the three always sum to the one-sample KL, whatever estimate of q(z) is used. q(z) and the
marginals q(z_j) are estimated from the minibatch, knowing the data-set size N:

- "mws", minibatch-weighted sampling, the paper's estimator and the default of the authors'
  reference, rtqichen/beta-tcvae vae_quant.py (`elbo`, the `not self.mss` branch):
  log q(z_i) ~= logsumexp_m log q(z_i|n_m) - log(N M). It is biased: with the batch being the
  whole data set (M = N) it is exactly log q(z_i) - log N, so MI reads log N too high, TC
  (D - 1) log N too high and the dimension-wise KL D log N too low (the test checks this). The
  offset barely moves with the parameters, so the gradients are still useful, but the values are
  not the decomposition's.
- "mss", minibatch-stratified sampling: the sample's own point weighs 1/N and each of the other
  M - 1 points (N - 1) / (N (M - 1)), an importance-weighted estimate of q(z) that is exact when
  the batch is the whole data set. The reference's `_log_importance_weight_matrix` puts the 1/N
  weight in column 0 instead of on the diagonal (YannDubs/disentangling-vae#58 asks about it), so
  it is not copied here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from train.config import OBJECTIVES  # elbo | beta-vae | beta-tcvae, see objective_loss

ESTIMATORS = ("mws", "mss")
LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) elementwise (broadcasting)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


@dataclass
class KLDecomposition:
    """Batch means (scalar tensors, differentiable) of the terms of the one-sample KL, in nats."""

    mutual_info: torch.Tensor  # E[log q(z|n) - log q(z)]
    total_correlation: torch.Tensor  # E[log q(z) - sum_j log q(z_j)]
    dimwise_kl: torch.Tensor  # E[sum_j log q(z_j) - log p(z_j)]
    kl: torch.Tensor  # E[log q(z|n) - log p(z)] = the sum of the three

    def as_floats(self) -> dict[str, float]:
        return {
            "mi": float(self.mutual_info.detach()),
            "tc": float(self.total_correlation.detach()),
            "dimwise_kl": float(self.dimwise_kl.detach()),
            "kl": float(self.kl.detach()),
        }


def _log_weights(batch: int, dataset_size: int, estimator: str, like: torch.Tensor) -> torch.Tensor:
    """(M, M) log importance weights of point m for the sample of point i (rows i, columns m)."""
    n, m = float(dataset_size), batch
    if estimator == "mws":
        return torch.full((m, m), -math.log(n * m), dtype=like.dtype, device=like.device)
    if estimator == "mss":
        if m < 2:
            raise ValueError("minibatch-stratified sampling needs a batch of at least 2")
        w = torch.full((m, m), math.log((n - 1) / (n * (m - 1))), dtype=like.dtype, device=like.device)
        w.fill_diagonal_(-math.log(n))
        return w
    raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")


def kl_decomposition(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int, estimator: str = "mws"
) -> KLDecomposition:
    """Split the KL of a batch: z (M, D) sampled from q(z|n_i) = N(mu_i, exp(logvar_i)), both
    (M, D), under a standard normal prior, for a data set of `dataset_size` points."""
    m = z.shape[0]
    if dataset_size < m:
        raise ValueError(f"dataset_size ({dataset_size}) must be at least the batch size ({m})")
    # (M, M, D): log q(z_ij | n_m) for sample i, point m, dimension j
    log_q_zi_nm = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])
    log_q_z_given_x = log_q_zi_nm.diagonal(dim1=0, dim2=1).sum(0)  # (M,) log q(z_i|n_i)
    log_p_z = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)  # (M,)
    log_w = _log_weights(m, dataset_size, estimator, z)  # (M, M)
    log_q_z = torch.logsumexp(log_w + log_q_zi_nm.sum(2), dim=1)  # (M,) log q(z_i)
    log_q_marginals = torch.logsumexp(log_w[:, :, None] + log_q_zi_nm, dim=1).sum(1)  # (M,) sum_j log q(z_ij)
    return KLDecomposition(
        mutual_info=(log_q_z_given_x - log_q_z).mean(),
        total_correlation=(log_q_z - log_q_marginals).mean(),
        dimwise_kl=(log_q_marginals - log_p_z).mean(),
        kl=(log_q_z_given_x - log_p_z).mean(),
    )


def beta_tcvae_loss(
    rec: torch.Tensor,
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    dataset_size: int,
    beta: float,
    alpha: float = 1.0,
    gamma: float = 1.0,
    estimator: str = "mws",
) -> tuple[torch.Tensor, KLDecomposition]:
    """The beta-TCVAE loss to minimise, rec + alpha MI + beta TC + gamma dimension-wise KL, with
    rec the batch-mean reconstruction negative log-likelihood (a scalar) and the KL's parts.
    alpha = gamma = 1 is the paper's and the reference's setting (include_mutinfo, lamb = 0)."""
    parts = kl_decomposition(z, mu, logvar, dataset_size, estimator)
    loss = rec + alpha * parts.mutual_info + beta * parts.total_correlation + gamma * parts.dimwise_kl
    return loss, parts


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """FactorVAE's permute_dims (Kim and Mnih 2018, Algorithm 1): each column of z (B, D)
    shuffled across the batch independently, a sample from prod_j q(z_j) to train the
    discriminator against. Detach z first when training the discriminator."""
    b, d = z.shape
    # (B, D): an independent random permutation of the batch for each column
    idx = torch.argsort(torch.rand(b, d, generator=generator, device=z.device), dim=0)
    return torch.gather(z, 0, idx)


def discriminator_tc(logits_real: torch.Tensor) -> torch.Tensor:
    """FactorVAE's total-correlation estimate from the discriminator's logits (B, 2) on codes from
    q(z), column 0 = "from q(z)", column 1 = "permuted": E[log D(z) - log(1 - D(z))]."""
    return (logits_real[:, 0] - logits_real[:, 1]).mean()


# The VAE's objectives (`--objective`), all minimised per batch in train/fit.py's `vae_step_loss`:
# elbo       rec + beta KL (today's loss; beta defaults to 1, the ELBO itself)
# beta-vae   rec + beta KL, the same formula, named for Higgins et al. 2017 (beta > 1 in use)
# beta-tcvae rec + MI + beta TC + dimension-wise KL (Chen et al. 2018), the KL split above with
#            minibatch-weighted sampling over the training set's size


def objective_loss(
    objective: str,
    rec: torch.Tensor,
    kl_pen: torch.Tensor,
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float,
    dataset_size: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch and the extra terms to log (floats; empty for elbo / beta-vae).

    rec: batch-mean reconstruction NLL; kl_pen: the batch-mean closed-form KL as penalised (after
    free bits); z, mu, logvar (B, D): the sampled codes and the posterior they came from."""
    if objective in ("elbo", "beta-vae"):
        return rec + beta * kl_pen, {}
    if objective == "beta-tcvae":
        loss, parts = beta_tcvae_loss(rec, z, mu, logvar, dataset_size, beta)
        return loss, parts.as_floats()
    raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
