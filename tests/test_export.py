"""Training and export: a smoke fit, export parity at several batch sizes, and the shipped bundle's
graphs against the PyTorch model rebuilt from its own weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vaegen_infer as vi

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from train.export import PARITY_TOL, ExportError, check_graphs, export_graphs, model_from_bundle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_fit_one_epoch_then_export_then_sample(tiny_run: Path, tiny_bundle: Path) -> None:
    assert (tiny_run / "checkpoint.pt").is_file()
    payload = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    assert payload["model_config"]["latent_dim"] == 4 and len(payload["history"]) == 1
    g = vi.load(tiny_bundle, providers="cpu")
    assert g.manifest.description == "test bundle"
    assert g.sample(3, seed=0).shape == (3, 1, 28, 28)
    assert max(g.manifest.producer["parity_max_abs_diff"].values()) <= PARITY_TOL


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_random_weights_export_with_parity_at_batches_1_7_64(exporter: str) -> None:
    from train.config import ModelConfig
    from train.models import Autoencoder

    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(latent_dim=5, channels=(4, 8), hidden=16)).eval()
    graphs = export_graphs(model, exporter)
    worst = check_graphs(model, graphs, batches=(1, 7, 64))
    assert set(worst) == {"encoder.onnx:mu", "encoder.onnx:logvar", "decoder.onnx:x", "decoder.onnx:logits"}
    assert max(worst.values()) <= PARITY_TOL


def test_parity_check_catches_a_graph_that_disagrees() -> None:
    from train.config import ModelConfig
    from train.models import Autoencoder

    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(latent_dim=3, channels=(4, 8), hidden=8)).eval()
    graphs = export_graphs(model)
    with torch.no_grad():
        model.decoder.fc[0].bias += 0.01  # PyTorch now differs from the exported graphs
    with pytest.raises(ExportError, match="differs from PyTorch"):
        check_graphs(model, graphs)


def test_failed_export_leaves_no_bundle(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import train.export as ex

    def broken(model, graphs, batches=ex.PARITY_BATCHES):  # type: ignore[no-untyped-def]
        raise ExportError("forced failure")

    monkeypatch.setattr(ex, "check_graphs", broken)
    with pytest.raises(ExportError):
        ex.export_run(tiny_run, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["mnist-vae"])
def test_shipped_bundle_matches_pytorch(name: str) -> None:
    path = ROOT / "exported" / name
    model = model_from_bundle(path)
    g = vi.load(path, providers="cpu")
    rng = np.random.default_rng(0)
    for n in (1, 7, 64):
        z = rng.standard_normal((n, g.latent_dim), dtype=np.float32)
        x = rng.random((n, 1, 28, 28), dtype=np.float32)
        with torch.no_grad():
            want_x = torch.sigmoid(model.decode(torch.from_numpy(z))).numpy()
            want_mu, want_lv = (t.numpy() for t in model.encode(torch.from_numpy(x)))
        mu, lv = g.encode(x)
        assert np.abs(g.decode(z) - want_x).max() <= PARITY_TOL
        assert np.abs(mu - want_mu).max() <= PARITY_TOL
        assert np.abs(lv - want_lv).max() <= PARITY_TOL


def test_vamp_prior_trains_and_exports_as_a_gaussian_mixture(tmp_path: Path) -> None:
    from train import data
    from train.config import ModelConfig, TrainConfig
    from train.evaluate import iwae
    from train.export import export_run
    from train.fit import fit_vae, load_checkpoint

    split = data.synthetic(n=160)
    mcfg = ModelConfig(latent_dim=3, channels=(4, 8), hidden=16, prior="vamp", prior_params={"components": 6})
    tcfg = TrainConfig(data="synthetic", epochs=1, batch_size=32, iw_samples=2, seed=0)
    fit_vae(mcfg, tcfg, split, tmp_path / "run", quiet=True)
    model, _ = load_checkpoint(tmp_path / "run")
    path, _ = export_run(tmp_path / "run", tmp_path / "b")
    g = vi.load(path, providers="cpu")
    assert g.prior.name == "gaussian-mixture" and len(g.prior.weights) == 6
    # the runtime's numpy density is training's torch density
    z = g.prior.sample(20, np.random.default_rng(0))
    with torch.no_grad():
        want = model.log_prior(torch.from_numpy(z).double()).numpy()
    np.testing.assert_allclose(g.prior.log_density(z), want, rtol=1e-5)  # float32 components
    # rebuilt from the bundle, the model carries the stored mixture instead of pseudo-inputs
    rebuilt = model_from_bundle(path)
    assert rebuilt.pseudo_logits is None and "pseudo_logits" not in rebuilt.state_dict()
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt.log_prior(torch.from_numpy(z).double()).numpy(), want, rtol=1e-5)
        draws = rebuilt.sample_prior(40_000, torch.Generator().manual_seed(0)).numpy()  # (40000, 3)
    # mixture mean and spread: standard error of a mean over 40,000 draws is < 0.01 * std
    np.testing.assert_allclose(draws.mean(0), g.prior.mean(), atol=0.05 * float(g.prior.std().max()))
    np.testing.assert_allclose(draws.std(0), g.prior.std(), rtol=0.05)
    out = iwae(g, (split.x_val > 0.5).astype(np.float32), k=20, quiet=True)
    assert np.isfinite(out["log_likelihood"]).all() and (out["log_likelihood"] < 0).all()
    assert "kl_per_dim" not in g.manifest.latent_stats  # no per-dimension KL against a mixture


def test_export_refuses_a_prior_that_disagrees_with_training() -> None:
    from train.config import ModelConfig
    from train.export import check_prior
    from train.models import Autoencoder
    from vaegen_infer.priors import GaussianMixturePrior

    torch.manual_seed(0)
    cfg = ModelConfig(latent_dim=2, channels=(4, 8), hidden=8, prior="vamp", prior_params={"components": 3})
    model = Autoencoder(cfg)
    spec = model.prior_spec()
    check_prior(model, GaussianMixturePrior(2, **spec.params))  # the faithful export passes
    shifted = {**spec.params, "means": (np.asarray(spec.params["means"]) + 0.5).tolist()}
    with pytest.raises(ExportError, match="log-density differs"):
        check_prior(model, GaussianMixturePrior(2, **shifted))
