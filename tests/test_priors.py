"""The numpy priors shared by AAE training and runtime sampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaegen_infer.errors import BundleError, UsageError
from vaegen_infer.manifest import PriorSpec
from vaegen_infer.priors import (
    PRIORS,
    GaussianMixturePrior,
    GaussianPrior,
    MixturePrior,
    Prior,
    SwissRollPrior,
    UniformPrior,
    make_prior,
)

REGIONAL = [(MixturePrior, 2), (MixturePrior, 6), (SwissRollPrior, 2)]


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_every_registered_prior_round_trips_through_its_spec(name: str) -> None:
    p = make_prior(PriorSpec(name, {}), 2)
    again = make_prior(p.spec(), 2)
    assert again.params() == p.params()
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(p.sample(50, rng), again.sample(50, np.random.default_rng(0)))


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(PRIORS)), n=st.integers(1, 300), seed=st.integers(0, 2**31))
def test_samples_have_the_right_shape_and_are_reproducible(name: str, n: int, seed: int) -> None:
    dim = 2
    p = make_prior(PriorSpec(name, {}), dim)
    a = p.sample(n, np.random.default_rng(seed))
    assert a.shape == (n, dim) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, p.sample(n, np.random.default_rng(seed)))


def test_gaussian_statistics() -> None:
    z = GaussianPrior(8, scale=2.0).sample(200_000, np.random.default_rng(1))
    np.testing.assert_allclose(z.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(z.std(0), 2.0, rtol=0.01)


def test_uniform_statistics_and_exact_quantiles() -> None:
    p = UniformPrior(3, half_width=2.0)
    z = p.sample(200_000, np.random.default_rng(2))
    assert z.min() >= -2 and z.max() <= 2
    np.testing.assert_allclose(z.std(0), p.std(), rtol=0.01)
    np.testing.assert_allclose(p.ppf(np.array([0.25, 0.5]))[:, 0], [-1.0, 0.0])


def test_gaussian_quantiles_match_the_normal_distribution() -> None:
    q = GaussianPrior(2).ppf(np.array([0.025, 0.5, 0.8413447460685429, 0.999]))
    np.testing.assert_allclose(q[:, 0], [-1.959964, 0.0, 1.0, 3.090232], atol=1e-6)


def test_mog_in_2d_is_ten_petals_around_a_circle() -> None:
    p = MixturePrior(2, k=10, radius=4.0, radial_std=1.0, tangential_std=0.25)
    for k in range(10):
        z = p.sample(20_000, np.random.default_rng(k), np.full(20_000, k))
        angle = 2 * np.pi * k / 10
        centre = 4.0 * np.array([np.cos(angle), np.sin(angle)])
        np.testing.assert_allclose(z.mean(0), centre, atol=0.03)
        radial = z @ np.array([np.cos(angle), np.sin(angle)])
        tangential = z @ np.array([-np.sin(angle), np.cos(angle)])
        assert abs(radial.std() - 1.0) < 0.02 and abs(tangential.std() - 0.25) < 0.01


@pytest.mark.parametrize(("cls", "dim"), REGIONAL)
def test_label_regions_hold_their_own_samples(cls: type, dim: int) -> None:
    p = cls(dim)
    labels = np.repeat(np.arange(p.n_regions), 500)
    z = p.sample(len(labels), np.random.default_rng(3), labels)
    assert (p.region_of(z) == labels).mean() > 0.97


def test_swissroll_classes_are_consecutive_arcs() -> None:
    p = SwissRollPrior(2, noise=0.0)
    radii = [np.linalg.norm(p.sample(2000, np.random.default_rng(k), np.full(2000, k)), axis=1) for k in range(10)]
    # radius = scale * sqrt(u): class k covers [scale sqrt(k/10), scale sqrt((k+1)/10)]
    for k, r in enumerate(radii):
        assert r.min() >= 4 * np.sqrt(k / 10) - 1e-6 and r.max() <= 4 * np.sqrt((k + 1) / 10) + 1e-6


@pytest.mark.parametrize("labels", [np.array([10]), np.array([-1]), np.array([0, 1])])
def test_bad_labels_are_refused(labels: np.ndarray) -> None:
    with pytest.raises(UsageError):
        MixturePrior(2).sample(1, np.random.default_rng(0), labels)


@pytest.mark.parametrize("cls", [GaussianPrior, UniformPrior])
def test_priors_without_regions_refuse_labels(cls: type) -> None:
    with pytest.raises(UsageError, match="no per-label regions"):
        cls(2).sample(3, np.random.default_rng(0), np.zeros(3, int))


@pytest.mark.parametrize(
    ("spec", "dim", "message"),
    [
        (PriorSpec("cauchy", {}), 2, "unknown prior 'cauchy'; this vaegen-infer knows: gaussian, gaussian-mixture"),
        (PriorSpec("gaussian", {"scale": -1}), 2, "scale"),
        (PriorSpec("gaussian", {"sigma": 1}), 2, "bad parameters"),
        (PriorSpec("swissroll", {}), 3, "2-D"),
        (PriorSpec("mog", {}), 1, "at least 2"),
        (PriorSpec("gaussian-mixture", {"weights": [0.5, 0.5], "means": [[0.0, 0.0]]}), 2, "'means' must be 2 rows"),
        (PriorSpec("gaussian-mixture", {"weights": [1.0], "logvars": [[0.0, float("nan")]]}), 2, "finite"),
        (PriorSpec("gaussian-mixture", {"weights": [-1.0, 2.0]}), 2, "non-negative"),
    ],
)
def test_bad_prior_specs(spec: PriorSpec, dim: int, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        make_prior(spec, dim)


def _two_bumps() -> GaussianMixturePrior:
    return GaussianMixturePrior(
        2, weights=[0.25, 0.75], means=[[-2.0, 0.0], [1.0, 3.0]], logvars=[[0.0, np.log(4.0)], [np.log(0.25), 0.0]]
    )


def test_gaussian_mixture_density_known_values() -> None:
    p = _two_bumps()
    z = np.array([[-2.0, 0.0], [1.0, 3.0], [0.0, 1.0]])

    # by hand: sum_k w_k prod_d N(z_d | m_kd, s_kd^2), s = (1, 2) and (0.5, 1)
    def normal(x: float, m: float, s: float) -> float:
        return float(np.exp(-0.5 * ((x - m) / s) ** 2) / (s * np.sqrt(2 * np.pi)))

    want = [
        np.log(0.25 * normal(a, -2, 1) * normal(b, 0, 2) + 0.75 * normal(a, 1, 0.5) * normal(b, 3, 1)) for a, b in z
    ]
    np.testing.assert_allclose(p.log_density(z), want, rtol=1e-12)
    assert p.log_density(np.zeros((4, 5, 2))).shape == (4, 5)


def test_one_component_mixture_is_the_gaussian_prior() -> None:
    z = np.random.default_rng(0).standard_normal((100, 3))
    np.testing.assert_allclose(GaussianMixturePrior(3).log_density(z), GaussianPrior(3).log_density(z), rtol=1e-12)


def test_gaussian_mixture_moments_match_its_samples() -> None:
    p = _two_bumps()
    z = p.sample(400_000, np.random.default_rng(5))
    np.testing.assert_allclose(z.mean(0), p.mean(), atol=0.01)
    np.testing.assert_allclose(z.std(0), p.std(), rtol=0.01)
    np.testing.assert_allclose(p.mean(), [0.25, 2.25], atol=1e-6)  # 0.25 * (-2, 0) + 0.75 * (1, 3)


@pytest.mark.parametrize("prior", [GaussianPrior(3), _two_bumps()], ids=["gaussian", "gaussian-mixture"])
def test_fewer_draws_are_a_prefix_of_more(prior: Prior) -> None:
    # so `sample --n 64` shows the first 64 of any larger request with the same seed
    few = prior.sample(64, np.random.default_rng(3))
    np.testing.assert_array_equal(few, prior.sample(1000, np.random.default_rng(3))[:64])


def test_priors_without_a_density_say_so() -> None:
    assert not SwissRollPrior(2, noise=0.0).has_density and not UniformPrior(2).has_density
    with pytest.raises(UsageError, match="noise 0 has no density in the plane"):
        SwissRollPrior(2, noise=0.0).log_density(np.zeros((1, 2)))
    with pytest.raises(UsageError, match="no closed-form density"):
        UniformPrior(2).log_density(np.zeros((1, 2)))


def _swissroll_by_quad(prior: SwissRollPrior, z: np.ndarray) -> float:
    """log p(z) of the swiss roll by adaptive quadrature over u (scipy), the integral written out:
    p(z) = int_0^1 N(z; c(u), noise^2 I) du, with the roll's points near z as break points."""
    from scipy.integrate import quad

    var = prior.noise**2

    def f(u: float) -> float:
        c = prior._point(np.array([u]))[0]
        return float(np.exp(-0.5 * ((z - c) ** 2).sum() / var) / (2 * np.pi * var))

    near = prior._curve_u[((prior._curve - z) ** 2).sum(1) < (6 * prior.noise) ** 2]  # where f is not ~0
    points = list(np.linspace(near.min(), near.max(), 50)) if len(near) else None
    return float(np.log(quad(f, 0.0, 1.0, points=points, limit=2000, epsabs=0.0, epsrel=1e-10)[0]))


