"""The fitted sampler: `python -m train export --sampler gmm:K` fits it, `sample` draws from it,
`from_prior` / `--from-prior` bypass it, and every front door (library, CLI, HTTP) agrees."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import vaegen_infer as vi
from vaegen_infer.cli import app
from vaegen_infer.errors import BundleError
from vaegen_infer.manifest import Manifest

from .conftest import ROOT

runner = CliRunner()
STD = 0.01  # the test sampler's one component: tight, far from N(0, I)


def _with_sampler(bundle: Path) -> np.ndarray:
    """Give the bundle a one-component sampler N(m, STD^2 I), m_d = 3 + 0.1 d; returns m (D,)."""
    path = bundle / "model.json"
    manifest = json.loads(path.read_text())
    dim = manifest["latent_dim"]
    mean = 3.0 + 0.1 * np.arange(dim)
    manifest["sampler"] = {
        "name": "gaussian-mixture",
        "params": {"weights": [1.0], "means": [mean.tolist()], "logvars": [[2 * math.log(STD)] * dim]},
    }
    path.write_text(json.dumps(manifest))
    return mean


def test_sample_draws_from_the_sampler_and_from_prior_from_the_prior(bundle_copy: Path) -> None:
    shipped = vi.load(ROOT / "exported" / "mnist-vae", providers="cpu")
    mean = _with_sampler(bundle_copy)
    g = vi.load(bundle_copy, providers="cpu")
    z = g.sample_latents(2000, seed=3)  # (2000, D)
    np.testing.assert_allclose(z.mean(0), mean, atol=5 * STD / math.sqrt(2000))
    np.testing.assert_allclose(z.std(0), STD, rtol=0.1)
    # from_prior: exactly the draws of the same bundle without a sampler
    np.testing.assert_array_equal(g.sample_latents(70, seed=3, from_prior=True), shipped.sample_latents(70, seed=3))
    images = g.sample(5, seed=4)
    np.testing.assert_allclose(images, g.decode(g.sample_latents(5, seed=4)), atol=1e-6)
    np.testing.assert_allclose(g.sample(5, seed=4, from_prior=True), shipped.sample(5, seed=4), atol=1e-6)
    streamed = np.concatenate(list(g.iter_samples(7, seed=4, chunk=3)))
    np.testing.assert_allclose(streamed, g.sample(7, seed=4), atol=1e-6)
    # the prior stays the model's: scores and traversals do not move
    assert g.prior.name == shipped.prior.name and g.sampler.name == "gaussian-mixture"
    np.testing.assert_array_equal(g.prior.mean(), shipped.prior.mean())
    x = shipped.sample(3, seed=1)
    np.testing.assert_allclose(g.score(x, k=8, seed=0), shipped.score(x, k=8, seed=0), rtol=1e-6)
    np.testing.assert_allclose(
        g.traverse(x[0], dims=[0], steps=3), shipped.traverse(x[0], dims=[0], steps=3), atol=1e-6
    )


def test_manifest_keeps_the_sampler_and_refuses_it_on_a_conditional_model(bundle_copy: Path) -> None:
    _with_sampler(bundle_copy)
    data = json.loads((bundle_copy / "model.json").read_text())
    m = Manifest.from_dict(data)
    assert m.sampler is not None and m.to_dict()["sampler"] == data["sampler"]
    assert "sampler" not in Manifest.from_dict({k: v for k, v in data.items() if k != "sampler"}).to_dict()
    aae = json.loads((ROOT / "exported" / "mnist-aae" / "model.json").read_text())
    aae["sampler"] = data["sampler"] | {"params": {"weights": [1.0], "means": [[0.0, 0.0]], "logvars": [[0.0, 0.0]]}}
    with pytest.raises(BundleError, match=r"'sampler' must be absent when 'conditional' is true"):
        Manifest.from_dict(aae)


def test_a_bad_sampler_fails_at_load(bundle_copy: Path) -> None:
    path = bundle_copy / "model.json"
    data = json.loads(path.read_text())
    data["sampler"] = {"name": "gaussian-mixture", "params": {"weights": [1.0], "means": [[0.0]], "logvars": [[0.0]]}}
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"'means' must be 1 rows of \d+ finite numbers"):
        vi.load(bundle_copy, providers="cpu")


def test_cli_samples_from_the_sampler_and_from_the_prior_on_request(bundle_copy: Path, tmp_path: Path) -> None:
    _with_sampler(bundle_copy)
    g = vi.load(bundle_copy, providers="cpu")
    for flags, want in (([], g.sample(6, seed=2)), (["--from-prior"], g.sample(6, seed=2, from_prior=True))):
        out = tmp_path / f"s{len(flags)}.npy"
        r = runner.invoke(
            app, ["sample", "--model", str(bundle_copy), "--n", "6", "--seed", "2", "-o", str(out), *flags]
        )
        assert r.exit_code == 0, r.output
        assert ("from its prior" if flags else "from its fitted sampler") in r.output
        np.testing.assert_allclose(np.load(out), want, atol=1e-6)
    r = runner.invoke(app, ["info", "--model", str(bundle_copy)])
    assert r.exit_code == 0 and "sampler:     fitted to the training codes: gaussian-mixture, 1 diagonal" in r.output
    r = runner.invoke(app, ["info", "--model", "mnist-aae"])
    assert "sampler:     the prior" in r.output


def test_server_sample_follows_the_library(bundle_copy: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from vaegen_infer.serve import Settings, create_app

    _with_sampler(bundle_copy)
    g = vi.load(bundle_copy, providers="cpu")
    with TestClient(create_app({"mine": g}, Settings(batch_window_ms=0.0))) as c:
        assert c.get("/v1/models/mine").json()["sampler"] == "gaussian-mixture"
        for from_prior in (False, True):
            r = c.post("/v1/models/mine/sample", json={"n": 4, "seed": 9, "format": "npy", "from_prior": from_prior})
            assert r.status_code == 200, r.text
            got = np.load(__import__("io").BytesIO(r.content))
            np.testing.assert_allclose(got, g.sample(4, seed=9, from_prior=from_prior), atol=1e-6)


def test_parse_sampler_accepts_prior_and_gmm_k_only() -> None:
    pytest.importorskip("torch")
    from train.analysis import SAMPLER_MAX_COMPONENTS, parse_sampler

    assert parse_sampler("prior") == 0 and parse_sampler("GMM:10") == 10
    for bad in ("gmm", "gmm:0", "gmm:-3", "gmm:x", "kde:5", f"gmm:{SAMPLER_MAX_COMPONENTS + 1}"):
        with pytest.raises(ValueError, match="--sampler must be 'prior' or 'gmm:K'"):
            parse_sampler(bad)


def test_one_component_sampler_is_the_mean_and_variance_of_the_aggregate_codes(tiny_run: Path) -> None:
    """Known answer: EM with K = 1 is the sample mean and (biased) variance of the codes, and the
    codes are one mu + sigma * eps draw per training image (eps from default_rng(0))."""
    import torch  # noqa: F401  (the run's model)

    from train.analysis import aggregate_codes, analysis_rows, fit_sampler, posterior
    from train.config import TrainConfig
    from train.fit import load_checkpoint, load_data
    from vaegen_infer.priors import GaussianPrior

    model, payload = load_checkpoint(tiny_run)
    split = load_data(TrainConfig.from_dict(payload["train_config"]))
    mu, logvar = posterior(model, split.x_train, rows=analysis_rows(len(split.x_train)))
    want = mu + np.exp(0.5 * logvar.astype(np.float64)) * np.random.default_rng(0).standard_normal(mu.shape)
    np.testing.assert_allclose(aggregate_codes(model, split.x_train), want, rtol=1e-6)
    sampler, record = fit_sampler(model, split, 1, GaussianPrior(mu.shape[1]))
    np.testing.assert_allclose(sampler.means[0], want.mean(0), atol=1e-6)
    np.testing.assert_allclose(np.exp(sampler.logvars[0]), want.var(0) + 1e-6, rtol=1e-4)
    assert record["components"] == 1 and record["images"] == len(split.x_train)
    assert record["val_log_density_sampler"] > record["val_log_density_prior"]
    with pytest.raises(ValueError, match=r"needs at least \d+ training images"):
        fit_sampler(model, split, len(split.x_train), GaussianPrior(mu.shape[1]))


def test_export_with_a_sampler_writes_it_and_says_how_it_fits(tiny_run: Path, tmp_path: Path) -> None:
    from train.cli import app as train_app

    out = tmp_path / "tiny-gmm"
    r = runner.invoke(train_app, ["export", str(tiny_run), "-o", str(out), "--sampler", "gmm:3"])
    assert r.exit_code == 0, r.output
    assert "sampler: 3-component mixture fitted to" in r.output and "under the prior" in r.output
    g = vi.load(out, providers="cpu")
    assert g.sampler.name == "gaussian-mixture" and len(g.sampler.weights) == 3
    assert g.manifest.training["sampler"]["components"] == 3
    assert g.sample(2, seed=0).shape == (2, *g.image_shape)
    r = runner.invoke(train_app, ["export", str(tiny_run), "-o", str(tmp_path / "bad"), "--sampler", "gmm:0"])
    assert r.exit_code == 2 and "must be 'prior' or 'gmm:K'" in r.output
    assert not (tmp_path / "bad").exists()


def test_shipped_color_dsprites_samples_clean_shapes_from_its_sampler_not_its_prior() -> None:
    """The shipped bundle's measured gain (98.7% against 5.3% on 1,000; benchmarks/color_dsprites.py)
    holds on 200 samples: a sampler that failed to load, or was bypassed, would fall to ~5%."""
    from train import dsprites

    g = vi.load("color-dsprites", providers="cpu")
    assert g.sampler is not g.prior and len(g.sampler.weights) == 100
    assert dsprites.one_clean_shape(g.sample(200, seed=0)).mean() >= 0.95
    assert dsprites.one_clean_shape(g.sample(200, seed=0, from_prior=True)).mean() <= 0.15


def test_sampler_check_compares_a_mixture_with_the_prior_on_held_out_codes(tiny_run: Path) -> None:
    """Known answers: the prior's held-out log-density in closed form, and a mixture that beats a far
    too wide prior N(0, 100^2 I); without enough validation images there is no verdict."""
    import dataclasses

    from train.analysis import SAMPLER_CHECK_COMPONENTS, sampler_check
    from train.config import TrainConfig
    from train.fit import load_checkpoint, load_data
    from vaegen_infer.priors import GaussianPrior

    model, payload = load_checkpoint(tiny_run)
    split = load_data(TrainConfig.from_dict(payload["train_config"]))
    dim = model.cfg.latent_dim
    assert sampler_check(model, split, GaussianPrior(dim)) is None  # 16 validation images: too few
    bigger = dataclasses.replace(split, x_train=np.concatenate([split.x_train] * 2), x_val=split.x_train[:60])
    wide = sampler_check(model, bigger, GaussianPrior(dim, scale=100.0))
    unit = sampler_check(model, bigger, GaussianPrior(dim))
    assert wide is not None and unit is not None and wide["components"] == SAMPLER_CHECK_COMPONENTS
    assert wide["validation_codes"] == 60
    # log N(z; 0, s^2 I) = -D/2 log 2 pi - D log s - |z|^2 / (2 s^2): the unit prior gives mean |z|^2 / 2
    half_sq = -0.5 * dim * math.log(2 * math.pi) - unit["val_log_density_prior"]
    want = -0.5 * dim * math.log(2 * math.pi) - dim * math.log(100.0) - half_sq / 100.0**2
    assert wide["val_log_density_prior"] == pytest.approx(want, abs=2e-3)
    assert wide["val_log_density_mixture"] > wide["val_log_density_prior"] + 10


def test_export_notes_a_sampler_only_when_the_mixture_clearly_wins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from train.cli import _say_sampler

    for mixture, prior, said in ((-20.0, -42.9, True), (-42.5, -42.9, False)):
        bundle = tmp_path / f"b{said}"
        bundle.mkdir()
        check = {"components": 10, "val_log_density_mixture": mixture, "val_log_density_prior": prior}
        (bundle / "model.json").write_text(json.dumps({"training": {"sampler_check": check}}))
        _say_sampler(bundle)
        out = capsys.readouterr().out
        assert ("export with --sampler gmm:10" in out) == said, out
