"""Issue 14 wired into the product: --objective, the exporter's factor table, `traverse --factor`,
`vaegen-infer factors` and `python -m train evaluate` on a tiny dSprites bundle."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import vaegen_infer as vi
from vaegen_infer.cli import app
from vaegen_infer.factors import DEFAULT_THRESHOLD, NO_FACTOR
from vaegen_infer.manifest import MANIFEST_FILE

torch = pytest.importorskip("torch")

from train.config import ModelConfig, TrainConfig  # noqa: E402
from train.fit import kl_per_dim, rec_per_image, vae_step_loss  # noqa: E402
from train.models import Autoencoder  # noqa: E402
from vaegen_infer.errors import UsageError  # noqa: E402

runner = CliRunner()
D = 4
FACTORS = ["shape", "scale", "orientation", "x", "y"]


def run(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def dsprites_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A beta-TCVAE on 400 dSprites images at 32x32, one epoch (a few seconds)."""
    from train.fit import fit_vae, load_data

    out = tmp_path_factory.mktemp("dsprites") / "run"
    tcfg = TrainConfig(data="dsprites", n_images=400, image_size=(32, 32), epochs=1, batch_size=64, seed=0,
                       objective="beta-tcvae", beta=6.0, threads=1)  # fmt: skip
    mcfg = ModelConfig(image_shape=(1, 32, 32), latent_dim=D, channels=(4, 8, 8), hidden=32)
    fit_vae(mcfg, tcfg, load_data(tcfg), out, quiet=True)
    return out


@pytest.fixture(scope="module")
def dsprites_bundle(dsprites_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from train.export import export_run

    path, _ = export_run(dsprites_run, tmp_path_factory.mktemp("bundles") / "tiny-dsprites")
    return path


@pytest.fixture()
def labelled_bundle(dsprites_bundle: Path, tmp_path: Path) -> Path:
    """The tiny bundle with a factor table it did not learn (one epoch learns none): z0 x, z1 -,
    z2 scale, z3 y, so that --factor has something to find. model.json is not hashed."""
    out = tmp_path / "labelled"
    shutil.copytree(dsprites_bundle, out)
    m = json.loads((out / MANIFEST_FILE).read_text())
    m["latent_factors"]["per_dim"] = [{"factor": f, "mi": 0.5} for f in ("x", NO_FACTOR, "scale", "y")]
    (out / MANIFEST_FILE).write_text(json.dumps(m))
    return out


def _model_and_batch() -> tuple[Autoencoder, torch.Tensor]:
    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(latent_dim=3, channels=(4, 8), hidden=8))
    return model, torch.bernoulli(torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(3)))


def test_elbo_objective_is_todays_loss_bit_for_bit() -> None:
    model, x = _model_and_batch()
    torch.manual_seed(7)
    loss, _, _, extra = vae_step_loss(model, x, TrainConfig(beta=2.0), 2.0, 100)
    torch.manual_seed(7)  # the same eps: today's formula, rec + beta KL, written out
    mu, logvar = model.encode(x)
    z = model.code(mu, logvar)
    want = rec_per_image("bernoulli", model.decode(z), x).mean() + 2.0 * kl_per_dim(mu, logvar).mean(0).sum()
    assert torch.equal(loss, want) and extra == {}
    torch.manual_seed(7)
    loss_bv, _, _, _ = vae_step_loss(model, x, TrainConfig(beta=2.0, objective="beta-vae"), 2.0, 100)
    assert torch.equal(loss_bv, want)