@pytest.mark.parametrize("noise", [0.05, 0.3])
def test_swissroll_density_matches_quadrature(noise: float) -> None:
    prior = SwissRollPrior(2, noise=noise)
    ends = [[0.0, 0.0], [4.0, 0.0]]  # where the roll starts and ends (u = 0, 1)
    z = np.r_[prior.sample(4, np.random.default_rng(5)), ends, [[1.0, -2.0]]].astype(np.float64)  # (7, 2)
    got = prior.log_density(z)
    want = [_swissroll_by_quad(prior, zi) for zi in z]
    np.testing.assert_allclose(got, want, atol=1e-5)  # 4e-6 at the roll's start (0, 0): the midpoint sum's ends


def test_swissroll_density_integrates_to_one() -> None:
    prior = SwissRollPrior(2, noise=0.5)
    ax = np.linspace(-8.0, 8.0, 161)  # spacing 0.1, a fifth of the jitter
    step = ax[1] - ax[0]
    grid = np.stack(np.meshgrid(ax, ax, indexing="ij"), -1).reshape(-1, 2)
    assert float(np.exp(prior.log_density(grid)).sum() * step**2) == pytest.approx(1.0, abs=1e-6)


def _mog_by_hand(prior: MixturePrior, z: np.ndarray) -> np.ndarray:
    """The mixture written out: per pair of dimensions, component k is N(radius (cos, sin),
    R diag(radial_std^2, tangential_std^2) R^T) with R the rotation by 2 pi k / K; an odd last
    dimension is N(0, radial_std^2); components weigh 1/K. scipy does the Gaussians."""
    from scipy.stats import multivariate_normal, norm

    d, k = z.shape[1], prior.k
    total = np.zeros(len(z))
    for c in range(k):
        a = 2 * np.pi * c / k
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        cov = rot @ np.diag([prior.radial_std**2, prior.tangential_std**2]) @ rot.T
        mean = prior.radius * np.array([np.cos(a), np.sin(a)])
        p = np.ones(len(z))
        for i in range(d // 2):
            p *= multivariate_normal(mean, cov).pdf(z[:, 2 * i : 2 * i + 2])
        if d % 2:
            p *= norm(0, prior.radial_std).pdf(z[:, -1])
        total += p / k
    return np.log(total)


@pytest.mark.parametrize("dim", [2, 3, 4, 5])
def test_mog_density_matches_the_mixture_written_out(dim: int) -> None:
    prior = MixturePrior(dim, k=7, radius=3.0, radial_std=0.8, tangential_std=0.3)
    z = np.concatenate([prior.sample(50, np.random.default_rng(dim)), np.random.default_rng(9).normal(0, 3, (20, dim))])
    np.testing.assert_allclose(prior.log_density(z), _mog_by_hand(prior, z), rtol=1e-9, atol=1e-9)
    assert prior.log_density(z.reshape(2, 35, dim)).shape == (2, 35)


def test_mog_density_integrates_to_one_in_2d() -> None:
    prior = MixturePrior(2)  # radius 4, petals of std 1 x 0.25
    ax = np.linspace(-9.0, 9.0, 721)
    step = ax[1] - ax[0]
    grid = np.stack(np.meshgrid(ax, ax, indexing="ij"), -1).reshape(-1, 2)
    assert float(np.exp(prior.log_density(grid)).sum() * step**2) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_has_density_says_whether_log_density_answers(name: str) -> None:
    """`has_density` decides whether `evaluate` scores a Gaussian-posterior AAE with the IWAE bound."""
    prior = (
        GaussianMixturePrior(2, weights=[1.0], means=[[0.0, 0.0]], logvars=[[0.0, 0.0]])
        if name == "gaussian-mixture"
        else PRIORS[name](2)
    )
    z = np.zeros((3, 2))
    if name == "mog":  # every petal's centre is radius 4 away along its long axis (std 1; across: 0.25)
        np.testing.assert_allclose(prior.log_density(z), -0.5 * 4.0**2 - np.log(2 * np.pi * 0.25), rtol=1e-12)
    elif name == "swissroll":  # the roll starts at 0: its density there, by quadrature
        np.testing.assert_allclose(prior.log_density(z), _swissroll_by_quad(prior, z[0]), atol=1e-5)
    elif prior.has_density:
        np.testing.assert_allclose(prior.log_density(z), -np.log(2 * np.pi), rtol=1e-12)  # N(0, I) at 0, D = 2
    else:
        with pytest.raises(UsageError, match="no closed-form density"):
            prior.log_density(z)


# -- known answers found missing by mutation testing (benchmarks/mutation.py) ---------------------------
TWO_BUMPS = GaussianMixturePrior(3, [1.0, 3.0], [[0.0, 1.0, 2.0], [1.0, -1.0, 0.0]], [[0.0] * 3, [-1.0] * 3])
ALL_PRIORS = [GaussianPrior(3, scale=2.0), UniformPrior(3), MixturePrior(3), SwissRollPrior(2), TWO_BUMPS]


@pytest.mark.parametrize("prior", ALL_PRIORS, ids=lambda p: p.name)
def test_mean_std_and_quantiles_are_float32_per_dimension(prior: Prior) -> None:
    # what traverse / manifold build codes from: float32 rows of D, like every code the runtime returns
    for values, shape in ((prior.mean(), (prior.dim,)), (prior.std(), (prior.dim,)),
                          (prior.ppf([0.1, 0.5, 0.9]), (3, prior.dim))):  # fmt: skip
        assert values.dtype == np.float32 and values.shape == shape


@pytest.mark.parametrize("prior", ALL_PRIORS, ids=lambda p: p.name)
@pytest.mark.parametrize("q", [0.0, 1.0, 1.5, -0.1])
def test_quantiles_outside_the_open_unit_interval_are_refused(prior: Prior, q: float) -> None:
    with pytest.raises(UsageError) as info:
        prior.ppf([0.5, q])
    assert str(info.value) == "quantiles must lie strictly between 0 and 1"


def test_gaussian_quantiles_match_the_inverse_normal_cdf() -> None:
    # scipy.stats.norm.ppf values; Acklam's approximation is within 1.2e-9 in all three branches
    q = [0.001, 0.01, 0.02, 0.025, 0.5, 0.9, 0.975, 0.98, 0.999]
    want = [-3.090232306167813, -2.3263478740408408, -2.053748910631823, -1.9599639845400545, 0.0,
            1.2815515655446004, 1.959963984540054, 2.0537489106318225, 3.090232306167813]  # fmt: skip
    from vaegen_infer.priors import _normal_ppf

    np.testing.assert_allclose(_normal_ppf(np.array(q)), want, rtol=0, atol=2e-9)
    np.testing.assert_allclose(GaussianPrior(2, scale=2.0).ppf(q), 2 * np.array(want)[:, None] * [1, 1], rtol=1e-6)


def test_uniform_quantiles_and_std() -> None:
    u = UniformPrior(2, half_width=3.0)
    np.testing.assert_allclose(u.ppf([0.25, 0.5, 0.75]), [[-1.5, -1.5], [0.0, 0.0], [1.5, 1.5]])
    np.testing.assert_allclose(u.std(), [3 / np.sqrt(3)] * 2, rtol=1e-6)


def test_sampled_quantiles_and_std_match_the_distribution() -> None:
    # Priors without a closed form get quantiles and std from 100,000 draws: a one-component mixture
    # is N(m, s^2), so they must agree with the normal's to sampling error.
    g = GaussianMixturePrior(1, [1.0], [[1.0]], [[np.log(4.0)]])  # N(1, 2^2)
    np.testing.assert_allclose(Prior.ppf(g, [0.1, 0.5, 0.9])[:, 0], 1 + 2 * np.array([-1.28155, 0, 1.28155]), atol=0.03)
    np.testing.assert_allclose(Prior.std(g), [2.0], rtol=0.01)
    # the default petals: per pair E[x^2] = ((radius^2 + radial_std^2) + tangential_std^2) / 2, mean 0
    np.testing.assert_allclose(MixturePrior(2).std(), [2.92083] * 2, rtol=0.01)
    np.testing.assert_array_equal(MixturePrior(2).std(), MixturePrior(2).std())  # fixed draws: same steps each time
    np.testing.assert_array_equal(MixturePrior(2).ppf([0.2]), MixturePrior(2).ppf([0.2]))


def test_default_parameters_are_what_an_empty_manifest_entry_means() -> None:
    assert MixturePrior(2).params() == {"k": 10, "radius": 4.0, "radial_std": 1.0, "tangential_std": 0.25}
    assert UniformPrior(2).params() == {"half_width": 2.0}
    assert GaussianPrior(2).params() == {"scale": 1.0}


MOG_REFUSAL = "mog prior: need k >= 2 and positive radius, radial_std, tangential_std"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: GaussianPrior(2, scale=0.0), "gaussian prior: 'scale' must be > 0, got 0.0"),
        (lambda: UniformPrior(2, half_width=0.0), "uniform prior: 'half_width' must be > 0, got 0.0"),
        *[(lambda kw=kw: MixturePrior(2, **kw), MOG_REFUSAL)
          for kw in ({"k": 1}, {"radius": 0.0}, {"radial_std": 0.0}, {"tangential_std": 0.0})],
    ],
)  # fmt: skip
def test_bad_prior_parameters_are_refused_one_at_a_time(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BundleError) as info:
        make()
    assert str(info.value) == message


