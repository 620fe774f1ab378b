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
