"""Known answers for every operation that computes a code before decoding: the codes are rebuilt
here by hand (from model.json read as plain JSON, numpy and the formulas the docs state) and the
images must equal `decode` of those codes to float32 rounding.

Written for issue 18: multiplying every attribute shift by 0.5 left the rest of the suite green.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import vaegen_infer as vi
from vaegen_infer import grids
from vaegen_infer.datasets import load_idx_dir

from .conftest import MNIST_DIR, ROOT

# Codes are sums and products of float32 numbers: equal up to a few float32 ulps.
CODE_TOL = {"rtol": 1e-6, "atol": 1e-6}
# Images from the same codes through the same graph; batch composition may reorder float32 sums.
IMAGE_TOL = {"rtol": 0, "atol": 1e-5}


def _manifest_json(name: str) -> dict:
    return json.loads((ROOT / "exported" / name / "model.json").read_text())


def _vector(name: str, attribute: str) -> np.ndarray:
    """An attribute's vector as model.json stores it, read without the library."""
    return np.asarray(_manifest_json(name)["attributes"][attribute]["vector"], dtype=np.float32)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """Six MNIST test digits (1, 28, 28) float32; decoded samples when the data set is absent."""
    if MNIST_DIR.is_dir():
        x, _ = load_idx_dir(MNIST_DIR, "test")
        return np.ascontiguousarray(x[:6], dtype=np.float32)
    return vi.load("mnist-vae", providers="cpu").sample(6, seed=123)


# -- shift ---------------------------------------------------------------------------------------
AMOUNTS = [-2.0, -0.5, 0.0, 1.0, 3.0]


def _check_shift(g: vi.Model, x: np.ndarray, attribute: str, v: np.ndarray, amounts: list[float]) -> None:
    mu, _ = g.encode(x)  # (N, D)
    a = np.asarray(amounts, np.float32)
    want = mu[:, None, :] + a[None, :, None] * v[None, None, :]  # (N, A, D): mu(x) + amount * v
    np.testing.assert_allclose(g.shift_latents(x, attribute, amounts), want, **CODE_TOL)
    got = g.shift(x, attribute, amounts)
    assert got.shape == (len(x), len(amounts), *g.image_shape)
    expect = g.decode(want.reshape(-1, g.latent_dim)).reshape(got.shape)
    np.testing.assert_allclose(got, expect, **IMAGE_TOL)
    # The step is really taken: amount 1 is a different image from amount 0 (the shift is not a no-op).
    if 0.0 in amounts and 1.0 in amounts:
        assert np.abs(got[:, amounts.index(1.0)] - got[:, amounts.index(0.0)]).max() > 0.05


@pytest.mark.parametrize("attribute", ["thickness", "digit-3"])
def test_shift_of_a_builtin_attribute_decodes_mu_plus_amount_times_v(vae: vi.Model, digits, attribute) -> None:  # type: ignore[no-untyped-def]
    _check_shift(vae, digits, attribute, _vector("mnist-vae", attribute), AMOUNTS)


