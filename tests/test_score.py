"""`Model.score` and the likelihoods behind it: known answers, then the anomaly-detection use."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import vaegen_infer as vi
from vaegen_infer import likelihoods as lk
from vaegen_infer.errors import UsageError
from vaegen_infer.priors import SwissRollPrior

from .conftest import MNIST_DIR


def _phi(t: float) -> float:
    return 0.5 * (1 + math.erf(t / math.sqrt(2)))


@pytest.mark.parametrize(("a", "b"), [(-1.0, 1.0), (0.5, 0.7), (-3.0, -2.9), (4.0, 4.01), (-np.inf, -2.0),
                                      (2.0, np.inf), (-np.inf, np.inf), (0.0, 1e-3), (-12.0, -11.99)])  # fmt: skip
def test_normal_interval_matches_erf(a: float, b: float) -> None:
    want = _phi(b) - _phi(a) if b < 5 else (0.5 * math.erfc(a / math.sqrt(2)) - 0.5 * math.erfc(b / math.sqrt(2)))
    if a < -5:  # far left tail: use the mirrored upper tails, as erf itself rounds there
        want = 0.5 * math.erfc(-b / math.sqrt(2)) - 0.5 * math.erfc(-a / math.sqrt(2))
    got = float(lk.log_normal_interval(np.array([a]), np.array([b]))[0])
    assert got == pytest.approx(math.log(want), rel=2e-6, abs=2e-6)


def test_discretised_gaussian_is_a_distribution_over_256_levels() -> None:
    levels = np.arange(256, dtype=np.float64)[:, None] / 255.0  # (256, 1): one pixel, every level
    for level, log_sigma in ((128, math.log(0.1)), (5, math.log(0.01)), (252, math.log(0.3)), (77, -6.0)):
        mean = level / 255
        p = np.exp(lk.log_gaussian_discretised(levels, np.full_like(levels, mean), log_sigma))
        assert p.sum() == pytest.approx(1.0, abs=1e-6)
        if log_sigma < math.log(0.05):  # a narrow bell peaks at its own level (a wide one piles up at the ends)
            assert int(p.argmax()) == level


def test_discretised_gaussian_known_value() -> None:
    # A constant grey image of level 128 against mean 128/255 and sigma 0.1: each pixel's
    # probability is the mass within +- 1/510 of the mean, 2 Phi(1/51) - 1.
    x = np.full((1, 100), 128 / 255)
    want = 100 * math.log(2 * _phi((1 / 510) / 0.1) - 1)
    assert float(lk.log_gaussian_discretised(x, x, math.log(0.1))[0]) == pytest.approx(want, rel=1e-6)
    assert float(lk.bits_per_dim(np.array([want]), 100)[0]) == pytest.approx(-want / (100 * math.log(2)))


@pytest.fixture(scope="module")
def vae() -> vi.Model:
    return vi.load("mnist-vae", providers="cpu")


def _letters(n: int) -> np.ndarray:
    out = np.zeros((n, 1, 28, 28), np.float32)
    for i, ch in enumerate("AKRWXEFMNQ"[:n]):
        img = Image.new("L", (28, 28))
        ImageDraw.Draw(img).text((6, 2), ch, fill=255, font_size=22)
        out[i, 0] = np.asarray(img, np.float32) / 255
    return out


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="needs the MNIST test set in ../shared/data/mnist")
def test_real_digits_score_higher_than_noise_and_letters(vae: vi.Model) -> None:
    from vaegen_infer.datasets import binarize, load_idx_dir

    x, _ = load_idx_dir(MNIST_DIR, "test")
    digits = binarize(x[:10], seed=0)
    noise = (np.random.default_rng(0).random((10, 1, 28, 28)) < 0.15).astype(np.float32)
    real, rand, letters = (vae.score(a, k=50, seed=0) for a in (digits, noise, _letters(10)))
    assert real.shape == (10,) and np.all(real < 0)
    assert -130 < real.mean() < -60  # the shipped model's test NLL is 90 nats
    assert real.min() > rand.max() and real.mean() > letters.mean() + 50
    assert vae.score_units == "nats"


def test_score_is_reproducible_and_tightens_with_k(vae: vi.Model) -> None:
    x = vae.sample(6, seed=0)
    a, b = vae.score(x, k=20, seed=1), vae.score(x, k=20, seed=1)
    np.testing.assert_array_equal(a, b)
    many = vae.score(x, k=400, seed=2, rows_per_run=1000)  # several runs per image set
    one = np.mean([vae.score(x, k=1, seed=s) for s in range(20)], axis=0)
    assert np.all(many >= one - 1.0)  # the bound tightens with k (up to noise)


def test_score_refuses_priors_without_density_and_bad_k(vae: vi.Model) -> None:
    with pytest.raises(UsageError, match="k \\(importance samples\\)"):
        vae.score(vae.sample(1, seed=0), k=0)
    roll = vi.load("mnist-aae-swissroll", providers="cpu")
    x = roll.sample(2, seed=0)
    with pytest.warns(RuntimeWarning, match="deterministic encoder"):  # the swiss roll has a density now
        assert np.isfinite(roll.score(x, k=5)).all()
    roll.prior = SwissRollPrior(2, noise=0.0)  # a curve in the plane: no density
    with pytest.raises(UsageError, match="no density"):
        roll.score(x, k=5)


def test_score_command_writes_one_row_per_file(tmp_path: Path, vae: vi.Model) -> None:
    from typer.testing import CliRunner

    from vaegen_infer.cli import app

    examples = Path(__file__).resolve().parents[1] / "docs" / "examples"
    result = CliRunner().invoke(app, ["score", str(examples), "-k", "20", "-o", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.stderr
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0] == "file,log_likelihood_nats,bits_per_dim" and len(rows) == 11
    x = vae.load_images([examples])[0]
    want = vae.score(x, k=20, seed=0)
    got = np.array([float(r.split(",")[1]) for r in rows[1:]])
    np.testing.assert_allclose(got, want, atol=1e-3)
    bad = CliRunner().invoke(app, ["score", str(examples), "-o", str(tmp_path / "s.txt")])
    assert bad.exit_code == 2 and "must end in .csv" in bad.stderr


def test_deterministic_encoder_scores_with_a_note_and_the_point_mass_offset() -> None:
    # A point-mass posterior (the AAE's encoder) draws mu every time, so each importance weight is
    # log p(x | mu) + log p(mu) - log q, with log q = -0.5 * sum(log 2 pi - 20 + eps^2): on average
    # 8.58 nats per dimension, 68.6 for the 8-D mnist-aae-gen.
    from vaegen_infer.likelihoods import log_bernoulli

    g = vi.load("mnist-aae-gen", providers="cpu")
    x = (g.sample(3, seed=0) > 0.5).astype(np.float32)
    mu, _ = g.encode(x)
    logits = g.decode_logits(mu).reshape(3, -1).astype(np.float64)
    by_hand = log_bernoulli(x.reshape(3, -1), logits) + g.prior.log_density(mu)
    with pytest.warns(RuntimeWarning, match=r"deterministic encoder .* - 68\.6 nats"):
        got = np.mean([g.score(x, k=1, seed=s) for s in range(40)], axis=0)
    np.testing.assert_allclose(got - by_hand, -68.6, atol=1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a VAE's encoder is not a point mass: no note
        vi.load("mnist-vae-2d", providers="cpu").score(x, k=2)


def test_score_command_prints_the_deterministic_encoder_note(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vaegen_infer.cli import app

    examples = Path(__file__).resolve().parents[1] / "docs" / "examples"
    args = ["score", str(examples), "--model", "mnist-aae-gen", "-k", "2", "-o", str(tmp_path / "s.csv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("note: model 'mnist-aae-gen' has a deterministic encoder") == 1
