"""Issue 13, model side: size-derived conv architectures, the Gaussian (sigma-VAE) likelihood with
known answers, resumable fits, and a 64x64 RGB fit-and-export on a tiny image folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import vaegen_infer as vi  # noqa: E402
from train.config import ModelConfig, TrainConfig  # noqa: E402
from train.fit import (  # noqa: E402
    LOG_SIGMA_MIN,
    fit_vae,
    gaussian_nll,
    optimal_log_sigma,
    rec_per_image,
    squared_error,
)
from train.models import Autoencoder, conv_stages, default_widths  # noqa: E402
from vaegen_infer.errors import UsageError  # noqa: E402


@pytest.mark.parametrize(("size", "stages", "final"), [(28, 2, 7), (32, 3, 4), (64, 4, 4), (128, 5, 4), (48, 3, 6)])
def test_conv_architecture_follows_the_image_size(size: int, stages: int, final: int) -> None:
    assert conv_stages(size, size) == stages
    widths = default_widths(stages)
    model = Autoencoder(ModelConfig(image_shape=(3, size, size), channels=widths, hidden=16, latent_dim=5))
    assert model.decoder.start == (widths[-1], final, final)
    with torch.no_grad():
        for n in (1, 3):
            mu, logvar = model.encode(torch.rand(n, 3, size, size))
            assert mu.shape == logvar.shape == (n, 5)
            assert model.decode(mu).shape == (n, 3, size, size)


@pytest.mark.parametrize("size", [(30, 30), (64, 32), (9, 9), (100, 100)])
def test_sizes_the_architecture_cannot_take_are_refused_with_the_sizes_it_can(size: tuple[int, int]) -> None:
    with pytest.raises(UsageError, match=r"cannot take .*28, 32, 40, 48, 56, 64, 80, 96, 112, 128"):
        conv_stages(*size)


def test_widths_must_match_the_stages_of_the_size() -> None:
    with pytest.raises(UsageError, match=r"64x64 images take 4 conv stages .* needs 4 widths, e\.g\. 32,32,64,64"):
        Autoencoder(ModelConfig(image_shape=(3, 64, 64), channels=(32, 64)))


def test_mlp_takes_any_size() -> None:
    model = Autoencoder(ModelConfig(arch="mlp", image_shape=(3, 30, 20), hidden=8, latent_dim=2))
    assert model.decode(torch.zeros(2, 2)).shape == (2, 3, 30, 20)


def test_gaussian_likelihood_of_a_constant_image_is_the_closed_form() -> None:
    # The decoder's mean equals the image exactly: -log N(x; x, sigma^2) = P (log(2 pi) / 2 + log sigma).
    x = torch.full((2, 3, 4, 4), 0.25, dtype=torch.float64)
    logits = torch.logit(x)
    sse = squared_error(logits, x)
    assert float(sse.abs().max()) < 1e-20
    log_sigma = math.log(0.1)
    got = gaussian_nll(sse, 48, log_sigma)
    np.testing.assert_allclose(got.numpy(), 48 * (0.5 * math.log(2 * math.pi) + math.log(0.1)), rtol=1e-12)
    # With an error of 0.1 on every pixel and sigma = 0.1, each pixel adds exactly 1/2 nat.
    off = gaussian_nll(squared_error(logits, x + 0.1), 48, log_sigma)
    np.testing.assert_allclose((off - got).numpy(), 48 * 0.5, rtol=1e-9)


def test_the_sigma_vae_uses_the_optimal_shared_sigma() -> None:
    # sigma* = sqrt(MSE): an error of 0.2 everywhere gives log sigma = log 0.2, and the per-image NLL
    # is P (log(2 pi) / 2 + log 0.2 + 1/2), the minimum over sigma.
    x = torch.full((3, 1, 5, 5), 0.5, dtype=torch.float64)
    logits = torch.logit(x + 0.2)
    sse = squared_error(logits, x)
    np.testing.assert_allclose(float(optimal_log_sigma(sse, 25)), math.log(0.2), atol=1e-9)
    rec = rec_per_image("gaussian", logits, x)
    np.testing.assert_allclose(rec.numpy(), 25 * (0.5 * math.log(2 * math.pi) + math.log(0.2) + 0.5), rtol=1e-5)
    # a perfect reconstruction does not drive sigma to 0: the floor holds it at exp(-6)
    assert float(optimal_log_sigma(torch.zeros(3, dtype=torch.float64), 25)) == LOG_SIGMA_MIN


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    from train import data
    from train.fit import load_checkpoint

    split = data.synthetic(n=160)
    mcfg = ModelConfig(latent_dim=3, channels=(4, 8), hidden=16, dropout=0.1)
    tcfg = TrainConfig(data="synthetic", epochs=3, batch_size=32, seed=3, ema=0.9, lr_schedule="cosine", threads=1,
                       shift=1.0, binarize="dynamic")  # fmt: skip
    whole = fit_vae(mcfg, tcfg, split, tmp_path / "whole", quiet=True)
    # interrupted after 7 steps (mid second epoch: 5 steps per epoch), then resumed from resume.pt
    stopped = fit_vae(mcfg, tcfg, split, tmp_path / "parts", quiet=True, stop_at_step=7)
    assert stopped == {"stopped_at_step": 7}
    assert not (tmp_path / "parts" / "checkpoint.pt").exists()
    resumed = fit_vae(mcfg, tcfg, split, tmp_path / "parts", quiet=True, resume=True)
    a, pa = load_checkpoint(tmp_path / "whole")
    b, pb = load_checkpoint(tmp_path / "parts")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert [r["val_elbo"] for r in pa["history"]] == [r["val_elbo"] for r in pb["history"]]
    assert whole["val_elbo"] == resumed["val_elbo"] and resumed["steps"] == 15


def test_a_run_stopped_by_its_time_budget_resumes_to_the_same_weights(tmp_path: Path) -> None:
    from dataclasses import replace

    from train import data
    from train.fit import load_checkpoint

    split = data.synthetic(n=160)
    mcfg = ModelConfig(latent_dim=3, channels=(4, 8), hidden=16)
    tcfg = TrainConfig(data="synthetic", epochs=2, batch_size=32, seed=5, ema=0.5, threads=1)
    fit_vae(mcfg, tcfg, split, tmp_path / "whole", quiet=True)
    # a budget so small that the run stops after its first step, mid-epoch ...
    stopped = fit_vae(mcfg, replace(tcfg, max_minutes=1e-6), split, tmp_path / "parts", quiet=True)
    assert stopped["stopped_by_budget"] and stopped["steps"] == 1
    # ... and, given more time, continues from that step as if never stopped
    resumed = fit_vae(mcfg, tcfg, split, tmp_path / "parts", quiet=True, resume=True)
    assert resumed["steps"] == 10 and not resumed["stopped_by_budget"]
    a, _ = load_checkpoint(tmp_path / "whole")
    b, _ = load_checkpoint(tmp_path / "parts")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


def test_resume_without_a_resume_file_is_a_usage_error(tmp_path: Path) -> None:
    from train import data

    with pytest.raises(UsageError, match="no resume state"):
        fit_vae(ModelConfig(latent_dim=2, channels=(4, 8), hidden=8), TrainConfig(data="synthetic", epochs=1),
                data.synthetic(n=40), tmp_path, quiet=True, resume=True)  # fmt: skip


def test_a_time_budget_stops_cleanly_with_the_best_weights(tmp_path: Path) -> None:
    from train import data

    split = data.synthetic(n=160)
    tcfg = TrainConfig(data="synthetic", epochs=1000, batch_size=32, max_minutes=1e-6, threads=1)
    summary = fit_vae(ModelConfig(latent_dim=2, channels=(4, 8), hidden=8), tcfg, split, tmp_path, quiet=True)
    assert summary["stopped_by_budget"] is True and summary["steps"] == 1
    assert summary["best_epoch"] == 1 and math.isfinite(summary["val_elbo"])
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "resume.pt").is_file()


def test_rgb_64_gaussian_fit_and_export_on_a_tiny_folder(tmp_path: Path) -> None:
    pytest.importorskip("train.sources")  # the folder: loader (sources branch)
    from PIL import Image

    from train.export import export_run
    from train.fit import load_data

    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(16):  # 80x80 RGB squares of random colour on black, resized to 64 by the loader
        img = np.zeros((80, 80, 3), np.uint8)
        x0, y0 = rng.integers(0, 50, 2)
        img[y0 : y0 + 30, x0 : x0 + 30] = rng.integers(100, 256, 3)
        Image.fromarray(img).save(folder / f"img{i:02d}.png")
    tcfg = TrainConfig(data=f"folder:{folder}", epochs=1, batch_size=8, image_size=(64, 64), val_fraction=0.25,
                       threads=1)  # fmt: skip
    split = load_data(tcfg)
    assert split.image_shape == (3, 64, 64)
    mcfg = ModelConfig(image_shape=split.image_shape, channels=(8, 8, 16, 16), hidden=16, latent_dim=4,
                       likelihood="gaussian")  # fmt: skip
    summary = fit_vae(mcfg, tcfg, split, tmp_path / "run", quiet=True)
    assert summary["log_sigma"] < 0  # sigma below 1 pixel unit (the images' spread is < 0.5)
    path, parity = export_run(tmp_path / "run", tmp_path / "bundle")
    assert max(parity.values()) <= 1e-5
    g = vi.load(path, providers="cpu")
    assert g.image_shape == (3, 64, 64)
    assert g.manifest.image.likelihood == "gaussian" and g.manifest.image.data_kind == "8bit"
    assert g.manifest.image.log_sigma == pytest.approx(summary["log_sigma"], abs=1e-5)
    for n in (1, 5):
        assert g.sample(n, seed=0).shape == (n, 3, 64, 64)
