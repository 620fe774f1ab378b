"""benchmarks/orientation_probe.py: its fits have known answers, and on the shipped color-dsprites
bundle it finds what the README says (angles reconstructed; ellipses' doubled angle linear in the
code, hearts' angle not)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.orientation_probe import held_out_r2, probe, quadratic


def test_held_out_r2_known_answers() -> None:
    rng = np.random.default_rng(0)
    x, xe = rng.standard_normal((200, 3)), rng.standard_normal((100, 3))
    w = np.array([1.0, -2.0, 0.5])
    assert held_out_r2(x, x @ w + 3, xe, xe @ w + 3) == pytest.approx(1.0)
    # a target the inputs say nothing about: about 0 (slightly below, out of sample)
    assert -0.2 < held_out_r2(x, rng.standard_normal(200), xe, rng.standard_normal(100)) < 0.05
    # a product is invisible to the linear fit and exact for the quadratic one
    y, ye = x[:, 0] * x[:, 1], xe[:, 0] * xe[:, 1]
    assert held_out_r2(x, y, xe, ye) < 0.1
    assert held_out_r2(quadratic(x), y, quadratic(xe), ye) == pytest.approx(1.0)
    assert quadratic(x).shape == (200, 3 + 6)


def test_probe_on_the_shipped_rgb_bundle(rgb) -> None:  # type: ignore[no-untyped-def]
    report = probe(rgb, 400)
    shapes = report["shapes"]
    for name in ("square", "ellipse", "heart"):
        r = shapes[name]
        assert r["fit_images"] == 400 and r["held_out_images"] == 100
        # the angle survives reconstruction, far better than a random pairing
        assert r["reconstructed_angle_median_error_deg"] < 6 < r["random_pairing_median_error_deg"]
    assert shapes["ellipse"]["held_out_r2"]["cos_linear"] > 0.5
    assert max(shapes["heart"]["held_out_r2"]["cos_linear"], shapes["heart"]["held_out_r2"]["sin_linear"]) < 0.2
    for name, shares in report["fitted_on"].items():
        assert shares["ellipses"] > shares["every shape"], name


def test_decoder_search_keeps_the_length_and_never_loses_on_its_fit_images(rgb) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.orientation_probe import decoder_search, shape_images
    from train import dsprites
    from train.analysis import TURN_TAU

    x, _ = shape_images(dsprites.SHAPES.index("ellipse"), 40, 0, 0, True)
    mu, _ = rgb.encode(x)
    start = np.asarray(rgb.manifest.attributes["orientation_sin"].vector, dtype=np.float32)
    before = np.sin(2 * dsprites.orientation(rgb.decode(mu), "ellipse"))

    def smooth(v: np.ndarray) -> float:
        after = np.sin(2 * dsprites.orientation(rgb.decode(mu + v[None, :]), "ellipse"))
        return float(np.tanh((after - before) / TURN_TAU).mean())

    found = decoder_search(rgb, mu, np.sin, start, 12)
    assert np.linalg.norm(found) == pytest.approx(np.linalg.norm(start), rel=1e-5)
    assert smooth(found) >= smooth(start)
    # no steps: the start itself
    np.testing.assert_array_equal(decoder_search(rgb, mu, np.sin, start, 0), start)