def test_beta_tcvae_loss_is_finite_and_its_parts_add_up() -> None:
    model, x = _model_and_batch()
    torch.manual_seed(7)
    loss, rec, kl, extra = vae_step_loss(model, x, TrainConfig(objective="beta-tcvae", beta=6.0), 6.0, 1000)
    assert math.isfinite(loss.item()) and set(extra) == {"mi", "tc", "dimwise_kl"}
    want = rec.item() + extra["mi"] + 6.0 * extra["tc"] + extra["dimwise_kl"]
    assert abs(loss.item() - want) < 1e-3 * abs(want)
    assert not math.isclose(loss.item(), rec.item() + 6.0 * kl.item(), rel_tol=1e-3)  # not beta-VAE's loss
    loss.backward()  # differentiable end to end
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_objective_is_validated() -> None:
    with pytest.raises(UsageError, match="objective must be one of elbo, beta-vae, beta-tcvae"):
        TrainConfig(objective="factor-vae")
    with pytest.raises(UsageError, match="iw_samples 1"):
        TrainConfig(objective="beta-tcvae", iw_samples=5)
    assert TrainConfig().objective == "elbo"  # default: today's behaviour


def test_beta_tcvae_run_logs_the_kl_parts(dsprites_run: Path) -> None:
    payload = torch.load(dsprites_run / "checkpoint.pt", weights_only=False)
    row = payload["history"][0]
    assert payload["train_config"]["objective"] == "beta-tcvae"
    assert all(math.isfinite(row[k]) for k in ("mi", "tc", "dimwise_kl"))


def test_exporter_writes_the_factor_table(dsprites_bundle: Path) -> None:
    lf = json.loads((dsprites_bundle / MANIFEST_FILE).read_text())["latent_factors"]
    mi = np.array(lf["mi"])
    assert lf["factors"] == FACTORS and mi.shape == (D, len(FACTORS))
    assert np.all(mi >= 0) and np.all(mi <= 1)
    for row, entry in zip(mi, lf["per_dim"]):
        assert entry["mi"] == pytest.approx(row.max(), abs=1e-4)
        want = FACTORS[int(row.argmax())] if row.max() >= DEFAULT_THRESHOLD else NO_FACTOR
        assert entry["factor"] == want
    assert lf["protocol"]["num_train"] == 3000 and lf["protocol"]["threshold"] == DEFAULT_THRESHOLD


def test_orientation_directions_are_fitted_on_ellipses_only(dsprites_bundle: Path, dsprites_run: Path) -> None:
    from train import dsprites
    from train.analysis import analysis_rows, column_attributes, posterior
    from train.config import TrainConfig
    from train.fit import load_checkpoint, load_data
    from vaegen_infer.latent import regression_direction

    attrs = json.loads((dsprites_bundle / MANIFEST_FILE).read_text())["attributes"]
    assert "orientation" not in attrs
    for name in ("orientation_cos", "orientation_sin"):
        assert attrs[name]["kind"] == "continuous" and "fitted on ellipses" in attrs[name]["description"]
    # the direction is the regression on the ellipses' codes alone, not on every shape's
    model, payload = load_checkpoint(dsprites_run)
    data = load_data(TrainConfig.from_dict(payload["train_config"]))
    got = column_attributes(model, data)["orientation_cos"].vector
    rows = analysis_rows(len(data.x_train))
    mu, _ = posterior(model, data.x_train, rows=rows)
    values = np.asarray(data.attributes_train["orientation_cos"], dtype=np.float64)[rows]
    ellipses = np.asarray(data.attributes_train["ellipse"])[rows] >= 0.5
    assert dsprites.FIT_ON_SHAPE["orientation_cos"] == "ellipse"
    np.testing.assert_allclose(got, regression_direction(mu[ellipses], values[ellipses]), rtol=1e-5, atol=1e-6)
    every_shape = regression_direction(mu, values)  # what the fit would be without FIT_ON_SHAPE
    assert np.linalg.norm(got - every_shape) > 0.05 * np.linalg.norm(got) > 0


def test_traverse_rows_are_labelled_and_factor_picks_the_dimension(labelled_bundle: Path, tmp_path: Path) -> None:
    import vaegen_infer
    from vaegen_infer import grids

    g = vaegen_infer.load(labelled_bundle, providers="cpu")
    grid = grids.traverse_grid(g, dims=[0, 1, 2, 3], steps=3)
    assert grid.row_labels == ["z0 x", "z1 -", "z2 scale", "z3 y"]
    code, _, err = run("traverse", "--model", labelled_bundle, "--factor", "scale", "--steps", 5, "-o",
                         tmp_path / "t.png")  # fmt: skip
    assert code == 0, err
    picture = Image.open(tmp_path / "t.png")
    full = grids.traverse_grid(g, dims=[2], steps=5).image()
    assert picture.size == full.size and np.array_equal(np.asarray(picture), np.asarray(full))


