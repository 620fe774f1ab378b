"""Known answers for the disentanglement metrics (train/disentangle.py) on a toy factor set whose
"images" are the factors themselves, so the tests run in seconds."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from train import disentangle as dis


class ToyFactors:
    """K independent uniform factors; the renderer writes them as a (n, 1, 1, K) float image."""

    factor_names = ("a", "b", "c", "d")
    factor_sizes = (3, 5, 8, 10)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(0, s, n) for s in self.factor_sizes], axis=1)

    def render(self, factors: np.ndarray) -> np.ndarray:
        return factors.astype(np.float32)[:, None, None, :]


def identity(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)  # the code is the factors


def scaled_shuffled(x: np.ndarray) -> np.ndarray:
    """Still perfectly disentangled: each dimension one factor, rescaled, reordered, with a constant
    dimension the metrics must ignore."""
    f = x.reshape(len(x), -1)
    return np.concatenate([3.0 * f[:, [2]], -0.5 * f[:, [0]], np.zeros((len(f), 1)), f[:, [3]], 10 + f[:, [1]]], 1)


def random_code(dim: int = 6):
    rng = np.random.default_rng(123)
    return lambda x: rng.normal(size=(len(x), dim))


def entangled(x: np.ndarray) -> np.ndarray:
    """Every dimension a mix of all factors: informative but not disentangled."""
    f = x.reshape(len(x), -1) / np.array(ToyFactors.factor_sizes)
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    return f @ q


def entangled_small(x: np.ndarray) -> np.ndarray:
    """Each dimension a sum of all three factors with similar weights."""
    f = x.reshape(len(x), -1) / np.array(SmallToyFactors.factor_sizes)
    return f @ np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 0.5], [1.0, 0.5, -1.0]])


SMALL = {"num_train": 2000}


@pytest.mark.parametrize("rep", [identity, scaled_shuffled])
def test_mig_of_the_factors_is_one(rep):
    out = dis.compute_mig(ToyFactors(), rep, seed=0, **SMALL)
    assert out["score"] > 0.9
    assert np.all(np.array(out["per_factor"]) > 0.9)
    assert out["protocol"]["num_bins"] == 20 and out["protocol"]["num_train"] == 2000
    assert out["factors"] == ["a", "b", "c", "d"]
    mi = np.array(out["mi_normalised"])  # (D, K)
    assert mi.shape == (5 if rep is scaled_shuffled else 4, 4)
    assert np.all(mi.max(axis=0) > 0.95)


def test_mig_of_a_random_code_is_zero():
    out = dis.compute_mig(ToyFactors(), random_code(), seed=0, **SMALL)
    assert 0 <= out["score"] < 0.05
    assert np.max(out["mi_normalised"]) < 0.1


def test_mig_matches_a_hand_computed_case():
    # Two dimensions, one factor of 2 values: dim 0 copies it, dim 1 is constant, so the gap is
    # H(v) / H(v) = 1 exactly; swapping the roles gives the same.
    v = np.array([0, 1] * 50)[:, None]
    codes = np.stack([v[:, 0].astype(float), np.zeros(100)], 1)
    out = dis.mig_from_codes(codes, v)
    assert out["score"] == pytest.approx(1.0)
    assert out["factor_entropy"][0] == pytest.approx(np.log(2))
    assert dis.mig_from_codes(codes[:, ::-1], v)["score"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two code dimensions"):
        dis.mig_from_codes(codes[:, :1], v)


def test_histogram_discretize_matches_disentanglement_lib():
    x = np.array([[0.0], [0.49], [0.51], [1.0]])
    # 2 bins over [0, 1]: left edges (0, 0.5); labels 1, 1, 2, 2 (the maximum in the last bin)
    assert dis.histogram_discretize(x, 2)[:, 0].tolist() == [1, 1, 2, 2]
    assert dis.histogram_discretize(np.random.default_rng(0).normal(size=(500, 3))).max() == 20


def test_factor_vae_of_the_factors_is_one():
    out = dis.compute_factor_vae(
        ToyFactors(), scaled_shuffled, num_train=300, num_eval=200, num_variance_estimate=1000
    )
    assert out["score"] > 0.95
    assert out["num_active_dims"] == 4  # the constant dimension is pruned
    assert out["protocol"]["batch_size"] == 64 and out["protocol"]["prune_dims_threshold"] == 0.05


def test_factor_vae_of_a_random_code_is_chance():
    out = dis.compute_factor_vae(ToyFactors(), random_code(), num_train=800, num_eval=800, num_variance_estimate=1000)
    assert abs(out["score"] - 1 / 4) < 0.08


def test_factor_vae_with_every_dimension_collapsed_scores_zero():
    out = dis.compute_factor_vae(
        ToyFactors(), lambda x: np.zeros((len(x), 3)), num_train=10, num_eval=10, num_variance_estimate=100
    )
    assert out["score"] == 0.0 and out["num_active_dims"] == 0


class SmallToyFactors(ToyFactors):
    """Fewer classes, as gradient boosting fits 100 trees per class and factor (1 for a binary one)."""

    factor_names = ("a", "b", "c")
    factor_sizes = (2, 3, 4)


def test_dci_known_answers():
    src = SmallToyFactors()
    good = dis.compute_dci(src, identity, num_train=600, num_test=300)
    assert good["disentanglement"] > 0.9 and good["completeness"] > 0.9
    assert good["informativeness_test"] > 0.95
    assert good["protocol"]["num_train"] == 600
    rand = dis.compute_dci(src, random_code(), num_train=600, num_test=300)
    assert rand["disentanglement"] < 0.1 and rand["completeness"] < 0.1
    mixed = dis.compute_dci(src, entangled_small, num_train=600, num_test=300)
    assert mixed["informativeness_test"] > 0.5  # the factors are still there ...
    assert mixed["disentanglement"] < good["disentanglement"] - 0.3  # ... but spread over dimensions


def test_dci_scores_by_hand():
    assert dis.dci_scores(np.eye(3)) == pytest.approx((1.0, 1.0), abs=1e-6)
    assert dis.dci_scores(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-6)
    # One code explains both factors: disentanglement 0 (it is shared), completeness 1.
    d, c = dis.dci_scores(np.array([[1.0, 1.0], [0.0, 0.0]]))
    assert d == pytest.approx(0.0, abs=1e-6) and c == pytest.approx(1.0, abs=1e-6)


def test_same_seed_same_numbers():
    a = dis.compute_mig(ToyFactors(), entangled, seed=3, num_train=500)
    b = dis.compute_mig(ToyFactors(), entangled, seed=3, num_train=500)
    c = dis.compute_mig(ToyFactors(), entangled, seed=4, num_train=500)
    assert a["score"] == b["score"] and a["score"] != c["score"]


@pytest.mark.slow
def test_full_protocol_known_answers():
    """disentanglement_lib's numbers of points (10,000 / 5,000, 64-point FactorVAE batches)."""
    good = dis.evaluate_all(ToyFactors(), scaled_shuffled, seed=0)
    assert good["mig"]["score"] > 0.9 and good["factor_vae"]["score"] > 0.95 and good["dci"]["score"] > 0.9
    assert good["mig"]["protocol"]["num_train"] == 10_000 and good["dci"]["protocol"]["num_test"] == 5_000
    assert good["factor_vae"]["protocol"]["num_eval"] == 5_000
    bad = dis.evaluate_all(ToyFactors(), random_code(), seed=0)
    assert bad["mig"]["score"] < 0.05 and bad["dci"]["score"] < 0.1
    assert abs(bad["factor_vae"]["score"] - 1 / 4) < 0.05


