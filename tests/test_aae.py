"""AAE training, export and runtime sampling by label (needs torch for the training parts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import vaegen_infer as vi
from vaegen_infer.cli import app
from vaegen_infer.errors import UsageError

runner = CliRunner()


@pytest.fixture(scope="module", params=["mog", "swissroll", "gaussian", "uniform"])
def aae_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch AAE on synthetic data for each prior, exported (label-conditioned when it can be)."""
    pytest.importorskip("torch")
    from train import data
    from train.aae import fit_aae
    from train.config import ModelConfig, TrainConfig
    from train.export import export_run

    prior = request.param
    out = tmp_path_factory.mktemp(f"aae-{prior}")
    mcfg = ModelConfig(
        kind="aae", latent_dim=2, channels=(8, 16), hidden=32, posterior="deterministic", prior=prior,
        conditional=prior in ("mog", "swissroll"), disc_hidden=32,
    )  # fmt: skip
    tcfg = TrainConfig(data="synthetic", epochs=1, batch_size=64, label_fraction=0.7)
    fit_aae(mcfg, tcfg, data.synthetic(n=160), out / "run", quiet=True)
    path, parity = export_run(out / "run", out / "bundle")
    assert max(parity.values()) <= 1e-5
    return path


def test_exported_aae_carries_its_prior_and_samples(aae_bundle: Path) -> None:
    g = vi.load(aae_bundle, providers="cpu")
    assert g.manifest.kind == "aae"
    x = g.sample(6, seed=0)
    assert x.shape == (6, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    # A deterministic encoder reports a point mass: logvar is the documented constant.
    _, logvar = g.encode(x)
    np.testing.assert_array_equal(logvar, np.full_like(logvar, -20.0))
    # Latent codes are drawn from the prior named in model.json.
    z = g.sample_latents(5000, seed=1)
    ref = g.prior.sample(5000, np.random.default_rng(1))
    np.testing.assert_array_equal(z, ref)


def test_sampling_by_label_and_refusals(aae_bundle: Path) -> None:
    g = vi.load(aae_bundle, providers="cpu")
    if g.manifest.conditional:
        z = g.sample_latents(2000, seed=0, label="3")
        assert (g.prior.region_of(z) == 3).mean() > 0.95
        np.testing.assert_array_equal(g.sample(4, seed=2, label=3), g.sample(4, seed=2, label="3"))
        for bad in ("11", "three", -1, 10):
            with pytest.raises(UsageError, match="valid labels: 0, 1"):
                g.sample(1, label=bad)
        result = runner.invoke(app, ["sample", "--model", str(aae_bundle), "--label", "12", "-o", "x.png"])
        assert result.exit_code == 2 and "unknown label '12'" in result.stderr
    else:
        with pytest.raises(UsageError, match="not label-conditioned"):
            g.sample(1, label=3)


def test_training_refuses_conditioning_on_a_prior_without_regions(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from train import data
    from train.aae import fit_aae
    from train.config import ModelConfig, TrainConfig

    mcfg = ModelConfig(kind="aae", latent_dim=2, prior="gaussian", conditional=True)
    with pytest.raises(UsageError, match="per-label regions"):
        fit_aae(mcfg, TrainConfig(data="synthetic", epochs=1), data.synthetic(n=40), tmp_path, quiet=True)


@pytest.fixture(scope="module")
def gaussian_posterior_aae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-D Gaussian-posterior AAE (EMA and discriminator noise on), exported: small enough for the
    exact likelihood by quadrature over z."""
    pytest.importorskip("torch")
    from train import data
    from train.aae import fit_aae
    from train.config import ModelConfig, TrainConfig
    from train.export import export_run

    out = tmp_path_factory.mktemp("aae-gauss-post")
    mcfg = ModelConfig(
        kind="aae", latent_dim=1, channels=(8, 16), hidden=32, posterior="gaussian", prior="gaussian", disc_hidden=32
    )
    tcfg = TrainConfig(data="synthetic", epochs=2, batch_size=32, ema=0.9, disc_noise=0.1)
    fit_aae(mcfg, tcfg, data.synthetic(n=160), out / "run", quiet=True)
    path, parity = export_run(out / "run", out / "bundle")
    assert max(parity.values()) <= 1e-5
    return path


def test_gaussian_posterior_aae_nll_matches_quadrature(gaussian_posterior_aae: Path) -> None:
    """The IWAE bound the evaluator reports for a Gaussian-posterior AAE against log p(x) computed by
    brute force: log sum_j p(x | z_j) N(z_j; 0, 1) dz on a grid of 4,001 codes over [-8, 8]."""
    from scipy.special import logsumexp

    from train import data
    from train.evaluate import _log_bernoulli, iwae

    g = vi.load(gaussian_posterior_aae)
    x = (data.to_float(data.synthetic(n=40, seed=5).x_train[:4]) > 0.5).astype(np.float32)  # (4, 1, 28, 28)
    grid = np.linspace(-8, 8, 4001)
    logits = g.decode_logits(grid[:, None].astype(np.float32)).reshape(len(grid), -1).astype(np.float64)
    log_joint = _log_bernoulli(x.reshape(4, 1, -1).astype(np.float64), logits[None]) - 0.5 * (
        np.log(2 * np.pi) + grid**2
    )  # (4, 4001)
    exact = logsumexp(log_joint, axis=1) + np.log(grid[1] - grid[0])
    bound = iwae(g, x, k=5000, seed=0, quiet=True)["log_likelihood"]
    assert np.all(bound <= exact + 0.01)  # a lower bound, up to Monte Carlo noise
    np.testing.assert_allclose(bound, exact, atol=0.05)


def test_aae_ema_ships_the_averaged_weights(tmp_path: Path) -> None:
    """The same seed with and without EMA: the live weights match step for step, so only the
    averaging can make the shipped decoders differ; with decay 0 the average is the live model."""
    torch = pytest.importorskip("torch")
    from train import data
    from train.aae import fit_aae
    from train.config import ModelConfig, TrainConfig

    mcfg = dict(kind="aae", latent_dim=2, channels=(8, 16), hidden=32, posterior="deterministic", disc_hidden=32)
    weights = {}
    for name, ema in (("plain", 0.0), ("ema", 0.9)):
        fit_aae(ModelConfig(**mcfg), TrainConfig(data="synthetic", epochs=1, batch_size=32, ema=ema),
                data.synthetic(n=96), tmp_path / name, quiet=True)  # fmt: skip
        weights[name] = torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["state_dict"]
    diff = max(float((weights["plain"][k] - weights["ema"][k]).abs().max()) for k in weights["plain"])
    assert diff > 1e-4


def test_discriminator_instance_noise() -> None:
    torch = pytest.importorskip("torch")
    from train.aae import _noisy

    codes = torch.zeros(20_000, 3)
    gen = torch.Generator().manual_seed(0)
    assert _noisy(codes, 0.0, gen) is codes
    noisy = _noisy(codes, 0.5, gen)
    assert noisy.shape == codes.shape
    assert abs(float(noisy.std()) - 0.5) < 0.01 and abs(float(noisy.mean())) < 0.01


def test_component_log_density_takes_torch_tensors_with_gradients() -> None:
    """The region loss in training runs the runtime's formula on torch tensors: same numbers as numpy,
    and a gradient that flows back to the codes."""
    torch = pytest.importorskip("torch")
    from vaegen_infer.priors import MixturePrior

    prior = MixturePrior(3)
    z = np.random.default_rng(0).normal(0, 3, (50, 3))
    zt = torch.tensor(z, requires_grad=True)
    got = prior.component_log_density(zt)
    assert isinstance(got, torch.Tensor) and got.shape == (50, 10)
    np.testing.assert_allclose(got.detach().numpy(), prior.component_log_density(z), rtol=1e-12)
    got.sum().backward()
    assert zt.grad is not None and float(zt.grad.abs().sum()) > 0


def test_region_loss_known_answers_and_its_gradient() -> None:
    """A code at the centre of its own label's petal costs almost nothing, the same code under
    another label costs a lot; a gradient step moves a wrong code towards its label's petal; rows
    without a label (-1) count for nothing; and the loss is refused without a conditional prior."""
    torch = pytest.importorskip("torch")
    from train import data
    from train.aae import fit_aae, region_loss
    from train.config import ModelConfig, TrainConfig
    from vaegen_infer.priors import MixturePrior

    prior = MixturePrior(2)  # 10 petals, centre of petal k at 4 (cos 2 pi k / 10, sin 2 pi k / 10)
    centre = torch.tensor([[4.0, 0.0]], dtype=torch.float64)  # petal 0's centre
    assert float(region_loss(prior, centre, torch.tensor([0]))) < 1e-6
    # the opposite petal: radial offset -8 at radial std 1, so -log p(5 | z) = 64 / 2 (others negligible)
    assert float(region_loss(prior, centre, torch.tensor([5]))) == pytest.approx(32.0, abs=1e-6)
    assert float(region_loss(prior, centre, torch.tensor([-1]))) == 0.0
    both = torch.tensor([[4.0, 0.0], [-4.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(float(region_loss(prior, both, torch.tensor([0, -1]))), 0.0, atol=1e-6)

    code = torch.tensor([[4.0, 0.0]], dtype=torch.float64, requires_grad=True)  # in petal 0, labelled 1
    region_loss(prior, code, torch.tensor([1])).backward()
    moved = (code - 0.01 * code.grad).detach().numpy()
    assert prior.component_log_density(moved)[0, 1] > prior.component_log_density(code.detach().numpy())[0, 1]

    mcfg = ModelConfig(kind="aae", latent_dim=2, channels=(8, 16), hidden=32, posterior="deterministic")
    with pytest.raises(UsageError, match="--conditional"):
        fit_aae(mcfg, TrainConfig(data="synthetic", epochs=1, region_weight=1.0), data.synthetic(n=40), Path("x"),
                quiet=True)  # fmt: skip
