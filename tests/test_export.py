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


@pytest.mark.parametrize(("film", "pooled"), [(True, False), (False, True), (True, True)])
def test_film_decoder_and_pooled_encoder_export_with_parity(film: bool, pooled: bool) -> None:
    from train.config import ModelConfig
    from train.models import Autoencoder

    torch.manual_seed(0)
    cfg = ModelConfig(
        image_shape=(3, 32, 32), latent_dim=5, channels=(4, 8, 8), hidden=16, film=film, pooled_input=pooled
    )
    model = Autoencoder(cfg).eval()
    names = set(model.state_dict())
    assert ("decoder.film.2.weight" in names) is film  # one (gamma, beta) map per transposed convolution
    assert model.encoder.fc[1].in_features == 8 * 4 * 4 + (6 if pooled else 0)  # + mean and max of 3 channels
    graphs = export_graphs(model)
    assert max(check_graphs(model, graphs, batches=(1, 7, 64)).values()) <= PARITY_TOL


def test_film_changes_how_the_code_paints_and_pooled_input_sees_colour() -> None:
    """FiLM: the code scales the feature maps (h * (1 + gamma(z)) with gamma set to z0 here); the
    pooled path makes the code depend on a colour change that a (here zero-weight) conv stack cannot see."""
    from train.config import ModelConfig
    from train.models import Autoencoder

    torch.manual_seed(0)
    cfg = ModelConfig(image_shape=(3, 8, 8), latent_dim=2, channels=(4,), hidden=8, film=True, pooled_input=True)
    model = Autoencoder(cfg).eval()
    with torch.no_grad():
        # The last stage's input is h * (1 + gamma(z)) + beta(z): set gamma = z[:, 0] on every channel, beta = 0
        model.decoder.film[0].weight.zero_()
        model.decoder.film[0].bias.zero_()
        model.decoder.film[0].weight[:4, 0] = 1.0
        z = torch.tensor([[1.0, 0.0]])
        h = model.decoder.fc(z).view(1, 4, 4, 4)
        want = model.decoder.deconv[0](h * 2.0)  # z0 = 1 doubles every feature map
        got = model.decoder(z)
        assert torch.allclose(got, want, atol=1e-6)
        model.encoder.conv[0].weight.zero_()  # the conv path now sees nothing
        a = torch.zeros(1, 3, 8, 8)
        b = a.clone()
        a[0, 0, 2:4, 2:4], b[0, 1, 2:4, 2:4] = 0.9, 0.9  # a red square, a green square
        assert not torch.allclose(model.encoder(a), model.encoder(b))


def test_film_and_pooled_input_are_conv_options() -> None:
    from train.config import ModelConfig
    from vaegen_infer.errors import UsageError

    with pytest.raises(UsageError, match="film and pooled_input are options of the conv architecture"):
        ModelConfig(arch="mlp", film=True)


def test_plain_conv_checkpoints_keep_their_parameter_names() -> None:
    """Old runs load: without FiLM or pooling the parameter names are those of every earlier checkpoint."""
    from train.config import ModelConfig
    from train.models import Autoencoder

    names = list(Autoencoder(ModelConfig(latent_dim=2, channels=(4, 8), hidden=8)).state_dict())
    assert names == [
        "encoder.conv.0.weight", "encoder.conv.0.bias", "encoder.conv.2.weight", "encoder.conv.2.bias",
        "encoder.fc.1.weight", "encoder.fc.1.bias", "encoder.out.weight", "encoder.out.bias",
        "decoder.fc.0.weight", "decoder.fc.0.bias", "decoder.fc.2.weight", "decoder.fc.2.bias",
        "decoder.deconv.0.weight", "decoder.deconv.0.bias", "decoder.deconv.2.weight", "decoder.deconv.2.bias",
    ]  # fmt: skip


def test_mlp_blocks_add_hidden_layers_and_keep_old_names_at_zero() -> None:
    """MLP depth: blocks 0 is the one-hidden-layer recipe with its old parameter names (old runs load);
    blocks 2 adds two more hidden layers of the same width to each side, and exports with parity."""
    from train.config import ModelConfig
    from train.models import Autoencoder

    names = list(Autoencoder(ModelConfig(arch="mlp", latent_dim=2, hidden=8)).state_dict())
    assert names == [
        "encoder.net.1.weight", "encoder.net.1.bias", "encoder.net.3.weight", "encoder.net.3.bias",
        "decoder.net.0.weight", "decoder.net.0.bias", "decoder.net.2.weight", "decoder.net.2.bias",
    ]  # fmt: skip
    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(arch="mlp", image_shape=(1, 16, 16), latent_dim=3, hidden=12, blocks=2)).eval()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    assert shapes == [(256, 12), (12, 12), (12, 12), (12, 6), (3, 12), (12, 12), (12, 12), (12, 256)]
    graphs = export_graphs(model)
    assert max(check_graphs(model, graphs, batches=(1, 7)).values()) <= PARITY_TOL


def test_code_error_is_relative_above_one_and_absolute_below() -> None:
    from train.export import code_error

    want = np.array([[-20.3, 14.4, 0.5, -0.02]])
    # a few float32 steps at -20.3 (1.34e-5, measured on an exported MLP encoder) pass
    assert code_error(want + np.array([[-1.34e-5, 0.0, 0.0, 0.0]]), want).max() <= PARITY_TOL
    assert code_error(want + np.array([[0.0, 0.0, 2e-5, 0.0]]), want).max() == pytest.approx(2e-5)  # absolute
    assert code_error(want + np.array([[0.0, 1e-3, 0.0, 0.0]]), want).max() == pytest.approx(1e-3 / 14.4)
    assert code_error(want + np.array([[0.0, 0.0, 0.0, 1.1e-5]]), want).max() > PARITY_TOL


def test_logit_error_allows_float32_cancellation_but_not_real_differences() -> None:
    from train.export import logit_error

    want = np.array([-1140.0, -0.68, 3.0, 25.0])
    # a logit near zero that cancels terms of size ~1,000 may be off by 1.8e-5 (measured): accepted
    assert logit_error(want + np.array([0.0, 1.8e-5, 0.0, 0.0]), want).max() <= PARITY_TOL
    # the same error without large logits in the batch is a real difference
    assert logit_error(np.array([-0.68 + 1.8e-5, 3.0]), np.array([-0.68, 3.0])).max() > PARITY_TOL
    # large logits are compared relative to their own size: 25 -> 25.001 is 4e-5 off
    assert logit_error(want + np.array([0.0, 0.0, 0.0, 1e-3]), want).max() == pytest.approx(4e-5)


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
