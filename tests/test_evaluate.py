"""The quality measures of train/evaluate.py against answers known in closed form."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("tqdm")
from train.evaluate import active_units, iwae, parzen_log_likelihood
from vaegen_infer.errors import UsageError
from vaegen_infer.manifest import ImageSpec
from vaegen_infer.priors import GaussianMixturePrior, GaussianPrior, Prior, SwissRollPrior


class _OnePixel:
    """A 1-D latent, 1-pixel model: q(z | x) = N(mu, exp(logvar)), p(x = 1 | z) = sigmoid(z).

    With p(z) = N(0, 1), p(x = 1) = E[sigmoid(z)] = 1/2 exactly (sigmoid(z) + sigmoid(-z) = 1), so
    every bound has a known target, log 1/2.
    """

    prior: Prior = GaussianPrior(1)
    name = "one-pixel"
    manifest = SimpleNamespace(image=ImageSpec(1, 1, 1))  # Bernoulli decoder, binary data

    def __init__(self, mu: float, logvar: float) -> None:
        self.mu, self.logvar = mu, logvar

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(x)
        return np.full((n, 1), self.mu, np.float32), np.full((n, 1), self.logvar, np.float32)

    def decode_logits(self, z: np.ndarray) -> np.ndarray:
        return z.reshape(-1, 1, 1, 1)  # (M, C=1, H=1, W=1): the logit is z itself


def _ones(n: int) -> np.ndarray:
    return np.ones((n, 1, 1, 1), np.float32)


def test_posterior_equal_to_prior_gives_the_exact_likelihood_for_any_k() -> None:
    """q = p and a decoder that ignores z: every importance weight equals p(x), so the bound is exact."""

    class Constant(_OnePixel):
        def decode_logits(self, z: np.ndarray) -> np.ndarray:
            return np.full((len(z), 1, 1, 2), [0.7, -1.3], np.float32)

    x = np.array([[[[1.0, 0.0]]], [[[0.0, 1.0]]]], np.float32)  # (2, 1, 1, 2)
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    want = [0.7 - softplus(0.7) - softplus(-1.3), -softplus(0.7) + (-1.3 - softplus(-1.3))]
    for k in (1, 7, 100):
        out = iwae(Constant(0.0, 0.0), x, k=k, quiet=True)  # type: ignore[arg-type]
        np.testing.assert_allclose(out["log_likelihood"], want, atol=1e-6)
        np.testing.assert_allclose(out["rec"], -np.array(want), atol=1e-6)
        np.testing.assert_allclose(out["kl"], 0.0, atol=1e-9)


def test_bound_tightens_with_k_towards_log_one_half() -> None:
    """ELBO <= IWAE_k <= log p(x), increasing in k; at k = 1000 the gap is below 0.01 nats."""
    model = _OnePixel(mu=0.8, logvar=-1.0)  # a deliberately poor posterior, so the gap is visible
    x = _ones(400)
    means = {k: float(iwae(model, x, k=k, quiet=True)["log_likelihood"].mean()) for k in (1, 10, 1000)}  # type: ignore[arg-type]
    assert means[1] < means[10] < means[1000] <= math.log(0.5) + 1e-3
    assert math.log(0.5) - means[1000] < 0.01
    assert math.log(0.5) - means[1] > 0.05  # the one-sample bound is visibly loose for this q


def test_kl_term_matches_the_closed_form() -> None:
    mu, logvar = 0.8, -1.0
    out = iwae(_OnePixel(mu, logvar), _ones(3), k=5, quiet=True)  # type: ignore[arg-type]
    want = 0.5 * (math.exp(logvar) + mu**2 - 1 - logvar)
    np.testing.assert_allclose(out["kl"], want, rtol=1e-6)  # mu, logvar arrive as float32


def test_same_seed_same_numbers() -> None:
    model = _OnePixel(mu=0.3, logvar=-0.5)
    a = iwae(model, _ones(50), k=20, seed=3, quiet=True)["log_likelihood"]  # type: ignore[arg-type]
    b = iwae(model, _ones(50), k=20, seed=3, quiet=True)["log_likelihood"]  # type: ignore[arg-type]
    c = iwae(model, _ones(50), k=20, seed=4, quiet=True)["log_likelihood"]  # type: ignore[arg-type]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_batching_does_not_change_the_answer() -> None:
    """Runs of a few rows and one large run see the same eps stream, image by image."""
    model = _OnePixel(mu=0.3, logvar=-0.5)
    small = iwae(model, _ones(9), k=10, rows_per_run=10, quiet=True)["log_likelihood"]  # type: ignore[arg-type]
    large = iwae(model, _ones(9), k=10, rows_per_run=10_000, quiet=True)["log_likelihood"]  # type: ignore[arg-type]
    np.testing.assert_allclose(small, large, atol=1e-12)


def test_prior_without_a_density_is_refused() -> None:
    model = _OnePixel(0.0, 0.0)
    model.prior = SwissRollPrior(2, noise=0.0)  # a curve in the plane: no density
    with pytest.raises(UsageError, match="needs a prior with a density"):
        iwae(model, _ones(2), k=2, quiet=True)  # type: ignore[arg-type]


def test_a_mixture_prior_gives_the_same_bound_as_its_gaussian_twin() -> None:
    """A one-component gaussian-mixture equal to N(0, 1) goes through the general density path (and
    a sampled KL) yet must give the Gaussian's bound, which tends to log 1/2 (see _OnePixel)."""
    gauss, mixed = _OnePixel(0.3, -0.5), _OnePixel(0.3, -0.5)
    mixed.prior = GaussianMixturePrior(1, weights=[1.0], means=[[0.0]], logvars=[[0.0]])
    a = iwae(gauss, _ones(50), k=500, quiet=True)  # type: ignore[arg-type]
    b = iwae(mixed, _ones(50), k=500, quiet=True)  # type: ignore[arg-type]
    np.testing.assert_allclose(b["log_likelihood"], a["log_likelihood"], rtol=1e-12)
    np.testing.assert_allclose(a["log_likelihood"].mean(), math.log(0.5), atol=2e-3)
    # the sampled KL is unbiased for the closed form: KL(N(0.3, e^-0.5) || N(0, 1)) = 0.5 (e^-0.5 + 0.09 - 1 + 0.5)
    assert abs(b["kl"].mean() - 0.5 * (math.exp(-0.5) + 0.09 - 0.5)) < 0.1