def test_small_but_valid_parameters_are_accepted() -> None:
    MixturePrior(2, k=2, radius=0.5, radial_std=0.5, tangential_std=0.1)
    UniformPrior(2, half_width=0.5)


def test_gaussian_log_density_with_a_scale_over_any_leading_shape() -> None:
    z = np.array([[2.0, -1.0], [0.0, 0.5]])
    want = [-0.5 * (2 * np.log(2 * np.pi) + 4 * np.log(2.0) + (1.0 + 0.25)),
            -0.5 * (2 * np.log(2 * np.pi) + 4 * np.log(2.0) + (0.0 + 0.0625))]  # fmt: skip
    p = GaussianPrior(2, scale=2.0)
    np.testing.assert_allclose(p.log_density(z), want, rtol=1e-12)
    stacked = np.stack([z, z, z])  # (3, 2, D): the density of each code, not of a sum over rows
    np.testing.assert_allclose(p.log_density(stacked), [want] * 3, rtol=1e-12)
    z32 = np.array([[0.1, 0.3]], np.float32)  # a float32 code gets the float64 density of its value
    np.testing.assert_allclose(p.log_density(z32), p.log_density(z32.astype(np.float64)), rtol=1e-15)


def test_mixture_log_density_of_a_far_code_is_finite() -> None:
    # log-sum-exp per code: a code far from every component still gets its own (very low) density
    g = GaussianMixturePrior(1, [1.0, 1.0], [[0.0], [1.0]], [[0.0], [0.0]])
    z = np.array([[0.5], [80.0]])
    comps = -0.5 * (np.log(2 * np.pi) + (z - np.array([[0.0, 1.0]])) ** 2) + np.log(0.5)  # (2, K)
    np.testing.assert_allclose(g.log_density(z), np.logaddexp(comps[:, 0], comps[:, 1]), rtol=1e-12)
    z32 = np.array([[0.1], [-0.7]], np.float32)  # a float32 code gets the float64 density of its value
    np.testing.assert_allclose(g.log_density(z32), g.log_density(z32.astype(np.float64)), rtol=1e-15)


