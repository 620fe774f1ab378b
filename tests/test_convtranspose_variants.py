"""The ConvTranspose rewrites of benchmarks/convtranspose_variants.py compute the same layer. No timing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from benchmarks.convtranspose_variants import (
    TOLERANCE,
    VARIANTS,
    Deconv,
    Variant,
    build_subpixel,
    load_deconv,
    make_session,
    run,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def layer() -> Deconv:
    return load_deconv(ROOT / "exported" / "mnist-vae")


@pytest.fixture(scope="module")
def x(layer: Deconv) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, layer.cin, layer.height, layer.width), dtype=np.float32)


def numpy_convtranspose(d: Deconv, x: np.ndarray) -> np.ndarray:
    """The definition, written out: input pixel (ih, iw) through tap (kh, kw) adds to output
    (s*ih - pad + kh, s*iw - pad + kw); computed on the unpadded canvas, then cropped."""
    n, s, k = x.shape[0], d.stride, d.kernel
    full = np.zeros((n, d.cout, (d.height - 1) * s + k, (d.width - 1) * s + k), dtype=np.float64)
    for kh in range(k):
        for kw in range(k):
            contrib = np.einsum("nchw,co->nohw", x.astype(np.float64), d.weight[:, :, kh, kw].astype(np.float64))
            full[:, :, kh : kh + s * d.height : s, kw : kw + s * d.width : s] += contrib
    ho, wo = d.out_size(d.height), d.out_size(d.width)
    return full[:, :, d.pad : d.pad + ho, d.pad : d.pad + wo] + d.bias[None, :, None, None]


def test_layer_is_the_decoders(layer: Deconv) -> None:
    assert layer.weight.shape == (64, 32, 4, 4) and layer.bias.shape == (32,)
    assert (layer.stride, layer.pad, layer.height, layer.width) == (2, 1, 7, 7)
    assert (layer.out_size(7), layer.useful_flops(1)) == (14, 2 * 64 * 32 * 16 * 49)


def test_reference_is_the_definition(layer: Deconv, x: np.ndarray) -> None:
    reference = run(make_session(VARIANTS[0].build(layer)), x)
    assert reference.shape == (3, 32, 14, 14)
    assert np.max(np.abs(reference - numpy_convtranspose(layer, x))) <= TOLERANCE


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.key for v in VARIANTS])
def test_variant_matches_reference(layer: Deconv, x: np.ndarray, variant: Variant) -> None:
    reference = run(make_session(VARIANTS[0].build(layer)), x)
    y = run(make_session(variant.build(layer)), x)
    assert y.shape == reference.shape
    assert np.max(np.abs(y - reference)) <= TOLERANCE


@pytest.mark.parametrize(("kc", "pc", "offset"), [(3, 1, 0), (2, 1, 1)])
def test_subpixel_crd_with_its_channel_order_is_right_too(
    layer: Deconv, x: np.ndarray, kc: int, pc: int, offset: int
) -> None:
    y = run(make_session(build_subpixel(layer, kc, pc, offset, mode="CRD")), x)
    assert np.max(np.abs(y - numpy_convtranspose(layer, x))) <= TOLERANCE


@pytest.mark.parametrize(("kc", "pc", "offset"), [(2, 1, 0), (3, 1, 1), (2, 0, 0), (3, 0, 0)])
def test_subpixel_refuses_a_plan_that_misses_taps_or_rows(layer: Deconv, kc: int, pc: int, offset: int) -> None:
    with pytest.raises(ValueError):
        build_subpixel(layer, kc, pc, offset)
