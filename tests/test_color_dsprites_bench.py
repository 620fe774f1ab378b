"""benchmarks/color_dsprites.py: the orientation grid's ceiling (known answers) and where the
shifts' misses are counted."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.color_dsprites import fresh_images, grid_maximum, shift_effects
from train import dsprites


def test_the_orientation_grid_reaches_the_cosine_s_ceiling_and_not_the_sine_s() -> None:
    # 40 angles from 0 to 2 pi, ends included: 2 x angle = 0 gives cos 1; the nearest to 90 degrees
    # is 2 x 2 pi x 5 / 39 = 92.3 degrees
    assert grid_maximum("orientation_cos", "ellipse") == pytest.approx(1.0, abs=1e-12)
    assert grid_maximum("orientation_sin", "ellipse") == pytest.approx(math.sin(20 * math.pi / 39), abs=1e-12)
    assert grid_maximum("orientation_sin", "ellipse") == pytest.approx(0.99919, abs=1e-5)


def test_images_at_the_grid_maximum_are_the_ellipses_at_angle_0_or_2_pi(rgb) -> None:  # type: ignore[no-untyped-def]
    x, idx = fresh_images(300, 2026, 7)
    f = dsprites.factors_of(idx)
    effects = shift_effects(rgb, x, f.shape, dsprites.attributes(idx, color=True, seed=7))
    orient = np.unravel_index(idx, dsprites.GRID)[2]
    ellipse = f.shape == dsprites.SHAPES.index("ellipse")
    top = effects["orientation_cos"]["at_the_grid_maximum"]
    assert top["value"] == 1.0 and top["images"] == int((ellipse & np.isin(orient, (0, 39))).sum()) > 0
    assert 0 <= top["missed"] <= top["images"]
    n = effects["orientation_cos"]["images"]
    assert n == int(ellipse.sum())
    # the two parts make up the whole share
    whole = effects["orientation_cos"]["moved_right_way"] * n
    parts = (top["images"] - top["missed"]) + top["moved_right_way_elsewhere"] * (n - top["images"])
    assert whole == pytest.approx(parts, abs=0.01)
    assert "at_the_grid_maximum" not in effects["x"]