def test_petal_log_density_known_answers() -> None:
    p = MixturePrior(2, k=4, radius=2.0, radial_std=0.5, tangential_std=0.25)
    got = p.component_log_density(np.array([[2.0, 0.0]]))  # at the centre of petal 0
    # petal 1 points along +y: radial offset -2 (16 after /0.5, squared), tangential -2 (64)
    np.testing.assert_allclose(got[0, :2], [0.0, -0.5 * (16 + 64)], atol=1e-12)
    five = MixturePrior(5, k=4, radius=2.0, radial_std=0.5, tangential_std=0.25)  # two pairs, odd last dim
    np.testing.assert_allclose(five.component_log_density(np.array([[2.0, 0.0, 2.0, 0.0, 9.0]]))[0, :2], [0.0, -80.0])


class _Tensor(np.ndarray):
    """A stand-in for a torch tensor: component_log_density keeps the type of what it is given."""

    def new_tensor(self, data: np.ndarray) -> _Tensor:
        return np.asarray(data).view(_Tensor)


def test_petal_log_density_keeps_a_tensor_type() -> None:
    p = MixturePrior(4, k=3)
    z = np.random.default_rng(0).normal(size=(5, 4))
    got = p.component_log_density(z.view(_Tensor))
    assert type(got) is _Tensor
    np.testing.assert_allclose(np.asarray(got), p.component_log_density(z), rtol=1e-12)


