"""The beta-TCVAE decomposition (train/objectives.py) against brute force, and FactorVAE's
dimension permutation."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from train import objectives as obj  # noqa: E402

pytestmark = pytest.mark.needs_torch


def tiny(n: int = 5, d: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, d, generator=g, dtype=torch.float64)
    logvar = torch.randn(n, d, generator=g, dtype=torch.float64) * 0.5 - 1.0
    z = mu + torch.exp(0.5 * logvar) * torch.randn(n, d, generator=g, dtype=torch.float64)
    return z, mu, logvar


def brute_force(z, mu, logvar) -> dict[str, float]:
    """MI, TC and dimension-wise KL with q(z) = 1/N sum_n q(z|n) over the whole (tiny) data set,
    by explicit loops over points and dimensions in Python floats."""
    z, mu, sd = z.tolist(), mu.tolist(), torch.exp(0.5 * logvar).tolist()
    n, d = len(z), len(z[0])

    def normal(x, m, s):
        return math.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))

    mi = tc = dw = 0.0
    for i in range(n):
        q_cond = math.prod(normal(z[i][j], mu[i][j], sd[i][j]) for j in range(d))
        q_joint = sum(math.prod(normal(z[i][j], mu[m][j], sd[m][j]) for j in range(d)) for m in range(n)) / n
        q_marg = [sum(normal(z[i][j], mu[m][j], sd[m][j]) for m in range(n)) / n for j in range(d)]
        p = math.prod(normal(z[i][j], 0.0, 1.0) for j in range(d))
        mi += math.log(q_cond / q_joint) / n
        tc += (math.log(q_joint) - sum(math.log(q) for q in q_marg)) / n
        dw += (sum(math.log(q) for q in q_marg) - math.log(p)) / n
    return {"mi": mi, "tc": tc, "dimwise_kl": dw}


def test_stratified_estimate_with_the_whole_data_set_is_exact():
    z, mu, logvar = tiny()
    got = obj.kl_decomposition(z, mu, logvar, dataset_size=len(z), estimator="mss").as_floats()
    want = brute_force(z, mu, logvar)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-10)
    assert got["tc"] > 0.01  # a random posterior has some total correlation


def test_weighted_estimate_is_off_by_known_log_n_terms():
    # Minibatch-weighted sampling with M = N is exactly log q(z) - log N per density, so each
    # term moves by a known multiple of log N (the estimator's bias, documented in the module).
    n, d = 6, 4
    z, mu, logvar = tiny(n, d, seed=1)
    got = obj.kl_decomposition(z, mu, logvar, dataset_size=n, estimator="mws").as_floats()
    want = brute_force(z, mu, logvar)
    assert got["mi"] == pytest.approx(want["mi"] + math.log(n), abs=1e-10)
    assert got["tc"] == pytest.approx(want["tc"] + (d - 1) * math.log(n), abs=1e-10)
    assert got["dimwise_kl"] == pytest.approx(want["dimwise_kl"] - d * math.log(n), abs=1e-10)


@pytest.mark.parametrize("estimator", obj.ESTIMATORS)
def test_the_three_terms_sum_to_the_one_sample_kl(estimator):
    z, mu, logvar = tiny(32, 6, seed=2)
    parts = obj.kl_decomposition(z.float(), mu.float(), logvar.float(), dataset_size=10_000, estimator=estimator)
    total = parts.mutual_info + parts.total_correlation + parts.dimwise_kl
    assert float(total) == pytest.approx(float(parts.kl), abs=1e-4)
    one_sample = obj.gaussian_log_density(z, mu, logvar).sum(1) - obj.gaussian_log_density(z, 0 * z, 0 * z).sum(1)
    assert float(parts.kl) == pytest.approx(float(one_sample.mean()), abs=1e-4)


def grid_posterior(side: int, correlated: bool, sd: float = 0.3):
    """A data set of side**2 points whose posterior means form a grid (q(z) = q(z_1) q(z_2)
    exactly) or lie on the diagonal z_1 = z_2 (strongly dependent)."""
    a = torch.linspace(-2, 2, side, dtype=torch.float64)
    if correlated:
        t = torch.linspace(-2, 2, side * side, dtype=torch.float64)
        mu = torch.stack([t, t], 1)
    else:
        mu = torch.cartesian_prod(a, a)
    logvar = torch.full_like(mu, 2 * math.log(sd))
    return mu, logvar


def test_factorised_aggregate_posterior_has_zero_total_correlation():
    g = torch.Generator().manual_seed(0)
    mu, logvar = grid_posterior(6, correlated=False)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g, dtype=torch.float64)
    # The whole data set in one batch: q(z) = q(z_1) q(z_2) pointwise, so TC is 0 to rounding.
    exact = obj.kl_decomposition(z, mu, logvar, dataset_size=len(mu), estimator="mss")
    assert abs(float(exact.total_correlation)) < 1e-10
    # Minibatches of 128 out of 256 points: near 0 on average (measured -0.03 +- 0.02 per batch),
    # far below a posterior spread along the diagonal z_1 = z_2 (measured 2.0 +- 0.07).
    mu, logvar = grid_posterior(16, correlated=False)  # 256 points
    mu_c, logvar_c = grid_posterior(16, correlated=True, sd=0.1)
    tcs, tcs_c = [], []
    for _ in range(40):
        idx = torch.randperm(len(mu), generator=g)[:128]
        for m, lv, out in ((mu, logvar, tcs), (mu_c, logvar_c, tcs_c)):
            z = m[idx] + torch.exp(0.5 * lv[idx]) * torch.randn(128, 2, generator=g, dtype=torch.float64)
            out.append(float(obj.kl_decomposition(z, m[idx], lv[idx], len(m), "mss").total_correlation))
    assert abs(np.mean(tcs)) < 0.1
    assert np.mean(tcs_c) > 1.5


def test_loss_weights_the_terms():
    z, mu, logvar = tiny(16, 4, seed=3)
    mu.requires_grad_(True)
    rec = torch.tensor(100.0, dtype=torch.float64)
    loss, parts = obj.beta_tcvae_loss(rec, z, mu, logvar, dataset_size=1000, beta=6.0)
    want = rec + parts.mutual_info + 6.0 * parts.total_correlation + parts.dimwise_kl
    assert float(loss.detach()) == pytest.approx(float(want.detach()), rel=1e-12)
    loss1, _ = obj.beta_tcvae_loss(rec, z, mu, logvar, dataset_size=1000, beta=1.0)
    # beta = 1: the three terms weigh 1 each, the ELBO's (one-sample) KL
    assert float(loss1.detach()) == pytest.approx(float((rec + parts.kl).detach()), rel=1e-12)
    loss.backward()
    assert mu.grad is not None and torch.isfinite(mu.grad).all()


def test_bad_arguments_are_refused():
    z, mu, logvar = tiny(8, 2)
    with pytest.raises(ValueError, match="mws, mss"):
        obj.kl_decomposition(z, mu, logvar, 100, estimator="exact")
    with pytest.raises(ValueError, match="at least the batch size"):
        obj.kl_decomposition(z, mu, logvar, 4)


def test_permute_dims_shuffles_each_dimension_independently():
    z = torch.arange(200 * 3, dtype=torch.float32).reshape(200, 3)
    out = obj.permute_dims(z, torch.Generator().manual_seed(0))
    assert out.shape == z.shape
    for j in range(3):  # each column is a permutation of itself: the marginals are kept
        assert torch.equal(torch.sort(out[:, j]).values, z[:, j])
    rows = {tuple(r) for r in z.tolist()}
    assert sum(tuple(r) in rows for r in out.tolist()) < 5  # the joint is broken: almost no row survives
    perms = [torch.argsort(out[:, j]) for j in range(3)]
    assert not torch.equal(perms[0], perms[1])  # a different permutation per dimension
    again = obj.permute_dims(z, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_permute_dims_keeps_gradients_flowing():
    z = torch.randn(10, 4, requires_grad=True)
    obj.permute_dims(z).sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))


def test_discriminator_tc():
    logits = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    assert float(obj.discriminator_tc(logits)) == pytest.approx(1.0)
