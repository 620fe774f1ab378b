"""Latent maths: known answers and properties (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vaegen_infer import latent
from vaegen_infer.errors import InputError, UsageError

finite = st.floats(-10, 10, allow_nan=False, width=32)
vec = arrays(np.float32, st.just(8), elements=finite)


@settings(max_examples=200, deadline=None)
@given(a=vec, b=vec, steps=st.integers(2, 12), method=st.sampled_from(latent.METHODS))
def test_paths_start_and_end_exactly_at_their_anchors(a: np.ndarray, b: np.ndarray, steps: int, method: str) -> None:
    p = latent.path(np.stack([a, b]), steps, method)
    assert p.shape == (steps, 8)
    np.testing.assert_array_equal(p[0], a)
    np.testing.assert_array_equal(p[-1], b)
    assert np.isfinite(p).all()


@settings(max_examples=200, deadline=None)
@given(a=vec, b=vec, scale=st.floats(0.1, 5))
def test_slerp_keeps_the_norm_between_equal_norm_endpoints(a: np.ndarray, b: np.ndarray, scale: float) -> None:
    if np.linalg.norm(a) < 1e-3 or np.linalg.norm(b) < 1e-3:
        return
    a = a / np.linalg.norm(a) * scale
    b = b / np.linalg.norm(b) * scale
    norms = np.linalg.norm(latent.slerp(a, b, np.linspace(0, 1, 9)), axis=1)
    np.testing.assert_allclose(norms, scale, rtol=1e-4)


def test_slerp_and_lerp_differ_in_the_middle_for_orthogonal_codes() -> None:
    a, b = np.array([3.0, 0.0], np.float32), np.array([0.0, 3.0], np.float32)
    mid_slerp = latent.slerp(a, b, np.array([0.5]))[0]
    mid_lerp = latent.lerp(a, b, np.array([0.5]))[0]
    np.testing.assert_allclose(mid_slerp, [3 / np.sqrt(2), 3 / np.sqrt(2)], rtol=1e-6)
    np.testing.assert_allclose(mid_lerp, [1.5, 1.5])


def test_slerp_falls_back_to_lerp_for_parallel_or_zero_codes() -> None:
    a = np.array([1.0, 2.0], np.float32)
    np.testing.assert_allclose(latent.slerp(a, 2 * a, np.array([0.5]))[0], 1.5 * a, rtol=1e-6)
    np.testing.assert_allclose(latent.slerp(0 * a, a, np.array([0.5]))[0], 0.5 * a)


@given(k=st.integers(2, 5), steps=st.integers(2, 7))
def test_multi_anchor_path_passes_through_every_anchor(k: int, steps: int) -> None:
    anchors = np.random.default_rng(k * 10 + steps).standard_normal((k, 4)).astype(np.float32)
    p = latent.path(anchors, steps, "slerp")
    assert len(p) == (k - 1) * (steps - 1) + 1
    for i in range(k):
        np.testing.assert_array_equal(p[i * (steps - 1)], anchors[i])


def test_interpolating_a_code_with_itself_is_constant() -> None:
    a = np.array([0.3, -1.2, 2.0], np.float32)
    for method in latent.METHODS:
        np.testing.assert_allclose(latent.path(np.stack([a, a]), 6, method), np.tile(a, (6, 1)), rtol=1e-6)


@pytest.mark.parametrize(("steps", "method"), [(1, "slerp"), (0, "lerp"), (5, "cubic"), (2.5, "lerp")])
def test_bad_paths(steps: object, method: str) -> None:
    with pytest.raises(UsageError):
        latent.path(np.zeros((2, 3), np.float32), steps, method)  # type: ignore[arg-type]


def test_traversal_sets_one_dimension_per_row() -> None:
    base = np.arange(4, dtype=np.float32)
    mean = np.array([0.5, 0, 0, 0], np.float32)
    codes = latent.traversal(base, [2, 0], np.array([-1.0, 0.0, 1.0]), mean, np.array([1, 1, 2, 1], np.float32))
    assert codes.shape == (2, 3, 4)
    np.testing.assert_array_equal(codes[0, :, 2], [-2, 0, 2])  # scaled by the prior std of dim 2
    np.testing.assert_array_equal(codes[1, :, 0], [-0.5, 0.5, 1.5])  # about the prior mean of dim 0
    np.testing.assert_array_equal(codes[0, :, [0, 1, 3]], np.tile(base[[0, 1, 3]][:, None], (1, 3)))


@pytest.mark.parametrize(
    ("text", "expected"), [("0-3", [0, 1, 2, 3]), ("5", [5]), ("0,2,5", [0, 2, 5]), ("1-2,7", [1, 2, 7]), ("3,3", [3])]
)
def test_parse_dims(text: str, expected: list[int]) -> None:
    assert latent.parse_dims(text, 16) == expected


@pytest.mark.parametrize(
    ("text", "message"), [("5-2", "start is after"), ("0-16", "out of range"), ("a", "bad"), ("", "no dim")]
)
def test_parse_dims_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        latent.parse_dims(text, 16)


def test_parse_amounts() -> None:
    assert latent.parse_amounts("-2,-1,0,1.5") == [-2, -1, 0, 1.5]
    for bad in ("", "a,b", "1,nan", "inf"):
        with pytest.raises(UsageError):
            latent.parse_amounts(bad)


def test_direction_is_the_difference_of_group_means() -> None:
    a = np.array([[1.0, 0.0], [3.0, 0.0]], np.float32)
    b = np.array([[0.0, 1.0]], np.float32)
    np.testing.assert_allclose(latent.direction(a, b), [2.0, -1.0])
    with pytest.raises(InputError):
        latent.direction(a, a)


def test_regression_direction_recovers_a_planted_slope() -> None:
    rng = np.random.default_rng(0)
    prop = rng.normal(5, 2, 4000)
    codes = rng.normal(0, 0.1, (4000, 3)) + ((prop - 5) / 2)[:, None] * np.array([0.5, 0.0, -1.0])
    np.testing.assert_allclose(latent.regression_direction(codes, prop), [0.5, 0.0, -1.0], atol=0.02)


# -- contracts that mutation testing found unchecked (benchmarks/mutation.py) -----------------------
def _message(exc_type: type[Exception], fn, *args) -> str:  # type: ignore[no-untyped-def]
    """The one line a user sees for a refused input."""
    with pytest.raises(exc_type) as info:
        fn(*args)
    return str(info.value)


def test_path_default_method_is_slerp() -> None:
    anchors = np.array([[3.0, 0.0], [0.0, 4.0]], np.float32)
    np.testing.assert_array_equal(latent.path(anchors, 5), latent.path(anchors, 5, "slerp"))
    assert np.abs(latent.path(anchors, 5) - latent.path(anchors, 5, "lerp")).max() > 0.5


def test_path_errors_say_what_is_wrong_and_what_to_give() -> None:
    a = np.zeros((2, 3), np.float32)
    assert _message(UsageError, latent.path, a, 5, "cubic") == (
        "unknown interpolation method 'cubic'; choose lerp or slerp"
    )
    assert _message(UsageError, latent.path, a, 1) == "steps must be at least 2 (both ends included), got 1"
    assert _message(UsageError, latent.path, a[:1], 3) == (
        "interpolation needs at least two anchors (K, D), got shape (1, 3)"
    )


def test_traversal_of_an_integer_base_keeps_fractional_offsets() -> None:
    codes = latent.traversal([0, 0, 0], [1], np.array([-0.5, 0.5]), np.zeros(3), np.ones(3))  # type: ignore[arg-type]
    assert codes.dtype == np.float32
    np.testing.assert_array_equal(codes[0], [[0, -0.5, 0], [0, 0.5, 0]])


@pytest.mark.parametrize(
    ("text", "expected"), [("0, 2, 5", [0, 2, 5]), (" 1 - 3 ", [1, 2, 3]), ("1,,3", [1, 3]), ("0-1,", [0, 1])]
)
def test_parse_dims_ignores_spaces_and_empty_items(text: str, expected: list[int]) -> None:
    assert latent.parse_dims(text, 16) == expected


def test_parse_errors_are_one_line_that_says_what_to_give() -> None:
    assert _message(UsageError, latent.parse_dims, ",", 16) == "no dimensions given: use forms like 0-7, 3 or 0,2,5"
    assert _message(UsageError, latent.parse_dims, "3,16", 16) == (
        "dimension 16 is out of range: this model's latent has dimensions 0-15"
    )
    assert _message(UsageError, latent.parse_amounts, "1,nan") == (
        "bad amounts '1,nan': give comma-separated finite numbers such as -2,-1,0,1,2"
    )


def test_direction_refuses_empty_or_identical_groups_naming_the_problem() -> None:
    some = np.array([[1.0, 2.0]], np.float32)
    none = np.zeros((0, 2), np.float32)
    assert _message(InputError, latent.direction, none, some) == (
        "no 'with' examples to compute an attribute direction from"
    )
    assert _message(InputError, latent.direction, some, none) == (
        "no 'without' examples to compute an attribute direction from"
    )
    assert _message(InputError, latent.direction, some, some) == (
        "the two groups encode to the same average code: the direction is undefined"
    )


def test_directions_are_float32_codes_whatever_the_input_dtype() -> None:
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])  # float64
    assert latent.direction(a, b).dtype == np.float32
    assert latent.regression_direction(np.array([[1.0], [3.0]]), np.array([0.0, 1.0])).dtype == np.float32


def test_regression_direction_needs_a_varying_property() -> None:
    codes = np.array([[1.0], [3.0], [1.0], [3.0]])
    assert _message(InputError, latent.regression_direction, codes, np.full(4, 2.5)) == (
        "the property does not vary across the examples: the direction is undefined"
    )
    # a property whose standard deviation is exactly 1 is fine: v = cov(z, a) / std(a) = 1
    np.testing.assert_allclose(latent.regression_direction(codes, np.array([-1.0, 1.0, -1.0, 1.0])), [1.0])


@pytest.mark.parametrize(
    "a",
    [
        [3.0, 0.0],  # 2-D, on an axis
        [0.1, -0.5, 0.4],  # float64 rounds its unit vector's dot with the opposite one to -1.0000000000000002
        [1.0, 2.0, -2.0, 0.5, 0.0],
    ],
)
def test_slerp_between_opposite_codes_goes_round_the_circle_keeping_the_norm(a: list[float]) -> None:
    a32 = np.asarray(a, np.float32)
    codes = latent.path(np.stack([a32, -a32]), 5, "slerp")
    assert np.isfinite(codes).all()
    norm = float(np.linalg.norm(a32))
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), norm, rtol=1e-6)  # never through zero
    assert abs(float(codes[2] @ a32)) < 1e-5 * norm**2  # halfway: perpendicular to both ends
    np.testing.assert_array_equal(codes[[0, -1]], [a32, -a32])


def test_slerp_in_one_dimension_is_the_line() -> None:
    codes = latent.path(np.array([[2.0], [-1.0]], np.float32), 5, "slerp")  # no circle in 1-D
    np.testing.assert_allclose(codes[:, 0], [2.0, 1.25, 0.5, -0.25, -1.0], rtol=1e-6)


def test_slerp_at_a_wide_angle_follows_the_great_circle() -> None:
    # 150 degrees apart, norms 2 and 3: at t the angle is 150 t degrees and the norm 2 + t
    theta = np.deg2rad(150.0)
    a, b = np.array([2.0, 0.0], np.float32), 3 * np.array([np.cos(theta), np.sin(theta)], np.float32)
    t = np.linspace(0, 1, 6)
    want = (2 + t)[:, None] * np.stack([np.cos(theta * t), np.sin(theta * t)], 1)
    np.testing.assert_allclose(latent.path(np.stack([a, b]), 6, "slerp"), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", latent.METHODS)
def test_paths_are_float32_codes(method: str) -> None:
    anchors = np.array([[0.0, 1.0], [2.0, 0.5]], np.float64)
    assert latent.path(anchors, 4, method).dtype == np.float32


def test_slerp_between_opposite_codes_passes_through_the_least_aligned_axis() -> None:
    # The documented choice among the great circles from a to -a: the one through the axis least
    # aligned with a (+e1 for a = 3 e0), so the same request always gives the same frames.
    codes = latent.path(np.array([[3.0, 0.0], [-3.0, 0.0]], np.float32), 3, "slerp")
    np.testing.assert_allclose(codes, [[3.0, 0.0], [0.0, 3.0], [-3.0, 0.0]], atol=1e-6)