def test_active_units_counts_dimensions_whose_mean_varies() -> None:
    rng = np.random.default_rng(0)
    mu = np.zeros((5000, 4))
    mu[:, 0] = rng.normal(0, 1.0, 5000)  # var 1: active
    mu[:, 1] = rng.normal(0, 0.2, 5000)  # var 0.04: active
    mu[:, 2] = rng.normal(0, 0.05, 5000)  # var 0.0025: inactive
    assert active_units(mu) == 2


def test_parzen_with_one_sample_is_a_gaussian_density() -> None:
    sample = np.zeros((1, 1, 2, 2))
    x = np.array([[[[0.1, 0.2], [0.0, -0.3]]]])
    sigma = 0.5
    want = -(0.01 + 0.04 + 0.09) / (2 * sigma**2) - 2 * math.log(2 * math.pi * sigma**2)
    np.testing.assert_allclose(parzen_log_likelihood(sample, x, sigma), [want], rtol=1e-12)


def test_discretised_gaussian_known_answers() -> None:
    from train.evaluate import bits_per_dim, log_discretised_gaussian

    sigma = 0.01
    half = 0.5 / 255
    # interior pixel at the mean: the mass of [x - 1/510, x + 1/510] is erf(half / (sigma sqrt 2))
    x = np.full((2, 12), 100 / 255)
    got = log_discretised_gaussian(x, x.copy(), math.log(sigma))
    want = 12 * math.log(math.erf(half / (sigma * math.sqrt(2))))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    np.testing.assert_allclose(bits_per_dim(got, 12), -want / (12 * math.log(2)), rtol=1e-10)
    # black pixel at mean 0: the first bin is open below, mass Phi(half / sigma)
    zero = np.zeros((1, 3))
    want0 = 3 * math.log(0.5 * (1 + math.erf(half / (sigma * math.sqrt(2)))))
    np.testing.assert_allclose(log_discretised_gaussian(zero, zero, math.log(sigma)), want0, rtol=1e-10)
    # the 256 bins of one pixel hold all the mass, whatever the mean (in the tails too)
    levels = (np.arange(256) / 255)[:, None]
    for mean in (0.3, 1.2, -0.4):
        total = np.exp(log_discretised_gaussian(levels, np.full_like(levels, mean), math.log(0.05))).sum()
        assert total == pytest.approx(1.0, abs=1e-9)
    # far in a tail, the log-mass is finite (no log(0)): 30 sigma away
    far = log_discretised_gaussian(np.full((1, 1), 200 / 255), np.full((1, 1), 200 / 255 - 0.3), math.log(sigma))
    assert np.isfinite(far).all() and far[0] < -400