def test_shift_by_one_scalar_amount(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    v = _vector("mnist-vae", "thickness")
    got = vae.shift(digits[:2], "thickness", 1.5)
    want = vae.decode(vae.encode(digits[:2])[0] + np.float32(1.5) * v)
    assert got.shape == (2, 1, *vae.image_shape)
    np.testing.assert_allclose(got[:, 0], want, **IMAGE_TOL)


def test_shift_of_a_user_attribute_decodes_mu_plus_amount_times_the_mean_difference(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    with_x, without_x = digits[:3], digits[3:]
    added = vi.add_attribute("mnist-vae", "my-direction", with_x, without_x)  # into the isolated user dir
    assert added.copied_from is not None and added.n_with == 3 and added.n_without == 3
    # v = mean(mu | with) - mean(mu | without), computed here in float64
    mu_with = vae.encode(with_x)[0].astype(np.float64)
    mu_without = vae.encode(without_x)[0].astype(np.float64)
    v = (mu_with.mean(0) - mu_without.mean(0)).astype(np.float32)
    g = vi.load("mnist-vae", providers="cpu")  # the user's copy now shadows the shipped bundle
    assert g.bundle.origin == "user"
    stored_json = json.loads((added.bundle_path / "model.json").read_text())
    stored = np.asarray(stored_json["attributes"]["my-direction"]["vector"])
    np.testing.assert_allclose(stored, v, rtol=0, atol=1e-6)  # model.json keeps 7 decimals
    _check_shift(g, digits, "my-direction", stored.astype(np.float32), AMOUNTS)


def test_shift_of_data_column_attributes_binary_and_continuous(bundle_copy: Path, digits) -> None:  # type: ignore[no-untyped-def]
    """Attributes an exporter makes from data columns ("binary") and measured properties
    ("continuous") shift the same way: the kind only documents what amount 1 means."""
    rng = np.random.default_rng(7)
    d = json.loads((bundle_copy / "model.json").read_text())
    dim = d["latent_dim"]
    vectors = {"smiling": rng.normal(size=dim).round(5), "scale": rng.normal(size=dim).round(5)}
    d["attributes"]["smiling"] = {"vector": vectors["smiling"].tolist(), "description": "", "source": "builtin",
                                  "kind": "binary", "amount": "from without to with"}  # fmt: skip
    d["attributes"]["scale"] = {"vector": vectors["scale"].tolist(), "description": "", "source": "builtin",
                                "kind": "continuous", "amount": "one standard deviation of scale"}  # fmt: skip
    (bundle_copy / "model.json").write_text(json.dumps(d))
    g = vi.load(bundle_copy, providers="cpu")
    assert g.attribute("smiling").kind == "binary" and g.attribute("scale").kind == "continuous"
    for name, v in vectors.items():
        _check_shift(g, digits[:3], name, v.astype(np.float32), AMOUNTS)


# -- traverse ------------------------------------------------------------------------------------
def _mixture_moments(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per dimension of a gaussian-mixture prior, from model.json."""
    p = _manifest_json(name)["prior"]["params"]
    w = np.asarray(p["weights"], np.float64)
    w = w / w.sum()
    m, var = np.asarray(p["means"], np.float64), np.exp(np.asarray(p["logvars"], np.float64))
    mean = w @ m
    return mean, np.sqrt(w @ (var + m**2) - mean**2)  # law of total variance


def test_traversal_offsets_are_evenly_spaced_standard_deviations() -> None:
    np.testing.assert_array_equal(vi.Model.traversal_offsets(2.5, 5), np.float32([-2.5, -1.25, 0.0, 1.25, 2.5]))
    np.testing.assert_array_equal(vi.Model.traversal_offsets(3, 2), np.float32([-3.0, 3.0]))


@pytest.mark.parametrize("with_image", [True, False])
def test_traverse_row_i_step_j_sets_dim_i_to_mean_plus_offset_times_std(vae: vi.Model, digits, with_image) -> None:  # type: ignore[no-untyped-def]
    mean, std = _mixture_moments("mnist-vae")
    np.testing.assert_allclose(vae.prior.mean(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vae.prior.std(), std, rtol=1e-5, atol=1e-6)
    dims, offsets = [5, 0, 17], np.float32([-2.5, -1.25, 0.0, 1.25, 2.5])
    centre = vae.encode(digits[:1])[0][0] if with_image else mean.astype(np.float32)
    want = np.empty((len(dims), len(offsets), vae.latent_dim), np.float32)
    for i, d in enumerate(dims):
        for j, o in enumerate(offsets):
            want[i, j] = centre
            want[i, j, d] = mean[d] + o * std[d]
    image = digits[0] if with_image else None
    codes = vae.traverse_latents(image, dims, span=2.5, steps=5)
    np.testing.assert_allclose(codes, want, rtol=1e-5, atol=1e-5)
    # every other dimension is exactly the centre
    for i, d in enumerate(dims):
        np.testing.assert_allclose(np.delete(codes[i], d, axis=1), np.tile(np.delete(centre, d), (5, 1)), **CODE_TOL)
    got = vae.traverse(image, dims, span=2.5, steps=5)
    assert got.shape == (3, 5, *vae.image_shape)
    np.testing.assert_allclose(got, vae.decode(codes.reshape(15, -1)).reshape(got.shape), **IMAGE_TOL)


def test_traverse_on_a_unit_gaussian_prior_uses_the_offsets_themselves(vae2d: vi.Model) -> None:
    codes = vae2d.traverse_latents(None, [1], span=2.0, steps=3)  # prior N(0, 1): mean 0, std 1
    np.testing.assert_array_equal(codes, np.float32([[[0, -2], [0, 0], [0, 2]]]))


# -- interpolate ---------------------------------------------------------------------------------
def _code(dim: int, **entries: float) -> np.ndarray:
    z = np.zeros(dim, np.float32)
    for k, v in entries.items():
        z[int(k[1:])] = v
    return z


def test_lerp_passes_through_the_known_points(vae: vi.Model) -> None:
    a, b = _code(vae.latent_dim, d0=2.0, d3=-1.0), _code(vae.latent_dim, d0=-2.0, d1=4.0)
    got = vae.interpolate_latents(a, b, steps=5, method="lerp")
    t = np.array([0, 0.25, 0.5, 0.75, 1.0])[:, None]
    np.testing.assert_allclose(got, (1 - t) * a + t * b, **CODE_TOL)
    np.testing.assert_array_equal(got[0], a)
    np.testing.assert_array_equal(got[-1], b)
    np.testing.assert_allclose(got[2, :4], [0.0, 2.0, 0.0, -0.5], **CODE_TOL)


def test_slerp_follows_the_great_circle_with_a_linear_norm(vae: vi.Model) -> None:
    # a = 3 e0, b = 4 e1: a quarter circle; at t the direction is (cos(t pi/2), sin(t pi/2)) and the norm 3 + t
    a, b = _code(vae.latent_dim, d0=3.0), _code(vae.latent_dim, d1=4.0)
    got = vae.interpolate_latents(a, b, steps=5, method="slerp")
    t = np.array([0, 0.25, 0.5, 0.75, 1.0])
    want = np.zeros((5, vae.latent_dim))
    want[:, 0] = (3 + t) * np.cos(t * np.pi / 2)
    want[:, 1] = (3 + t) * np.sin(t * np.pi / 2)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 3 + t, rtol=1e-6)
    np.testing.assert_array_equal(got[0], a)
    np.testing.assert_array_equal(got[-1], b)
    np.testing.assert_allclose(got[2, :2], [3.5 / math.sqrt(2)] * 2, rtol=1e-6)


def test_slerp_at_a_general_angle_matches_the_formula(vae: vi.Model) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=vae.latent_dim).astype(np.float32), rng.normal(size=vae.latent_dim).astype(np.float32)
    t = np.linspace(0, 1, 7)
    na, nb = np.linalg.norm(a.astype(np.float64)), np.linalg.norm(b.astype(np.float64))
    omega = math.acos(float(np.dot(a / na, b / nb)))
    unit = (np.sin((1 - t) * omega)[:, None] * a / na + np.sin(t * omega)[:, None] * b / nb) / math.sin(omega)
    want = unit * ((1 - t) * na + t * nb)[:, None]
    np.testing.assert_allclose(vae.interpolate_latents(a, b, steps=7), want, rtol=1e-5, atol=1e-6)  # slerp: the default


def test_interpolate_through_images_decodes_the_path_between_their_mus(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    mu = vae.encode(digits[:3])[0]
    for method in ("lerp", "slerp"):
        codes = vae.interpolate_latents(digits[0], digits[1], digits[2], steps=4, method=method)
        assert codes.shape == (2 * 3 + 1, vae.latent_dim)  # (K - 1)(steps - 1) + 1: shared anchor once
        np.testing.assert_array_equal(codes[[0, 3, 6]], mu)  # the anchors, exactly, at segment ends
        if method == "lerp":
            np.testing.assert_allclose(codes[1], (2 * mu[0] + mu[1]) / 3, **CODE_TOL)
            np.testing.assert_allclose(codes[5], (mu[1] + 2 * mu[2]) / 3, **CODE_TOL)
        frames = vae.interpolate(digits[0], digits[1], digits[2], steps=4, method=method)
        np.testing.assert_allclose(frames, vae.decode(codes), **IMAGE_TOL)


# -- manifold ------------------------------------------------------------------------------------
# Phi^-1((i + 0.5) / 4) for i = 0..3, to 12 digits
PHI_INV_QUARTERS = [-1.150349380376, -0.318639363964, 0.318639363964, 1.150349380376]


def test_manifold_places_the_gaussian_quantiles_with_the_highest_value_on_top(vae2d: vi.Model) -> None:
    q = np.asarray(PHI_INV_QUARTERS, np.float32)
    np.testing.assert_allclose(vae2d.prior.ppf((np.arange(4) + 0.5) / 4)[:, 0], q, rtol=0, atol=1e-7)
    want = np.empty((4, 4, 2), np.float32)
    for r in range(4):
        for c in range(4):
            want[r, c] = (q[c], q[3 - r])  # column c: the c-th quantile of dim 0; row 0: the highest of dim 1
    got = vae2d.manifold(4)
    np.testing.assert_allclose(got, vae2d.decode(want.reshape(16, 2)).reshape(4, 4, *vae2d.image_shape), **IMAGE_TOL)
    swapped = vae2d.manifold(4, dims=(1, 0))  # dims (1, 0): dimension 1 across, dimension 0 up
    np.testing.assert_allclose(swapped, vae2d.decode(want[..., ::-1].reshape(16, 2)).reshape(got.shape), **IMAGE_TOL)


def _mixture_marginal_cdf(name: str, dim: int, x: float) -> float:
    """The mixture's marginal CDF along `dim` at x, sum_k w_k Phi((x - m_kd) / s_kd), from model.json."""
    p = _manifest_json(name)["prior"]["params"]
    w = np.asarray(p["weights"], np.float64)
    m = np.asarray(p["means"], np.float64)[:, dim]
    s = np.exp(0.5 * np.asarray(p["logvars"], np.float64)[:, dim])
    phi = np.array([0.5 * (1 + math.erf(v)) for v in (x - m) / (s * math.sqrt(2))])
    return float(w @ phi / w.sum())


def test_manifold_of_a_mixture_prior_holds_the_other_dimensions_at_the_mean(vae: vi.Model) -> None:
    n, (dx, dy) = 3, (4, 9)
    values = vae.prior.ppf((np.arange(n) + 0.5) / n)  # (n, D): empirical quantiles of 100,000 draws
    for i in range(n):  # they estimate the true marginal quantiles: F(value) = q within 5 standard errors
        q = (i + 0.5) / n
        for d in (dx, dy):
            se = math.sqrt(q * (1 - q) / 1e5)
            assert abs(_mixture_marginal_cdf("mnist-vae", d, float(values[i, d])) - q) < 5 * se
    mean = vae.prior.mean()
    z = np.tile(mean, (n, n, 1))
    for r in range(n):
        for c in range(n):
            z[r, c, dx], z[r, c, dy] = values[c, dx], values[n - 1 - r, dy]
    got = vae.manifold(n, dims=(dx, dy))
    np.testing.assert_allclose(got, vae.decode(z.reshape(n * n, -1)).reshape(got.shape), **IMAGE_TOL)


# -- sampling, per label, reconstruct, score -----------------------------------------------------
def test_sample_decodes_the_seeded_prior_draws(vae2d: vi.Model) -> None:
    z = vae2d.sample_latents(7, seed=11)
    # N(0, 1) prior: the draws are numpy's standard normals for that seed, float32
    np.testing.assert_array_equal(z, np.random.default_rng(11).standard_normal((7, 2), dtype=np.float32))
    np.testing.assert_allclose(vae2d.sample(7, seed=11), vae2d.decode(z), **IMAGE_TOL)


def test_sample_per_label_row_i_is_sample_with_seed_plus_i_and_label_i(aae: vi.Model) -> None:
    rows = aae.sample_per_label(3, seed=40)
    assert rows.shape == (10, 3, *aae.image_shape)
    for i in range(10):
        np.testing.assert_allclose(rows[i], aae.sample(3, seed=40 + i, label=i), **IMAGE_TOL)
        z = aae.sample_latents(3, seed=40 + i, label=i)
        assert (aae.prior.region_of(z) == i).all()  # the codes lie in class i's region of the prior
    assert np.abs(rows[0] - rows[1]).max() > 0.05


def test_reconstruct_decodes_mu_or_the_reparameterised_draw(vae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    mu, logvar = vae.encode(digits)
    np.testing.assert_allclose(vae.reconstruct(digits), vae.decode(mu), **IMAGE_TOL)
    eps = np.random.default_rng(5).standard_normal(mu.shape, dtype=np.float32)
    z = mu + np.exp(0.5 * logvar) * eps  # sigma = exp(logvar / 2), not exp(logvar)
    np.testing.assert_allclose(vae.reconstruct(digits, sample=True, seed=5), vae.decode(z), **IMAGE_TOL)


def test_score_with_one_sample_is_the_single_sample_elbo_estimate(vae2d: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    x = (digits[:4] > 0.5).astype(np.float32)  # binary pixels, as the Bernoulli likelihood assumes
    mu, logvar = (a.astype(np.float64) for a in vae2d.encode(x))
    eps = np.random.default_rng(9).standard_normal((1, 4, 2), dtype=np.float32)[0].astype(np.float64)
    z = mu + np.exp(0.5 * logvar) * eps  # (4, 2)
    logits = vae2d.decode_logits(z.astype(np.float32)).reshape(4, -1).astype(np.float64)
    t = x.reshape(4, -1)
    log_px = (t * -np.logaddexp(0, -logits) + (1 - t) * -np.logaddexp(0, logits)).sum(1)
    log_pz = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(1)  # N(0, I)
    log_qz = (-0.5 * (z - mu) ** 2 / np.exp(logvar) - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(1)
    want = log_px + log_pz - log_qz
    np.testing.assert_allclose(vae2d.score(x, k=1, seed=9), want, rtol=1e-5, atol=1e-3)
    assert (want < 0).all() and (want > -784 * math.log(2) * 2).all()  # nats per image, plausibly sized


# -- grids lay out exactly those arrays ----------------------------------------------------------
def test_grids_put_each_expected_image_in_its_tile(vae: vi.Model, vae2d: vi.Model, aae: vi.Model, digits) -> None:  # type: ignore[no-untyped-def]
    g = grids.sample_grid(vae, 5, seed=2, cols=3)
    assert g.shape == (2, 3) and g.n == 5
    s = vae.sample(5, seed=2)
    for k in range(5):
        np.testing.assert_array_equal(g.tiles[k // 3, k % 3], s[k])
    assert not g.tiles[1, 2].any()  # the blank end of the last row

    g = grids.per_label_grid(aae, 2, seed=7)
    assert g.shape == (10, 2) and g.row_labels == [str(i) for i in range(10)]
    for r in range(10):
        np.testing.assert_allclose(g.tiles[r], aae.sample(2, seed=7 + r, label=r), **IMAGE_TOL)

    g = grids.shift_grid(vae, digits[:2], "thickness", [-1, 0, 2], names=["a.png", "b.png"])
    assert g.shape == (2, 3) and g.col_labels == ["-1", "0", "+2"] and g.row_labels == ["a.png", "b.png"]
    mu = vae.encode(digits[:2])[0]
    v = _vector("mnist-vae", "thickness")
    for r in range(2):
        for c, a in enumerate([-1, 0, 2]):
            np.testing.assert_allclose(g.tiles[r, c], vae.decode(mu[r] + np.float32(a) * v)[0], **IMAGE_TOL)

    g = grids.traverse_grid(vae, digits[0], dims=[2, 6], span=1.5, steps=3)
    assert g.shape == (2, 3) and g.row_labels == ["z2", "z6"] and g.col_labels == ["-1.5", "0", "+1.5"]
    codes = vae.traverse_latents(digits[0], [2, 6], span=1.5, steps=3)
    for r in range(2):
        for c in range(3):
            np.testing.assert_allclose(g.tiles[r, c], vae.decode(codes[r, c])[0], **IMAGE_TOL)

    g = grids.interpolate_grid(vae, [digits[0], digits[1], digits[2]], steps=4, method="lerp", names=["p", "q", "r"])
    assert g.shape == (2, 4) and g.row_labels == ["p>q", "q>r"]
    frames = vae.interpolate(digits[0], digits[1], digits[2], steps=4, method="lerp")  # 7 frames
    for r in range(2):
        for c in range(4):
            np.testing.assert_array_equal(g.tiles[r, c], frames[3 * r + c])  # row 1 starts where row 0 ends

    g = grids.manifold_grid(vae2d, 4)
    assert g.shape == (4, 4) and g.pad == 0
    np.testing.assert_array_equal(g.tiles, vae2d.manifold(4))

    g = grids.reconstruct_grid(vae, digits[:5], cols=3)
    assert g.shape == (4, 3) and g.row_labels == ["input", "output"] * 2 and g.gap_after_rows == (1, 3)
    rec = vae.reconstruct(digits[:5])
    for k in range(5):
        r, c = divmod(k, 3)
        np.testing.assert_array_equal(g.tiles[2 * r, c], digits[k])
        np.testing.assert_allclose(g.tiles[2 * r + 1, c], rec[k], **IMAGE_TOL)

    z = vae.sample_latents(4, seed=1)
    g = grids.decode_grid(vae, z, cols=2)
    for k in range(4):
        np.testing.assert_allclose(g.tiles[k // 2, k % 2], vae.decode(z[k])[0], **IMAGE_TOL)
