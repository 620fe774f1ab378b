"""Decoder likelihoods in numpy: what the decoder's output means, as a log-probability of an image.

- `bernoulli`: pixel = 1 with probability sigmoid(logit); on grey levels this is the binary
  cross-entropy the models were trained with (exact for binarised data).
- `gaussian`: pixel ~ N(mean, sigma^2) with one shared sigma (the sigma-VAE's calibrated decoder),
  scored on 8-bit data as a discrete distribution over the 256 levels: the probability of a
  level is the Gaussian mass of its bin, [x - 1/510, x + 1/510] for x = v / 255, with the first and
  last bins reaching to -inf and +inf (the "discretised likelihood" of image-model papers), so the
  score is a probability and bits per dimension compare across models and likelihoods.

Training (`train/`) and the runtime's `Model.score` use these same functions.
"""

from __future__ import annotations

import math

import numpy as np

LOG_2PI = math.log(2 * math.pi)
HALF_BIN = 1.0 / 510.0  # half the distance between two 8-bit levels on [0, 1]
_SQRT2 = math.sqrt(2.0)


def log_bernoulli(x: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log p(x | logits) summed over the trailing axis: x, logits (..., P) -> (...). Stable form
    x * l - softplus(l), so saturated probabilities never take log(0)."""
    return (x * logits - np.logaddexp(0.0, logits)).sum(-1)


def log_erfc(x: np.ndarray) -> np.ndarray:
    """log(erfc(x)) for x >= 0, elementwise, without underflow for large x.

    The Chebyshev-fitted form of Numerical Recipes' `erfcc` (fractional error below 1.2e-7
    everywhere), evaluated in log space: erfc(x) = t exp(-x^2 + P(t)), t = 1 / (1 + x / 2)."""
    z = np.asarray(x, dtype=np.float64)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (
        0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))  # fmt: skip
    return np.log(t) - z * z + poly


def log_upper_tail(u: np.ndarray) -> np.ndarray:
    """log Q(u) = log P(N(0, 1) > u) for u >= 0."""
    return math.log(0.5) + log_erfc(np.asarray(u, dtype=np.float64) / _SQRT2)


def log_normal_interval(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log P(a < N(0, 1) < b) for a < b (either may be +-inf), elementwise, in float64.

    Both ends on one side of 0: the difference of two upper tails, taken in log space (the tails
    are accurate where the CDF itself would round to 1). Ends on both sides: 1 minus both tails."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    # Mirror intervals on the negative side, so every one-sided case has 0 <= lo < hi.
    neg = b <= 0
    lo = np.where(neg, -b, a)
    hi = np.where(neg, -a, b)
    out = np.empty(np.broadcast(a, b).shape)
    one_sided = lo >= 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lq_lo = log_upper_tail(np.where(one_sided, lo, 0.0))
        lq_hi = np.where(np.isinf(hi), -np.inf, log_upper_tail(np.where(np.isinf(hi), 0.0, np.abs(hi))))
        diff = lq_lo + np.log1p(-np.exp(lq_hi - lq_lo))
        # Across 0: 1 - Q(-a) - Q(b) (each tail at most 1/2, so no cancellation).
        qa = np.where(np.isinf(a), 0.0, np.exp(log_upper_tail(np.where(np.isinf(a), 0.0, np.abs(a)))))
        qb = np.where(np.isinf(b), 0.0, np.exp(log_upper_tail(np.where(np.isinf(b), 0.0, np.abs(b)))))
        across = np.log(np.maximum(1.0 - qa - qb, 1e-300))
    out = np.where(one_sided, diff, across)
    return out


def log_gaussian_discretised(x: np.ndarray, mean: np.ndarray, log_sigma: float) -> np.ndarray:
    """log P(x) of 8-bit images under N(mean, sigma^2) per pixel, summed over the trailing axis:
    x (..., P) in [0, 1] on the 256 levels v / 255, mean (..., P) -> (...) nats.

    Each level owns the bin x +- 1/510; level 0 owns (-inf, 1/510] and level 255 [1 - 1/510, inf),
    so the 256 probabilities of a pixel sum to 1."""
    sigma = math.exp(log_sigma)
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(mean, dtype=np.float64)
    lo = np.where(x <= HALF_BIN, -np.inf, (x - HALF_BIN - m) / sigma)
    hi = np.where(x >= 1.0 - HALF_BIN, np.inf, (x + HALF_BIN - m) / sigma)
    exact = log_normal_interval(lo, hi)
    # A bin far out in a tail underflows even in log space only beyond ~37 sigma; there the
    # midpoint rule, log(density * width), is as good and finite.
    mid = -0.5 * (LOG_2PI + ((x - m) / sigma) ** 2) - log_sigma + math.log(2 * HALF_BIN)
    return np.where(np.isfinite(exact), exact, mid).sum(-1)


def log_gaussian(x: np.ndarray, mean: np.ndarray, log_sigma: float) -> np.ndarray:
    """log N(x; mean, sigma^2) summed over the trailing axis (a density, for continuous data)."""
    sigma2 = math.exp(2 * log_sigma)
    d = np.asarray(x, dtype=np.float64) - mean
    return (-0.5 * (LOG_2PI + 2 * log_sigma) - 0.5 * d * d / sigma2).sum(-1)


def log_normal_diag(z: np.ndarray, mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """log N(z; mu, diag(exp(logvar))) summed over the trailing axis (the encoder's q(z | x))."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * np.exp(-logvar)).sum(-1)


def bits_per_dim(log_likelihood: np.ndarray, dims: int) -> np.ndarray:
    """Nats per image -> bits per dimension (positive; lower is better)."""
    return -np.asarray(log_likelihood, dtype=np.float64) / (dims * math.log(2))


def quantise_8bit(x: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] -> the nearest of the 256 levels v / 255 (what an 8-bit file holds)."""
    return np.round(np.clip(x, 0.0, 1.0) * 255.0) / 255.0
