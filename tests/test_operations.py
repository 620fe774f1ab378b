"""Latent-space operations on the shipped models, with real MNIST test digits where available."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vaegen_infer as vi
from vaegen_infer.datasets import load_idx_dir
from vaegen_infer.errors import InputError, UsageError

from .conftest import MNIST_DIR, VAE_DIM


@pytest.fixture(scope="module")
def vae() -> vi.Model:
    return vi.load("mnist-vae", providers="cpu")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The first 300 MNIST test images and labels; synthetic strokes when the data is absent."""
    if MNIST_DIR.is_dir():
        x, y = load_idx_dir(MNIST_DIR, "test")
        return x[:300], y[:300]
    pytest.skip("MNIST test set not found at ../shared/data/mnist")


def test_reconstruct_decodes_mu(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    x = digits[0][:20]
    mu, _ = vae.encode(x)
    np.testing.assert_array_equal(vae.reconstruct(x), vae.decode(mu))
    # Reconstructions resemble their inputs far more than other inputs.
    rec = vae.reconstruct(x)
    own = np.abs(rec - x).mean()
    other = np.abs(rec - np.roll(x, 1, axis=0)).mean()
    assert own < 0.5 * other


def test_sampled_reconstruction_is_seeded_and_differs_from_the_mean(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    x = digits[0][:8]
    a = vae.reconstruct(x, sample=True, seed=1)
    np.testing.assert_array_equal(a, vae.reconstruct(x, sample=True, seed=1))
    assert np.abs(a - vae.reconstruct(x)).max() > 1e-3


def test_shift_by_zero_equals_reconstruct(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    x = digits[0][:10]
    out = vae.shift(x, "thickness", [0.0, 1.0])
    assert out.shape == (10, 2, 1, 28, 28)
    np.testing.assert_allclose(out[:, 0], vae.reconstruct(x), atol=1e-6)


def test_interpolating_an_image_with_itself_is_constant(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    x = digits[0][0]
    for method in ("lerp", "slerp"):
        frames = vae.interpolate(x, x, steps=5, method=method)
        assert frames.shape == (5, 1, 28, 28)
        np.testing.assert_allclose(frames, np.repeat(frames[:1], 5, axis=0), atol=1e-6)


def test_interpolation_endpoints_are_the_reconstructions(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    a, b, c = digits[0][:3]
    frames = vae.interpolate(a, b, c, steps=4)
    assert frames.shape == (7, 1, 28, 28)
    rec = vae.reconstruct(np.stack([a, b, c]))
    np.testing.assert_allclose(frames[[0, 3, 6]], rec, atol=1e-6)


def test_interpolation_accepts_codes(vae: vi.Model) -> None:
    za, zb = np.zeros(VAE_DIM, np.float32), np.ones(VAE_DIM, np.float32)
    frames = vae.interpolate(za, zb, steps=3, method="lerp")
    np.testing.assert_allclose(frames[1], vae.decode(np.full((1, VAE_DIM), 0.5, np.float32))[0], atol=1e-6)
    with pytest.raises(InputError, match="anchor"):
        vae.interpolate(np.zeros(5), zb)


def test_thickness_raises_ink_monotonically_for_most_digits(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    x = digits[0][:100]
    out = vae.shift(x, "thickness", [-2, -1, 0, 1, 2])
    ink = out.reshape(100, 5, -1).mean(-1)  # (images, amounts)
    monotone = (np.diff(ink, axis=1) > 0).all(axis=1)
    assert monotone.mean() >= 0.9, monotone.mean()


def test_digit_direction_moves_towards_that_digit(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    x, y = digits
    means = np.stack([x[y == k].mean(0) for k in range(10)])  # class-mean test images
    closer = []
    for k in range(10):
        others = x[y != k][:20]
        out = vae.shift(others, f"digit-{k}", [0.0, 2.0])  # (20, 2, 1, 28, 28)
        d0 = np.abs(out[:, 0] - means[k]).mean((1, 2, 3))
        d2 = np.abs(out[:, 1] - means[k]).mean((1, 2, 3))
        closer.append((d2 < d0).mean())
    assert min(closer) >= 0.8, closer


def test_unknown_attribute_lists_the_valid_ones(vae: vi.Model) -> None:
    with pytest.raises(UsageError, match=r"unknown attribute 'smile'.*thickness, slant, width, digit-0"):
        vae.shift(np.zeros((1, 1, 28, 28), np.float32), "smile", [1])


def test_traverse_grid_shape_and_centre(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    tiles = vae.traverse(None, dims=[0, 3], span=2.0, steps=5)
    assert tiles.shape == (2, 5, 1, 28, 28)
    mean, std = vae.prior.mean(), vae.prior.std()  # (D,) each; a mixture's mean is not 0
    centre = vae.decode(mean[None])[0]
    np.testing.assert_allclose(tiles[:, 2], np.stack([centre, centre]), atol=1e-6)
    # Around an image: the other dimensions keep the image's mu, the varied one takes mean + (-3, 0, +3) sd.
    x = digits[0][0]
    tiles = vae.traverse(x, dims=[1], span=3.0, steps=3)
    mu = vae.encode(x[None])[0]
    mu[0, 1] = mean[1] + 3.0 * std[1]
    np.testing.assert_allclose(tiles[0, 2], vae.decode(mu)[0], atol=1e-6)


def test_default_traversal_orders_dimensions_by_use(vae: vi.Model) -> None:
    # KL per dimension against N(0, I); with a mixture prior (no per-dimension KL) the variance of mu
    stats = vae.manifest.latent_stats
    score = np.array(stats.get("kl_per_dim") or stats["mu_variance_per_dim"])
    order = vae.dims_by_importance()
    assert sorted(order) == list(range(VAE_DIM))
    assert list(score[order]) == sorted(score, reverse=True)
    assert vae.traverse(steps=3).shape == (8, 3, 1, 28, 28)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"span": -1.0}, "span"), ({"steps": 1}, "steps"), ({"dims": [VAE_DIM]}, f"0-{VAE_DIM - 1}")],
)
def test_traverse_rejects_bad_arguments(vae: vi.Model, kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        vae.traverse(**kwargs)


def test_manifold_of_the_2d_model() -> None:
    g = vi.load("mnist-vae-2d", providers="cpu")
    assert g.latent_dim == 2
    tiles = g.manifold(5)
    assert tiles.shape == (5, 5, 1, 28, 28)
    # The centre tile decodes the prior's median, z = 0.
    np.testing.assert_allclose(tiles[2, 2], g.decode(np.zeros((1, 2), np.float32))[0], atol=1e-6)
    # Opposite corners of the manifold show clearly different digits.
    assert np.abs(tiles[0, 0] - tiles[-1, -1]).mean() > 0.05


def test_user_attribute_points_the_right_way(vae: vi.Model, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from vaegen_infer.attributes import add_attribute

    x = digits[0][:40]
    # "with": the same digits with strokes thickened by a 3x3 max filter; "without": as they are.
    padded = np.pad(x[:, 0], ((0, 0), (1, 1), (1, 1)))
    thick = np.max([padded[:, i : i + 28, j : j + 28] for i in range(3) for j in range(3)], axis=0)
    for name, imgs in (("with", thick), ("without", x[:, 0])):
        (tmp_path / name).mkdir()
        for i, im in enumerate(imgs):
            Image.fromarray((im * 255).round().astype(np.uint8)).save(tmp_path / name / f"{i:03d}.png")
    added = add_attribute("mnist-vae", "bold", [tmp_path / "with"], [tmp_path / "without"])
    assert added.copied_from is not None and added.n_with == 40
    g = vi.load("mnist-vae", providers="cpu")  # now the user's copy
    assert g.bundle.origin == "user" and "bold" in g.manifest.attributes
    v, t = g.attribute("bold").vector, g.attribute("thickness").vector
    assert float(v @ t / np.linalg.norm(v) / np.linalg.norm(t)) > 0.5
    out = g.shift(digits[0][100:140], "bold", [0.0, 1.0])
    assert (out[:, 1].mean((1, 2, 3)) > out[:, 0].mean((1, 2, 3))).mean() >= 0.9
    # The shipped bundle is untouched.
    assert "bold" not in vi.load(Path(__file__).resolve().parents[1] / "exported" / "mnist-vae").manifest.attributes
