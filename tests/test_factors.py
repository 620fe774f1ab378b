"""vaegen_infer.factors: the per-dimension factor table and the mutual-information heat map."""

from __future__ import annotations

import numpy as np
import pytest

from vaegen_infer.errors import InputError, UsageError
from vaegen_infer.factors import NO_FACTOR, _colour, dim_for_factor, factor_table, mi_heatmap

NAMES = ["shape", "scale", "orientation", "x", "y"]


def known_mi() -> np.ndarray:
    mi = np.full((6, 5), 0.02)
    mi[0, 3] = 0.82  # z0: x
    mi[1, 4] = 0.79  # z1: y
    mi[2, 1] = 0.65  # z2: scale
    mi[3, 2] = 0.31  # z3: orientation
    mi[4, 1] = 0.40  # z4: scale again, less of it
    mi[5, 0] = 0.04  # z5: below the threshold
    return mi


def test_factor_table_picks_the_most_informative_factor():
    table = factor_table(known_mi(), NAMES, threshold=0.05)
    assert [e["factor"] for e in table] == ["x", "y", "scale", "orientation", "scale", NO_FACTOR]
    assert [e["mi"] for e in table] == pytest.approx([0.82, 0.79, 0.65, 0.31, 0.40, 0.04])
    assert all(isinstance(e["mi"], float) for e in table)  # JSON-ready
    # A threshold above everything leaves no dimension labelled; zero labels every one.
    assert {e["factor"] for e in factor_table(known_mi(), NAMES, threshold=0.9)} == {NO_FACTOR}
    assert NO_FACTOR not in {e["factor"] for e in factor_table(known_mi(), NAMES, threshold=0.0)}


def test_factor_table_refuses_bad_input():
    with pytest.raises(InputError, match="5 factor columns but 4"):
        factor_table(known_mi(), NAMES[:4], 0.1)
    with pytest.raises(InputError, match="shape"):
        factor_table(np.zeros(5), NAMES, 0.1)
    with pytest.raises(InputError, match="non-negative"):
        factor_table(-known_mi(), NAMES, 0.1)
    with pytest.raises(UsageError, match="threshold"):
        factor_table(known_mi(), NAMES, float("nan"))


def test_dim_for_factor():
    table = factor_table(known_mi(), NAMES, threshold=0.05)
    assert dim_for_factor(table, "x") == 0
    assert dim_for_factor(table, "scale") == 2  # of z2 (0.65) and z4 (0.40), the stronger
    with pytest.raises(UsageError, match=r"factor 'colour'; factors in this model: orientation, scale, x, y"):
        dim_for_factor(table, "colour")
    with pytest.raises(UsageError, match="none"):
        dim_for_factor(factor_table(known_mi(), NAMES, threshold=0.9), "x")


def _rgb_at(img, x, y):
    return img.convert("RGB").getpixel((int(x), int(y)))


def test_heatmap_cells_follow_the_values():
    mi = known_mi()
    img = mi_heatmap(mi, NAMES, cell=64)
    assert img.mode == "RGB"
    w, h = img.size
    assert 400 < w < 900 and 250 < h < 600
    a = np.asarray(img).astype(int)
    # Find the grid from the pixels of the two strongest cells: the darkest blue is (0, x),
    # and a near-zero cell is the ramp's pale end.
    dark = np.array(_colour(0.82))
    pale = np.array(_colour(0.02))
    dark_px = np.argwhere(np.all(np.abs(a - dark) <= 1, axis=2))
    pale_px = np.argwhere(np.all(np.abs(a - pale) <= 1, axis=2))
    assert len(dark_px) > 500 and len(pale_px) > 500 * 20
    # The x column (4th of 5) lies right of the shape column; z0's row is the top row of cells.
    assert dark_px[:, 1].mean() > pale_px[:, 1].min() + 3 * 64
    assert dark_px[:, 0].mean() < pale_px[:, 0].mean()


def test_heatmap_ramp_is_monotone_in_lightness():
    lum = [sum(_colour(t)) for t in np.linspace(0, 1, 21)]
    assert np.all(np.diff(lum) < 0)
    assert _colour(-1.0) == _colour(0.0) and _colour(2.0) == _colour(1.0)


def test_heatmap_sizes_and_errors():
    one = mi_heatmap(np.array([[0.5]]), ["only"])
    ten = mi_heatmap(np.random.default_rng(0).uniform(0, 1, (10, 5)), NAMES)
    assert ten.size[1] > one.size[1] and ten.size[0] > one.size[0]
    wide = mi_heatmap(np.ones((2, 2)), ["a", "a-very-long-factor-name-indeed"])
    narrow = mi_heatmap(np.ones((2, 2)), ["a", "b"])
    assert wide.size[0] > narrow.size[0]  # columns widen to fit their names
    # Values above 1 (raw nats) scale the colours to the largest value.
    nats = np.asarray(mi_heatmap(np.array([[2.0, 1.0]]), ["a", "b"])).astype(int)
    assert np.any(np.all(np.abs(nats - np.array(_colour(1.0))) <= 1, axis=2))
    with pytest.raises(InputError, match="dimension labels"):
        mi_heatmap(known_mi(), NAMES, dim_labels=["a"])
    with pytest.raises(UsageError, match="vmax"):
        mi_heatmap(known_mi(), NAMES, vmax=0.0)