def test_dsprites_source_end_to_end_with_pixel_measurements():
    """The dSprites renderer through the metrics, with a hand-made representation: the shape's
    centroid (x, y), its area (scale, and shape through the shapes' areas) and two noise dimensions."""
    from train import dsprites
    from vaegen_infer.factors import factor_table

    src = dis.DSpritesFactors()
    assert src.factor_names == ["shape", "scale", "orientation", "x", "y"]
    assert src.factor_sizes == (3, 6, 40, 32, 32)
    x = src.render(np.array([[2, 5, 0, 0, 31], [0, 0, 0, 31, 0]]))
    assert x.shape == (2, 1, 64, 64) and x.dtype == np.float32 and x.max() == 1.0
    left, right = dsprites.centroid(x)[:, 0]
    assert left < 20 < 44 < right  # x index 0 is at the left, 31 at the right

    noise = np.random.default_rng(0)

    def pixels(images: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [dsprites.centroid(images), dsprites.area(images)[:, None], noise.normal(size=(len(images), 2))], 1
        )

    out = dis.compute_mig(src, pixels, num_train=2000)
    gaps = dict(zip(out["factors"], out["per_factor"]))
    # 32 positions in 20 bins: at most log 20 / log 32 = 0.86 of a position's entropy survives.
    assert 0.6 < gaps["x"] < 0.87 and 0.6 < gaps["y"] < 0.87
    assert gaps["scale"] > 0.8 and gaps["orientation"] < 0.05
    table = factor_table(out["mi_normalised"], out["factors"], threshold=0.1)
    assert [e["factor"] for e in table] == ["x", "y", "scale", "-", "-"]


def test_colour_is_observed_for_labels_but_not_a_factor_of_the_metrics():
    """Color-dSprites: a code holding each channel's mean colour is labelled red, green, blue in
    the exporter's table; MIG there is still the five factors' and equals compute_mig's."""
    from train import dsprites

    src = dis.DSpritesFactors(color=True, size=32)
    assert dis.DSpritesFactors().observed(np.zeros((2, 5), dtype=np.int64)) == {}
    f = src.sample_factors(500, np.random.default_rng(1))
    seen = src.observed(f)
    assert list(seen) == ["red", "green", "blue"]
    idx = np.ravel_multi_index(tuple(f.T), dsprites.GRID)
    rgb = dsprites.colours(idx, 0)  # (n, 3) uint8 in 128..255
    assert seen["red"].min() >= 0 and seen["red"].max() <= dis.COLOUR_LEVELS - 1
    assert np.array_equal(seen["green"], (rgb[:, 1].astype(int) - 128) * dis.COLOUR_LEVELS // 128)

    def colour_and_position(images: np.ndarray) -> np.ndarray:  # (n, 3, 32, 32) -> (n, 5)
        return np.concatenate([dsprites.mean_colour(images), dsprites.centroid(images)], 1)

    lf = dis.latent_factors(src, colour_and_position, threshold=0.1, num_train=1000)
    assert lf["factors"] == ["shape", "scale", "orientation", "x", "y", "red", "green", "blue"]
    assert [e["factor"] for e in lf["per_dim"]] == ["red", "green", "blue", "x", "y"]
    assert np.array(lf["mi"]).shape == (5, 8)
    mig = dis.compute_mig(src, colour_and_position, num_train=1000)
    assert lf["protocol"]["mig_at_this_protocol"] == pytest.approx(mig["score"])
    assert "not factors of the metrics" in lf["protocol"]["observed"]