def test_petal_draws_follow_their_component() -> None:
    p = MixturePrior(5, k=4, radius=3.0, radial_std=0.5, tangential_std=0.2)
    z = p.sample(40_000, np.random.default_rng(0), labels=np.full(40_000, 1))  # petal 1: along +y
    for pair in (0, 1):
        x, y = z[:, 2 * pair], z[:, 2 * pair + 1]
        np.testing.assert_allclose([x.mean(), y.mean(), x.std(), y.std()], [0.0, 3.0, 0.2, 0.5], atol=0.01)
    np.testing.assert_allclose([z[:, 4].mean(), z[:, 4].std()], [0.0, 0.5], atol=0.01)  # the odd last dim
    free = p.sample(40_000, np.random.default_rng(1))  # without labels: every petal equally often
    np.testing.assert_allclose(np.bincount(p.region_of(free), minlength=4) / 40_000, [0.25] * 4, atol=0.01)


def test_priors_without_regions_say_so_and_regions_are_integers() -> None:
    with pytest.raises(UsageError) as info:
        GaussianPrior(2).region_of(np.zeros((1, 2)))
    assert str(info.value) == "the 'gaussian' prior has no per-label regions"
    s = SwissRollPrior(2)
    assert s.region_of(s.sample(3, np.random.default_rng(0))).dtype == np.int64