def test_bad_factor_names_are_refused_with_the_valid_ones(labelled_bundle: Path, dsprites_run: Path) -> None:
    code, _, err = run("traverse", "--model", labelled_bundle, "--factor", "colour")
    assert code == 2 and err.count("\n") == 1
    assert "'colour'" in err and "scale, x, y" in err
    code, _, err = run("traverse", "--model", labelled_bundle, "--factor", "x", "--dims", "0")
    assert code == 2


def test_factor_needs_a_factor_table(tiny_bundle: Path) -> None:
    code, _, err = run("traverse", "--model", tiny_bundle, "--factor", "scale")
    assert code == 2 and "no latent_factors" in err
    code, _, err = run("factors", "--model", tiny_bundle)
    assert code == 2 and "latent_factors.mi" in err


def test_factors_heatmap(dsprites_bundle: Path, tmp_path: Path) -> None:
    code, out, err = run("factors", "--model", dsprites_bundle, "-o", tmp_path / "h.png")
    assert code == 0, err
    assert f"{D} dimensions x 5 factors" in out
    img = Image.open(tmp_path / "h.png")
    assert img.mode == "RGB" and img.width > 300 and img.height > 100


def test_evaluate_points_on_the_tiny_bundle(dsprites_bundle: Path, tmp_path: Path) -> None:
    from train.cli import app as train_app

    bundle = tmp_path / "b"
    shutil.copytree(dsprites_bundle, bundle)
    result = runner.invoke(train_app, ["evaluate", str(bundle), "--points", "100", "--write"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((bundle / MANIFEST_FILE).read_text())["metrics"]["disentanglement"]
    assert set(metrics) == {"mig", "factor_vae", "dci"}
    for name in ("mig", "factor_vae", "dci"):
        assert 0.0 <= metrics[name]["score"] <= 1.0
        assert metrics[name]["protocol"]["num_train"] == 100 and metrics[name]["protocol"]["seed"] == 0
    code, out, _ = run("info", "--model", bundle)
    assert code == 0 and "metric:      disentanglement.mig = score=" in out and "(100 training points)" in out
    assert "factors:     z0 " in out


def test_training_on_factor_data_records_the_mig_learning_curve(dsprites_run: Path) -> None:
    history = json.loads((dsprites_run / "run.json").read_text())["history"]
    assert len(history) == 1 and 0.0 <= history[0]["mig_curve"] <= 1.0


def test_mig_probe_scores_a_factor_code_near_one_and_noise_near_zero() -> None:
    from train.disentangle import MigProbe

    probe = MigProbe("dsprites", size=32, points=600)
    factors = probe.factors.astype(np.float64)  # (n, 5): the code that IS the factors
    rng = np.random.default_rng(0)
    lookup = {im.tobytes(): f for im, f in zip(probe.images, factors)}

    def perfect(images: np.ndarray) -> np.ndarray:  # recovers each image's factors from its pixels
        return np.stack([lookup[np.round(im * 255).astype(np.uint8).tobytes()] for im in images])

    # 20 bins for 32 positions and 40 angles, and symmetric shapes drawn alike at several angles, keep
    # even the true factors below 1 (0.78 here)
    assert probe(perfect) > 0.7
    assert probe(lambda images: rng.standard_normal((len(images), 5))) < 0.1


def test_benchmark_plan_runs_the_shipped_model_at_every_seed_and_baselines_at_theirs() -> None:
    from benchmarks.disentangle import plan

    runs = plan(4.0, 6.0, seeds={0, 1}, baseline_seeds={0}, only=set())
    assert runs == [
        ("elbo", "elbo", 1.0, 0),
        ("beta-vae", "beta-vae", 4.0, 0),
        ("beta-tcvae", "beta-tcvae", 6.0, 0),
        ("beta-tcvae", "beta-tcvae", 6.0, 1),
    ]
    assert plan(4.0, 6.0, seeds={1}, baseline_seeds={0}, only={"beta-tcvae"}) == [("beta-tcvae", "beta-tcvae", 6.0, 1)]
    assert plan(4.0, 6.0, seeds={0}, baseline_seeds={0, 2}, only={"elbo"}) == [
        ("elbo", "elbo", 1.0, 0),
        ("elbo", "elbo", 1.0, 2),
    ]


def test_benchmark_refuses_to_resume_a_run_of_other_settings() -> None:
    """A resumed run continues with the options it was started with, so benchmarks/disentangle.py
    must not pass a conv run off as the MLP asked for (or another beta or seed)."""
    from benchmarks.disentangle import settings_differ

    m = ModelConfig(arch="mlp", image_shape=(1, 64, 64), latent_dim=10, hidden=200, blocks=3)
    t = TrainConfig(data="dsprites", objective="beta-tcvae", beta=6.0, seed=0, batch_size=256)
    assert settings_differ(m, t, m, t) == []
    conv = ModelConfig(image_shape=(1, 64, 64), latent_dim=10, channels=(32, 32, 64, 64), hidden=256)
    other = TrainConfig(data="dsprites", objective="beta-tcvae", beta=4.0, seed=0, batch_size=256)
    assert settings_differ(conv, other, m, t) == [
        "arch conv (asked mlp)", "hidden 256 (asked 200)", "blocks 0 (asked 3)",
        "beta 4.0 (asked 6.0)",  # conv widths are not compared when the MLP is asked for
    ]  # fmt: skip


def test_turn_through_decoder_finds_the_direction_that_raises_the_measure() -> None:
    # known answer: decode = identity, the measure = the first coordinate, so the best direction of
    # a given length is +e0; the length (0.01) keeps tanh(change / tau) in its linear range
    from train.analysis import turn_through_decoder

    codes = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    start = np.array([0.0, 0.01, 0.0, 0.0], np.float32)  # orthogonal to the answer
    found = turn_through_decoder(lambda z: z, codes, lambda img: img[:, 0], start, 300)
    assert np.linalg.norm(found) == pytest.approx(0.01, rel=1e-5)
    assert found[0] / 0.01 > 0.95
    np.testing.assert_array_equal(turn_through_decoder(lambda z: z, codes, lambda img: img[:, 0], start, 0), start)


def test_export_turns_the_orientation_directions_when_asked(dsprites_run: Path, dsprites_bundle: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    from train.export import ExportError, export_run

    plain = vi.load(dsprites_bundle, providers="cpu").manifest.attributes
    path, _ = export_run(dsprites_run, tmp_path / "turned", turn_steps=5)
    turned = vi.load(path, providers="cpu").manifest.attributes
    for name in ("orientation_cos", "orientation_sin"):
        a, b = np.asarray(plain[name].vector), np.asarray(turned[name].vector)
        assert np.linalg.norm(b) == pytest.approx(np.linalg.norm(a), rel=1e-4)  # the regression's length
        assert "then turned through the decoder (5 steps" in turned[name].description
        assert turned[name].kind == "continuous"
    np.testing.assert_allclose(turned["x"].vector, plain["x"].vector, atol=1e-6)  # only orientation moves
    with pytest.raises(ExportError, match="--turn-orientation applies to dSprites runs"):
        export_run(_mnist_like_run(tmp_path), tmp_path / "no", turn_steps=5)


def _mnist_like_run(tmp_path: Path) -> Path:
    from train.fit import fit_vae, load_data

    out = tmp_path / "synthetic-run"
    tcfg = TrainConfig(data="synthetic", n_images=80, epochs=1, batch_size=32, threads=1)
    fit_vae(ModelConfig(latent_dim=2, hidden=16), tcfg, load_data(tcfg), out, quiet=True)
    return out
