"""The Model operations' stated contracts, checked exactly: the IWAE score rebuilt by hand for every
likelihood, the documented defaults, the refusals and their whole messages, and every decoding
operation of a label-conditioned decoder (the supervised AAE).

Written for issue 18: the mutation run of `vaegen_infer/model.py` showed these unchecked (a Gaussian
score could drop its likelihood term, `encode` of more than one chunk was never run, and the label
of a supervised AAE could be lost by shift, traverse or manifold with every test green).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vaegen_infer as vi
from vaegen_infer.errors import InputError, UsageError

from .conftest import ROOT

IMAGE_TOL = {"rtol": 0, "atol": 1e-5}
LABELS = "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"


def _refuses(error: type[Exception], message: str, call: Callable[[], Any]) -> None:
    """`call` raises `error` with exactly `message` (a partial match would miss a garbled message)."""
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


@pytest.fixture(scope="module")
def digits(vae: vi.Model) -> np.ndarray:
    """Five decoded digits (5, 1, 28, 28) float32, binarised as the Bernoulli likelihood assumes."""
    return (vae.sample(5, seed=11) > 0.5).astype(np.float32)


def _edited_copy(tmp_path: Path, name: str, edit: Callable[[dict], None]) -> vi.Model:
    """A shipped bundle copied with its model.json edited (the graphs, and so their sha256, unchanged)."""
    dst = tmp_path / name
    shutil.copytree(ROOT / "exported" / name, dst)
    manifest = json.loads((dst / "model.json").read_text())
    edit(manifest)
    (dst / "model.json").write_text(json.dumps(manifest))
    return vi.load(dst, providers="cpu")


# -- score: the IWAE bound rebuilt by hand -------------------------------------------------------
SQRT2 = math.sqrt(2.0)
_erfc = np.frompyfunc(math.erfc, 1, 1)


def _log_bin_probability(x: np.ndarray, mean: np.ndarray, sigma: float) -> np.ndarray:
    """log P(pixel level x) under N(mean, sigma^2) with bins x +- 1/510 (open-ended at 0 and 1), per
    pixel, through math.erfc on whichever side of the mean keeps the difference accurate."""
    half = 1.0 / 510.0
    a = np.where(x <= half, -np.inf, (x - half - mean) / sigma)
    b = np.where(x >= 1.0 - half, np.inf, (x + half - mean) / sigma)

    def tail(t: np.ndarray) -> np.ndarray:  # P(N(0, 1) > t)
        return 0.5 * _erfc(t / SQRT2).astype(np.float64)

    p = np.where(a >= 0, tail(a) - tail(b), np.where(b <= 0, tail(-b) - tail(-a), 1.0 - tail(-a) - tail(b)))
    return np.log(p)


def _hand_score(g: vi.Model, x: np.ndarray, k: int, seed: int, per_run: int, log_px: Callable) -> np.ndarray:
    """log (1/k) sum_j p(x|z_j) p(z_j) / q(z_j|x) per image, the k codes of each run of `per_run`
    images drawn as one (k, m, D) float32 normal block from default_rng(seed), as `score` documents."""
    mu, logvar = g.encode(x)  # (N, D) float32
    rng = np.random.default_rng(seed)
    out = []
    for s in range(0, len(x), per_run):
        m = len(x[s : s + per_run])
        eps = rng.standard_normal((k, m, g.latent_dim), dtype=np.float32)
        z = mu[s : s + m][None] + np.exp(0.5 * logvar[s : s + m])[None] * eps  # (k, m, D) float32
        z64, mu64, lv64 = z.astype(np.float64), mu[s : s + m].astype(np.float64), logvar[s : s + m].astype(np.float64)
        log_pz = (-0.5 * z64**2 - 0.5 * math.log(2 * math.pi)).sum(-1)  # N(0, I), (k, m)
        log_qz = (-0.5 * (z64 - mu64) ** 2 / np.exp(lv64) - 0.5 * lv64 - 0.5 * math.log(2 * math.pi)).sum(-1)
        lp = np.stack([log_px(x[s + i], z[:, i]) for i in range(m)], axis=1)  # (k, m)
        w = lp + log_pz - log_qz
        out.extend(np.log(np.mean(np.exp(w - w.max(0)), 0)) + w.max(0))
    return np.asarray(out)


def _rgb_images(rgb: vi.Model) -> np.ndarray:
    """Three colour images off the 256 levels (so the 8-bit rounding matters), the last pure noise
    (a score hundreds of thousands of nats below the others, so images must not share a maximum)."""
    x = rgb.sample(3, seed=2)
    x[:2] = np.clip(x[:2] + 0.0015, 0, 1)  # a quarter of a level off the grid
    x[2] = np.random.default_rng(0).random(x[2].shape, dtype=np.float32)
    return x


def test_score_of_an_8bit_gaussian_model_is_the_discretised_iwae_bound(rgb: vi.Model) -> None:
    assert rgb.manifest.image.likelihood == "gaussian" and rgb.manifest.image.data_kind == "8bit"
    sigma = math.exp(rgb.manifest.image.log_sigma)
    x = _rgb_images(rgb)

    def log_px(image: np.ndarray, codes: np.ndarray) -> np.ndarray:
        level = np.round(np.clip(image, 0, 1) * 255.0).reshape(-1) / 255.0  # scored on the 256 levels
        mean = rgb.decode(codes).reshape(len(codes), -1).astype(np.float64)
        return _log_bin_probability(level[None].astype(np.float64), mean, sigma).sum(-1)

    # The score is of the 8-bit image: it is rounded to the 256 levels before it is encoded too (a
    # quarter level moves the code enough to change a k = 3 bound by thousands of nats).
    levels = (np.round(np.clip(x, 0, 1) * 255.0) / 255.0).astype(np.float32)
    # One image per decoder run (rows_per_run = k): each run draws its own (k, 1, D) block in turn.
    want = _hand_score(rgb, levels, k=3, seed=4, per_run=1, log_px=log_px)
    got = rgb.score(x, k=3, seed=4, rows_per_run=3)
    # The runtime's erfc is a Chebyshev fit (fractional error < 1.2e-7): ~1e-6 of a score in the tails.
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0.2)
    assert want[2] < want[0] - 1e5 and np.isfinite(got).all()
    # All images in one run draw one (k, 3, D) block: other codes, the same bound to within noise.
    np.testing.assert_allclose(
        rgb.score(x, k=3, seed=4), _hand_score(rgb, levels, k=3, seed=4, per_run=3, log_px=log_px), rtol=1e-5, atol=0.2
    )


def test_score_runs_of_large_images_are_bounded_by_elements(rgb: vi.Model, vae2d: vi.Model) -> None:
    """The default run holds at most 2^24 likelihood terms: 64x64 RGB images decode 1,365 rows per
    run (k = 1,000: one image per run), 28x28 ones the full 8,192. The runs fix the draws, so the
    default equals the explicit figure and differs from another."""
    from vaegen_infer.model import SCORE_RUN_ELEMENTS

    assert SCORE_RUN_ELEMENTS // (3 * 64 * 64) == 1365 and SCORE_RUN_ELEMENTS // 784 > 8192
    x = rgb.sample(2, seed=3)
    default = rgb.score(x, k=1000, seed=0)
    np.testing.assert_array_equal(default, rgb.score(x, k=1000, seed=0, rows_per_run=1365))
    assert np.abs(default - rgb.score(x, k=1000, seed=0, rows_per_run=8192)).max() > 0.01
    d = vae2d.sample(9, seed=3)
    np.testing.assert_array_equal(vae2d.score(d, k=1000, seed=0), vae2d.score(d, k=1000, seed=0, rows_per_run=8192))


def test_score_of_a_continuous_gaussian_model_is_the_density_bound(tmp_path: Path) -> None:
    def continuous(m: dict) -> None:
        m["image"]["data"] = "binary"  # scores as a density, with no 8-bit rounding

    g = _edited_copy(tmp_path, "color-dsprites", continuous)
    log_sigma = g.manifest.image.log_sigma
    x = _rgb_images(g)

    def log_px(image: np.ndarray, codes: np.ndarray) -> np.ndarray:
        d = image.reshape(-1).astype(np.float64)[None] - g.decode(codes).reshape(len(codes), -1)
        return (-0.5 * math.log(2 * math.pi) - log_sigma - 0.5 * d**2 / math.exp(2 * log_sigma)).sum(-1)

    np.testing.assert_allclose(
        g.score(x, k=2, seed=6), _hand_score(g, x, k=2, seed=6, per_run=3, log_px=log_px), rtol=1e-6, atol=0.05
    )


def test_score_defaults_are_100_samples_and_seed_0(vae2d: vi.Model, digits: np.ndarray) -> None:
    np.testing.assert_array_equal(vae2d.score(digits[:2]), vae2d.score(digits[:2], k=100, seed=0))
    assert not np.array_equal(vae2d.score(digits[:2]), vae2d.score(digits[:2], k=100, seed=1))


def test_score_draws_the_codes_of_each_run_of_images_in_turn(vae2d: vi.Model, digits: np.ndarray) -> None:
    def log_px(image: np.ndarray, codes: np.ndarray) -> np.ndarray:
        logits = vae2d.decode_logits(codes).reshape(len(codes), -1).astype(np.float64)
        t = image.reshape(-1).astype(np.float64)[None]
        return (t * logits - np.logaddexp(0, logits)).sum(-1)  # Bernoulli

    x = digits[:3]
    for rows_per_run, per_run in ((3, 1), (6, 2), (8192, 3)):  # images per run = max(1, rows_per_run // k)
        want = _hand_score(vae2d, x, k=3, seed=8, per_run=per_run, log_px=log_px)
        np.testing.assert_allclose(vae2d.score(x, k=3, seed=8, rows_per_run=rows_per_run), want, rtol=1e-6, atol=1e-3)
    # A wide posterior: other draws give other bounds (so the comparison above tells the runs apart).
    assert np.abs(vae2d.score(x, k=3, seed=8, rows_per_run=3) - vae2d.score(x, k=3, seed=8)).max() > 0.01


def test_score_refusals(vae2d: vi.Model, saae: vi.Model, digits: np.ndarray) -> None:
    for k in (True, 0, 2.0, 100_001):
        _refuses(
            UsageError,
            f"k (importance samples) must be an integer in 1-100000, got {k!r}",
            lambda k=k: vae2d.score(digits, k=k),
        )
    _refuses(
        UsageError,
        "model 'mnist-saae' decodes p(x | label, z); score needs p(x | z) and is not supported for it",
        lambda: saae.score(digits),
    )


# -- encode and the image checks -----------------------------------------------------------------
@contextlib.contextmanager
def _batches(g: vi.Model, role: str) -> Iterator[list[int]]:
    """Record the rows of every ONNX Runtime call of one graph while the block runs."""
    runner = g._runner(role)
    seen: list[int] = []
    real_run = runner.run

    def spy(names: list[str], feeds: dict[str, np.ndarray]) -> Any:
        seen.append(len(next(iter(feeds.values()))))
        return real_run(names, feeds)

    runner.run = spy  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del runner.run


def test_encode_in_chunks_equals_encode_at_once(vae: vi.Model, rgb: vi.Model, digits: np.ndarray) -> None:
    for g, x in ((vae, digits), (rgb, _rgb_images(rgb))):
        mu, logvar = g.encode(x)
        with _batches(g, "encoder") as seen:
            mu2, logvar2 = g.encode(x, chunk=2)
        assert seen == [2] * (len(x) // 2) + ([len(x) % 2] if len(x) % 2 else [])  # bounded batches, in order
        assert mu2.shape == (len(x), g.latent_dim) and mu2.dtype == np.float32
        np.testing.assert_allclose(mu2, mu, rtol=0, atol=1e-5)
        np.testing.assert_allclose(logvar2, logvar, rtol=0, atol=1e-5)


def test_sample_decodes_in_chunks(vae: vi.Model) -> None:
    with _batches(vae, "decoder") as seen:
        chunked = vae.sample(5, seed=3, chunk=2)
    assert seen == [2, 2, 1]  # memory bounded by the chunk
    np.testing.assert_allclose(chunked, vae.sample(5, seed=3), **IMAGE_TOL)


def test_check_images_conversions(vae: vi.Model, digits: np.ndarray) -> None:
    as_list = vae.check_images(digits[:2].tolist())  # nested lists are images too
    assert as_list.dtype == np.float32 and as_list.shape == (2, 1, 28, 28)
    np.testing.assert_array_equal(as_list, digits[:2])
    wide = vae.check_images(digits.astype(np.float64))
    assert wide.dtype == np.float32 and wide.flags.c_contiguous
    one = vae.check_images(digits[0])  # one image (C, H, W) becomes a batch of one
    assert one.shape == (1, 1, 28, 28)


def test_check_images_refusals(vae: vi.Model, rgb: vi.Model) -> None:
    _refuses(
        InputError, "images must be real numbers, got dtype <U1", lambda: vae.check_images(np.full((1, 1, 28, 28), "a"))
    )
    _refuses(
        InputError,
        "images must be real numbers, got dtype complex64",
        lambda: vae.check_images(np.zeros((1, 1, 28, 28), np.complex64)),
    )
    _refuses(
        InputError,
        "images must be real numbers, got dtype object",
        lambda: vae.check_images(np.full((1, 1, 28, 28), None)),
    )
    _refuses(
        InputError,
        "images of dtype int32 are ambiguous: pass uint8 (0-255) or floats in [0, 1]",
        lambda: vae.check_images(np.zeros((1, 1, 28, 28), np.int32)),
    )
    for dtype in (np.float32, np.float64):  # the float32 fast path and the general one
        _refuses(
            InputError, "no images given (N = 0)", lambda dtype=dtype: vae.check_images(np.zeros((0, 1, 28, 28), dtype))
        )
    _refuses(
        InputError,
        "images must have shape (N, 3, 64, 64) or (3, 64, 64) for model 'color-dsprites', got "
        "(2, 64, 64, 3) (channels last? transpose to channels first)",
        lambda: rgb.check_images(np.zeros((2, 64, 64, 3), np.float32)),
    )
    _refuses(
        InputError,
        "images must have shape (N, 3, 64, 64) or (3, 64, 64) for model 'color-dsprites', got (2, 1, 64, 64)",
        lambda: rgb.check_images(np.zeros((2, 1, 64, 64), np.float32)),
    )
    for bad in (math.nan, math.inf, -math.inf):
        x = np.zeros((2, 1, 28, 28), np.float32)
        x[1, 0, 3, 4] = bad
        _refuses(InputError, "images contain NaN or infinity", lambda x=x: vae.check_images(x))
    for lo, hi in ((-0.5, 1.0), (0.0, 1.5)):
        x = np.full((1, 1, 28, 28), 0.5, np.float32)
        x[0, 0, 0, :2] = lo, hi
        _refuses(InputError, f"image values must lie in [0, 1], got [{lo:g}, {hi:g}]", lambda x=x: vae.check_images(x))
    near = np.full((1, 1, 28, 28), 0.5, np.float32)
    near[0, 0, 0, :2] = -5e-7, 1 + 5e-7  # float rounding of a [0, 1] image is let through
    assert vae.check_images(near).shape == (1, 1, 28, 28)
    # the one-pass check's edges: -0.0, the smallest positive value and exactly 1 pass; the
    # smallest negative value and the next float above 1 take the exact path, which passes them too
    edges = np.full((1, 1, 28, 28), 0.5, np.float32)
    tiny = np.float32(1e-45)  # the smallest positive float32 (subnormal)
    edges[0, 0, 0, :6] = -0.0, tiny, 1.0, -tiny, np.nextafter(np.float32(1), np.float32(2)), 0.0
    assert vae.check_images(edges) is edges  # accepted as given, no copy
    # one NaN among otherwise valid pixels, at the end of a large batch (one reduction sees it)
    big = np.full((512, 1, 28, 28), 0.25, np.float32)
    big[-1, 0, -1, -1] = math.nan
    _refuses(InputError, "images contain NaN or infinity", lambda: vae.check_images(big))


def test_range_bits_orders_float32_values_as_their_bit_patterns() -> None:
    from vaegen_infer.model import _range_bits

    assert _range_bits((0.0, 1.0)) == 0x3F800000
    assert _range_bits((-1.0, 1.0)) is None and _range_bits((0.0, math.inf)) is None
    bits = _range_bits((0.0, 255.0))
    values = np.array([0.0, 1e-45, 1.0, 254.99998, 255.0], np.float32)
    assert values.view(np.uint32).max() <= bits  # every value in [0, 255]
    for outside in (-1e-45, -0.5, np.nextafter(np.float32(255), np.float32(256)), math.inf, -math.inf, math.nan):
        assert np.array([outside], np.float32).view(np.uint32)[0] > bits, outside


# -- defaults ------------------------------------------------------------------------------------
def test_traverse_interpolate_and_manifold_defaults(vae: vi.Model, vae2d: vi.Model, digits: np.ndarray) -> None:
    codes = vae.traverse_latents(digits[0])  # 8 most used dimensions, 9 steps over +-3 prior stds
    assert codes.shape == (8, 9, 32)
    mu = vae.encode(digits[:1])[0][0]
    mean, std = vae.prior.mean(), vae.prior.std()
    for r, d in enumerate(vae.dims_by_importance()[:8]):
        np.testing.assert_allclose(codes[r, :, d], mean[d] + np.linspace(-3, 3, 9) * std[d], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(codes[0, :, vae.dims_by_importance()[8]], mu[vae.dims_by_importance()[8]], atol=1e-6)
    np.testing.assert_allclose(
        vae.traverse(digits[0]), vae.decode(codes.reshape(72, 32)).reshape(8, 9, 1, 28, 28), **IMAGE_TOL
    )
    assert vae.interpolate(digits[0], digits[1]).shape == (8, 1, 28, 28)
    assert vae.interpolate_latents(digits[0], digits[1]).shape == (8, 32)
    assert vae2d.manifold().shape == (20, 20, 1, 28, 28)


def test_traversal_offsets_are_float32_and_checked() -> None:
    offsets = vi.Model.traversal_offsets(0.5, 3)
    assert offsets.dtype == np.float32
    np.testing.assert_array_equal(offsets, np.array([-0.5, 0.0, 0.5], np.float32))
    for span in (0, -1.0, math.inf, math.nan, "3", True):
        _refuses(
            UsageError,
            f"span must be a positive number of standard deviations, got {span!r}",
            lambda span=span: vi.Model.traversal_offsets(span, 5),
        )
    for steps in (1, True, 2.5):
        _refuses(
            UsageError,
            f"steps must be at least 2, got {steps!r}",
            lambda steps=steps: vi.Model.traversal_offsets(1.0, steps),
        )


def test_interpolation_steps_and_method_checks(vae: vi.Model, digits: np.ndarray) -> None:
    assert vae.interpolate_latents(digits[0], digits[1], steps=2).shape == (2, 32)  # just the two ends
    for steps in (1, True, 2.5):
        _refuses(
            UsageError,
            f"steps must be at least 2 (both ends included), got {steps!r}",
            lambda steps=steps: vae.interpolate_latents(digits[0], digits[1], steps=steps),
        )
    _refuses(
        UsageError,
        "unknown interpolation method 'cubic'; choose lerp or slerp",
        lambda: vae.interpolate_latents(digits[0], digits[1], method="cubic"),
    )


def test_anchors_may_be_batches_of_one(vae: vi.Model, digits: np.ndarray) -> None:
    mu = vae.encode(digits[:2])[0]
    path = vae.interpolate_latents(digits[:1], mu[1:2], steps=3, method="lerp")  # (1, C, H, W) and (1, D)
    np.testing.assert_allclose(path[0], mu[0], atol=1e-6)
    np.testing.assert_allclose(path[-1], mu[1], atol=1e-6)
    _refuses(
        InputError, "an anchor must be an image (1, 28, 28) or a code (32,), got (2, 32)", lambda: vae.as_latents([mu])
    )


def test_manifold_size_checks(vae2d: vi.Model) -> None:
    assert vae2d.manifold(2).shape == (2, 2, 1, 28, 28)
    assert vae2d.manifold(100).shape == (100, 100, 1, 28, 28)
    for n in (1, 101, True, 4.0):
        _refuses(UsageError, f"manifold size must be an integer in 2-100, got {n!r}", lambda n=n: vae2d.manifold(n))


def test_shift_codes_are_float32_and_amounts_are_checked(vae: vi.Model, digits: np.ndarray) -> None:
    assert vae.shift_latents(digits[:2], "thickness", [0.5, 1]).dtype == np.float32
    for amounts in ([], [math.nan], [1.0, math.inf]):
        _refuses(
            UsageError,
            f"amounts must be a non-empty list of finite numbers, got {amounts!r}",
            lambda amounts=amounts: vae.amounts(amounts),
        )


def test_unknown_attribute_on_a_model_without_any(tmp_path: Path, digits: np.ndarray) -> None:
    def no_attributes(m: dict) -> None:
        m["attributes"] = {}

    g = _edited_copy(tmp_path, "mnist-vae-2d", no_attributes)
    _refuses(
        UsageError,
        "unknown attribute 'thickness' for model 'mnist-vae-2d'; valid attributes: none (add one "
        "with `vaegen-infer attributes add`)",
        lambda: g.shift(digits[:1], "thickness", 1),
    )


# -- dimensions ------------------------------------------------------------------------------------
def test_dims_by_importance_prefers_kl_then_mu_variance_then_index_order(
    rgb: vi.Model, vae: vi.Model, tmp_path: Path
) -> None:
    stats = json.loads((ROOT / "exported" / "color-dsprites" / "model.json").read_text())["latent_stats"]
    assert rgb.dims_by_importance() == [int(i) for i in np.argsort(-np.asarray(stats["kl_per_dim"]), kind="stable")]
    stats = json.loads((ROOT / "exported" / "mnist-vae" / "model.json").read_text())["latent_stats"]
    assert "kl_per_dim" not in stats  # an AAE-style bundle: mu's variance decides
    assert vae.dims_by_importance() == [
        int(i) for i in np.argsort(-np.asarray(stats["mu_variance_per_dim"]), kind="stable")
    ]

    def no_stats(m: dict) -> None:
        m.pop("latent_stats", None)

    assert _edited_copy(tmp_path, "mnist-vae-2d", no_stats).dims_by_importance() == [0, 1]

    def tied(m: dict) -> None:
        m["latent_stats"]["kl_per_dim"] = [1.0, 2.0] * 16

    # Ties keep index order (a stable sort), so the same bundle always shows the same dimensions.
    assert _edited_copy(tmp_path, "mnist-vae", tied).dims_by_importance() == [*range(1, 32, 2), *range(0, 32, 2)]


def test_latent_pair_defaults_and_checks(vae: vi.Model, vae2d: vi.Model) -> None:
    assert vae.latent_pair() == tuple(sorted(vae.dims_by_importance()[:2]))
    assert vae.latent_pair([31, 0]) == (31, 0)
    for dims in ([0, 32], [1, 1], [0, 1, 2], [-1, 0]):
        _refuses(
            UsageError, f"give two different dimensions in 0-31, got {dims}", lambda dims=dims: vae.latent_pair(dims)
        )
    one_d = copy.copy(vae2d)
    one_d.__class__ = type("OneDimensional", (vi.Model,), {"latent_dim": 1})
    _refuses(UsageError, "a 2-D view needs a latent of at least 2 dimensions", lambda: one_d.latent_pair())


# -- labels ----------------------------------------------------------------------------------------
def test_label_index_accepts_names_and_indices_and_refuses_the_rest(aae: vi.Model, vae2d: vi.Model) -> None:
    assert aae.label_index("3") == 3 and aae.label_index(7) == 7 and aae.label_index(np.int64(9)) == 9
    for label in ("seven", 10, -1, True, None, 2.5j):
        _refuses(
            UsageError,
            f"unknown label {label!r} for model 'mnist-aae'; valid labels: {LABELS}",
            lambda label=label: aae.label_index(label),
        )
    _refuses(
        UsageError,
        "model 'mnist-vae-2d' is not label-conditioned, so it cannot sample by label; sample without "
        "a label or pick a conditional model (see vaegen_infer.models())",
        lambda: vae2d.label_index(0),
    )


def test_sample_per_label_draws_a_random_seed_and_refuses_unconditional_models(
    aae: vi.Model, vae2d: vi.Model, tmp_path: Path
) -> None:
    rows = aae.sample_per_label(2)  # no seed: a random one, still one row per class
    assert rows.shape == (10, 2, 1, 28, 28)
    assert np.abs(aae.sample_per_label(2) - rows).max() > 0.1  # another call, another seed
    _refuses(
        UsageError,
        "model 'mnist-vae-2d' is not label-conditioned, so it cannot sample by label; sample without "
        "a label or pick a conditional model (see vaegen_infer.models())",
        lambda: vae2d.sample_per_label(2),
    )

    def no_labels(m: dict) -> None:
        m.pop("labels", None)

    unlabelled = _edited_copy(tmp_path, "mnist-vae-2d", no_labels)
    _refuses(
        UsageError,
        "model 'mnist-vae-2d' is not label-conditioned, so it cannot sample by label; sample without "
        "a label or pick a conditional model (see vaegen_infer.models())",
        lambda: unlabelled.sample_per_label(2),
    )


def _needs_label(operation: str) -> str:
    return (
        f"model 'mnist-saae' decodes every code as a label (supervised AAE): {operation} needs a label, "
        f"one of {LABELS} (`label=` in Python and HTTP, --label on the command line)"
    )


def test_every_decoding_operation_of_a_label_decoder_draws_the_given_label(saae: vi.Model, digits: np.ndarray) -> None:
    x = digits[:2]
    d = saae.latent_dim

    def check(operation: str, run: Callable[[Any], np.ndarray], codes: np.ndarray) -> None:
        got = run(3)
        want = saae.decode(codes.reshape(-1, d), 3).reshape(got.shape)
        np.testing.assert_allclose(got, want, **IMAGE_TOL)
        assert np.abs(run(5) - got).max() > 0.1  # another label, other digits
        _refuses(UsageError, _needs_label(operation), lambda: run(None))

    check("sample", lambda y: saae.sample(3, seed=1, label=y), saae.sample_latents(3, seed=1))
    check(
        "sample",
        lambda y: np.concatenate(list(saae.iter_samples(5, seed=1, label=y, chunk=2))),
        saae.sample_latents(5, seed=1),
    )
    check(
        "shift",
        lambda y: saae.shift(x, "thickness", [0.0, 1.0], label=y),
        saae.shift_latents(x, "thickness", [0.0, 1.0]),
    )
    check(
        "interpolate",
        lambda y: saae.interpolate(x[0], x[1], steps=3, label=y),
        saae.interpolate_latents(x[0], x[1], steps=3),
    )
    check(
        "traverse",
        lambda y: saae.traverse(x[0], dims=[0, 2], span=1.0, steps=3, label=y),
        saae.traverse_latents(x[0], [0, 2], span=1.0, steps=3),
    )
    grid = np.tile(saae.prior.mean(), (2, 2, 1))  # the 2x2 manifold over dims 0 and 1 at quantiles 1/4, 3/4
    q = saae.prior.ppf(np.array([0.25, 0.75]))
    grid[:, :, 0] = q[None, :, 0]
    grid[:, :, 1] = q[::-1, None, 1]
    check("manifold", lambda y: saae.manifold(2, dims=[0, 1], label=y), grid)

    logits = saae.decode_logits(saae.sample_latents(2, seed=3), 4)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), saae.sample(2, seed=3, label=4), rtol=0, atol=1e-5)


def test_reconstruct_of_a_label_decoder_needs_and_uses_the_labels(saae: vi.Model, digits: np.ndarray) -> None:
    x = digits[:2]
    mu = saae.encode(x)[0]
    np.testing.assert_allclose(saae.reconstruct(x, labels=[1, 7]), saae.decode(mu, [1, 7]), **IMAGE_TOL)
    _refuses(
        UsageError,
        "model 'mnist-saae' decodes every code as a label (supervised AAE): reconstruct needs the "
        "images' labels (or use restyle to draw them as every label)",
        lambda: saae.reconstruct(x),
    )