def test_spec_carries_the_parameters() -> None:
    p = MixturePrior(4, k=3, radius=2.5)
    assert p.spec() == PriorSpec("mog", p.params()) and make_prior(p.spec(), 4).params() == p.params()


def test_swiss_roll_defaults_refusals_and_its_one_shape() -> None:
    s = SwissRollPrior(2)
    assert s.dim == 2 and s.params() == {"k": 10, "scale": 4.0, "turns": 2.0, "noise": 0.05}
    for kw in ({"k": 0}, {"scale": 0.0}, {"turns": 0.0}, {"noise": -0.1}):
        with pytest.raises(BundleError) as info:
            SwissRollPrior(2, **kw)
        assert str(info.value) == "swissroll prior: need k >= 1, scale > 0, turns > 0, noise >= 0", kw
    SwissRollPrior(2, k=1, scale=0.5, turns=0.5, noise=0.0)  # the smallest valid values


def test_swiss_roll_draws_lie_on_the_roll_and_cover_it() -> None:
    # radius = scale sqrt(u) and angle = turns 2 pi sqrt(u): the angle grows with the radius, 2 pi
    # per scale / turns of radius
    s = SwissRollPrior(2, k=4, scale=3.0, turns=1.5, noise=0.0)
    z = s.sample(5_000, np.random.default_rng(0)).astype(np.float64)
    r = np.hypot(z[:, 0], z[:, 1])
    gap = np.angle(np.exp(1j * (np.arctan2(z[:, 1], z[:, 0]) - 1.5 * 2 * np.pi * r / 3.0)))
    assert np.abs(gap).max() < 1e-4
    np.testing.assert_allclose(np.bincount(s.region_of(z), minlength=4) / 5_000, [0.25] * 4, atol=0.03)
    jitter = SwissRollPrior(2, noise=0.3).sample(20_000, np.random.default_rng(0), labels=np.zeros(20_000, int))
    spread = jitter - SwissRollPrior(2, noise=0.0).sample(
        20_000, np.random.default_rng(0), labels=np.zeros(20_000, int)
    )
    np.testing.assert_allclose(spread.std(0), [0.3, 0.3], rtol=0.03)  # independent noise per code and axis


def test_swiss_roll_regions_of_many_codes() -> None:
    # more codes than one 512-row distance block: every code gets the class of its own arc segment
    s = SwissRollPrior(2, k=10, noise=0.0)
    labels = np.arange(1_200) % 10
    z = s.sample(1_200, np.random.default_rng(0), labels=labels)
    np.testing.assert_array_equal(s.region_of(z), labels)
