"""dSprites rendering from factors and the pixel measurements, against known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from train import dsprites as d


def test_grid_is_the_original_factor_grid() -> None:
    assert d.GRID == (3, 6, 40, 32, 32)
    assert d.N_COMBINATIONS == 737_280
    # position y varies fastest, shape slowest, as in dsprites_ndarray_co1sh3sc6or40x32y32_64x64
    f = d.factors_of(np.array([0, 1, 32, 32 * 32, 40 * 32 * 32, d.N_COMBINATIONS - 1]))
    assert f.y.tolist() == pytest.approx([0, 1 / 31, 0, 0, 0, 1])
    assert f.x.tolist() == pytest.approx([0, 0, 1 / 31, 0, 0, 1])
    assert f.orientation.tolist() == pytest.approx([0, 0, 0, 2 * math.pi / 39, 0, 2 * math.pi])
    assert f.scale.tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5, 0.6, 1.0])
    assert f.shape.tolist() == [0, 0, 0, 0, 0, 2]
    assert d.index_of(2, 5, 39, 31, 31) == d.N_COMBINATIONS - 1
    with pytest.raises(IndexError):
        d.factors_of(np.array([d.N_COMBINATIONS]))


def test_axis_aligned_square_known_pixels() -> None:
    # scale 1, orientation 0, centre position: side 0.3 * 64 = 19.2 px centred on pixel 32.0
    img = d.render(np.array([d.index_of(0, 5, 0, 0, 0)]))[0, 0]
    assert img.dtype == np.uint8 and set(np.unique(img)) == {0, 255}
    cols = np.nonzero(img.any(axis=0))[0]
    rows = np.nonzero(img.any(axis=1))[0]
    lo = d.margin()  # 14.08 px: position 0 puts the centre there
    # pixel centres j + 0.5 within lo +- 9.6
    assert cols.tolist() == [j for j in range(64) if abs(j + 0.5 - lo) <= 9.6]
    assert rows.tolist() == cols.tolist()
    assert int((img > 0).sum()) == len(cols) ** 2


def test_every_image_stays_inside_the_frame_with_one_component() -> None:
    # the extreme positions at the largest scale, every shape and orientation
    idx = np.array([d.index_of(s, 5, o, x, y) for s in range(3) for o in range(40) for x in (0, 31) for y in (0, 31)])
    img = d.render(idx)
    border = np.concatenate([img[:, 0, 0], img[:, 0, -1], img[:, 0, :, 0], img[:, 0, :, -1]], axis=1)
    assert border.max() == 0
    assert (d.components(img) == 1).all()


def test_orientations_0_and_2pi_draw_the_same_image_and_distinct_otherwise() -> None:
    a = d.render(np.array([d.index_of(2, 3, o, 10, 20) for o in range(40)]))
    assert np.array_equal(a[0], a[39])
    flat = a[:39].reshape(39, -1)
    assert len({row.tobytes() for row in flat}) == 39


def test_colour_is_fixed_by_seed_and_index_and_in_range() -> None:
    idx = np.arange(0, d.N_COMBINATIONS, 101)
    c = d.colours(idx, seed=3)
    assert c.min() >= 128 and c.max() <= 255
    assert np.array_equal(c, d.colours(idx, seed=3))
    assert not np.array_equal(c, d.colours(idx, seed=4))
    # uniform in [0.5, 1]: mean 0.75, sd 0.5 / sqrt(12) = 0.144
    u = c.astype(np.float64) / 255
    assert abs(u.mean() - 0.75) < 0.005 and abs(u.std() - 0.1443) < 0.005
    # the same index renders the same colour wherever it sits in a batch
    img = d.render(np.array([idx[5], idx[0], idx[5]]), color=True, seed=3)
    assert np.array_equal(img[0], img[2])
    mask = img[0].max(axis=0) > 0
    assert np.array_equal(img[0][:, mask].T, np.broadcast_to(c[5], (mask.sum(), 3)))


def test_lazy_array_behaves_like_an_array() -> None:
    idx = np.array([5, 70_000, 500_000, 737_279])
    arr = d.DSpritesArray(idx, color=True, seed=1)
    assert arr.shape == (4, 3, 64, 64) and len(arr) == 4 and arr.dtype == np.uint8
    whole = arr[:]
    assert np.array_equal(arr[np.array([2, 0])], whole[[2, 0]])
    assert np.array_equal(arr[1], whole[1])
    assert np.array_equal(arr[1:3], whole[1:3])
    cols = arr.attributes()
    assert cols["heart"].tolist() == [0, 0, 1, 1] and cols["square"].tolist() == [1, 1, 0, 0]
    assert np.allclose(cols["red"], d.colours(idx, 1)[:, 0] / 255)


def test_orientation_columns_are_cos_and_sin_of_the_shapes_fold_times_the_angle() -> None:
    # orientation index 13 is 2 pi / 3 (40 values over [0, 2 pi], both ends included)
    idx = np.array([d.index_of(s, 0, o, 3, 4) for s in range(3) for o in (0, 13)])
    cols = d.attributes(idx)
    assert "orientation" not in cols and d.ATTRIBUTE_KINDS["orientation_cos"] == "continuous"
    third = 2 * math.pi / 3
    want_cos = [1, math.cos(4 * third), 1, math.cos(2 * third), 1, math.cos(third)]  # square, ellipse, heart
    want_sin = [0, math.sin(4 * third), 0, math.sin(2 * third), 0, math.sin(third)]
    assert cols["orientation_cos"].tolist() == pytest.approx(want_cos, abs=1e-6)
    assert cols["orientation_sin"].tolist() == pytest.approx(want_sin, abs=1e-6)
    # a square turned by a quarter turn has the same columns: a property of the image, not the factor
    quarter = d.attributes(np.array([d.index_of(0, 0, 0, 3, 4), d.index_of(0, 0, 39, 3, 4)]))
    assert quarter["orientation_cos"].tolist() == pytest.approx([1, 1], abs=1e-6)
    assert set(d.FIT_ON_SHAPE.values()) <= set(d.SHAPES) and set(d.FIT_ON_SHAPE) <= set(d.ATTRIBUTE_KINDS)


def test_measured_orientation_columns_follow_the_table_on_ellipses() -> None:
    idx = np.array([d.index_of(1, 5, o, 16, 16) for o in range(0, 39, 3)])
    m = d.measure(d.render(idx), "ellipse")
    cols = d.attributes(idx)
    # a 64x64 ellipse at scale 1 is measured to within a few degrees: cos/sin of 2 x angle within 0.1
    assert np.abs(m["orientation_cos"] - cols["orientation_cos"]).max() < 0.1
    assert np.abs(m["orientation_sin"] - cols["orientation_sin"]).max() < 0.1


def test_render_speed_is_thousands_per_second() -> None:
    import time

    idx = d.sample_indices(2000, seed=0)
    t = time.perf_counter()
    d.render(idx, color=True)
    assert 2000 / (time.perf_counter() - t) > 1000  # ~4,000/s measured on the 2-core machine


# -- measurements ---------------------------------------------------------------------------------


def _disc(cx: float, cy: float, r: float, size: int = 64) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    return (((xs - cx) ** 2 + (ys - cy) ** 2) <= r * r)[None, None].astype(np.float32)


def test_centroid_and_area_of_a_rectangle() -> None:
    img = np.zeros((1, 1, 64, 64), np.float32)
    img[0, 0, 10:20, 30:50] = 1.0  # rows 10..19, columns 30..49
    assert d.area(img).tolist() == [200]
    assert d.centroid(img)[0].tolist() == pytest.approx([40.0, 15.0])
    assert np.isnan(d.centroid(np.zeros((1, 1, 8, 8)))).all()


def test_centroid_follows_the_position_factor() -> None:
    idx = np.array([d.index_of(s, 5, 0, x, y) for s in (0, 1) for x in (0, 15, 31) for y in (3, 28)])
    f = d.factors_of(idx)
    lo = d.margin()
    want = np.stack([lo + f.x * (64 - 2 * lo), lo + f.y * (64 - 2 * lo)], axis=1)
    assert np.abs(d.centroid(d.render(idx)) - want).max() < 0.5  # symmetric shapes: the box centre


def test_principal_axis_of_a_tilted_bar() -> None:
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    for deg in (0, 30, 60, 120, 170):
        t = math.radians(deg)
        dx, dy = xs - 32, -(ys - 32)  # y up
        along, across = dx * math.cos(t) + dy * math.sin(t), -dx * math.sin(t) + dy * math.cos(t)
        bar = ((np.abs(along) < 20) & (np.abs(across) < 3))[None, None].astype(np.float32)
        got = math.degrees(d.principal_axis_angle(bar)[0])
        assert abs(d.angle_change(deg, got, 180)) < 1.5, (deg, got)


@pytest.mark.parametrize("shape", d.SHAPES)
def test_orientation_recovered_modulo_the_symmetry(shape: str) -> None:
    s = d.SHAPES.index(shape)
    idx = np.array([d.index_of(s, 5, o, 12, 20) for o in range(40)])
    period = 2 * math.pi / d.FOLD[shape]
    got = d.orientation(d.render(idx), shape)
    err = d.angle_change(np.mod(d.ORIENTATIONS, period), got, period)
    assert np.degrees(np.abs(err)).max() < {"square": 2, "ellipse": 3, "heart": 4}[shape]


def test_mean_colour_components_and_clean_shape() -> None:
    img = np.zeros((3, 3, 64, 64), np.float32)
    img[0, :, 5:15, 5:15] = np.array([0.6, 0.8, 1.0])[:, None, None]
    img[1, :, 5:15, 5:15] = 0.7
    img[1, :, 40:50, 40:50] = 0.7  # two squares
    img[2, :, 30, 30] = 0.9  # a single pixel: too small
    assert d.mean_colour(img)[0].tolist() == pytest.approx([0.6, 0.8, 1.0])
    assert d.components(img).tolist() == [1, 2, 1]
    assert d.components(img, use_scipy=False).tolist() == [1, 2, 1]
    # diagonal neighbours are one component (8-connectivity)
    diag = np.zeros((1, 1, 8, 8), np.float32)
    diag[0, 0, [1, 2, 3], [1, 2, 3]] = 1
    assert d.components(diag).tolist() == [1] == d.components(diag, use_scipy=False).tolist()
    lo, hi = d.area_range()
    assert 60 < lo < 90 and 350 < hi < 420  # scale 0.5 ellipse .. scale 1 square (19.2 px side)
    assert d.one_clean_shape(img).tolist() == [True, False, False]
    real = d.render(d.sample_indices(300, seed=5), color=True, seed=5)
    assert d.one_clean_shape(real).all()
    colours = d.mean_colour(real)
    want = d.attributes(d.sample_indices(300, seed=5), color=True, seed=5)
    assert np.abs(colours[:, 0] - want["red"]).max() < 1e-6


def test_heart_orientation_on_small_hearts_and_heart_constants() -> None:
    # the smallest hearts (scale 0.5, about 11 px across): about one orientation step (9.2 deg) at worst
    idx = np.array([d.index_of(2, 0, o, x, 20) for o in range(40) for x in (0, 31)])
    err = d.angle_change(d.factors_of(idx).orientation, d.orientation(d.render(idx), "heart"))
    assert np.degrees(np.abs(err)).max() < 10 and np.degrees(np.abs(err)).mean() < 3
    # the heart curve's centroid and area, by fine numerical integration
    g = np.linspace(-1.6, 1.6, 2001)
    xx, yy = np.meshgrid(g, g)
    inside = (xx**2 + yy**2 - 1) ** 3 <= xx**2 * yy**3
    assert yy[inside].mean() == pytest.approx(d.HEART_CENTROID_Y, abs=2e-3)
    assert inside.sum() * (g[1] - g[0]) ** 2 == pytest.approx(d.HEART_AREA, abs=5e-3)
    assert (yy[inside].min() + yy[inside].max()) / 2 == pytest.approx(d.HEART_Y_OFFSET, abs=2e-3)


def test_measurements_work_on_soft_decoder_outputs() -> None:
    # a blurred, dimmer copy (like a Gaussian decoder's mean) measures like the sharp image
    idx = np.array([d.index_of(0, 4, 5, 20, 9), d.index_of(1, 4, 5, 20, 9)])
    sharp = d.render(idx, color=True, seed=2).astype(np.float32) / 255
    soft = 0.9 * sharp
    soft[..., 1:-1, 1:-1] = (sharp[..., :-2, 1:-1] + sharp[..., 2:, 1:-1] + 2 * sharp[..., 1:-1, 1:-1]) / 4 * 0.9
    assert np.abs(d.centroid(soft) - d.centroid(sharp)).max() < 0.5
    assert np.abs(d.area(soft) - d.area(sharp)).max() <= 0.1 * d.area(sharp).max()
    assert d.one_clean_shape(soft).all()


def test_measure_and_moved_right_way_follow_the_factors() -> None:
    # each continuous factor one step up moves its property up, for every shape
    for s, shape in enumerate(d.SHAPES):
        base = [d.index_of(s, 2, 12, 10, 10)]
        steps = {"x": d.index_of(s, 2, 12, 13, 10), "y": d.index_of(s, 2, 12, 10, 13),
                 "scale": d.index_of(s, 4, 12, 10, 10), "orientation": d.index_of(s, 2, 13, 10, 10)}  # fmt: skip
        if shape == "ellipse":  # orientation 110.8 -> 120 deg: 2 x angle 221.5 -> 240 deg, its cosine grows
            steps["orientation_cos"] = steps["orientation"]
        before = d.measure(d.render(np.array(base), color=True), shape)
        for factor, idx in steps.items():
            after = d.measure(d.render(np.array([idx]), color=True), shape)
            assert d.moved_right_way(before, after, factor, shape).all(), (shape, factor)
            assert not d.moved_right_way(after, before, factor, shape).any(), (shape, factor)
    m = d.measure(d.render(np.array([d.index_of(0, 5, 0, 0, 0)])))
    assert set(m) == {"x", "y", "area", "components"}
    assert m["x"][0] == pytest.approx(d.margin(), abs=0.5) and m["components"][0] == 1
    # a colour change: channels move, the centroid does not
    img = d.render(np.array([d.index_of(1, 3, 7, 20, 20)]), color=True, seed=0).astype(np.float32) / 255
    redder = img.copy()
    redder[:, 0] = np.where(img[:, 0] > 0, 1.0, 0.0)
    a, b = d.measure(img), d.measure(redder)
    assert d.moved_right_way(a, b, "red").all() and not d.moved_right_way(a, b, "green").any()
    assert abs(b["x"][0] - a["x"][0]) < 1e-9
    with pytest.raises(ValueError, match="need the shape"):
        d.property_change(a, b, "orientation")
