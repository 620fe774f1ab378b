"""benchmarks/decoder_levers.py: its rewritten decoders are the shipped function, its runner levers
change only what they say and put everything back. No timing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import vaegen_infer as vi  # noqa: E402
from benchmarks.decoder_levers import (  # noqa: E402
    bundle_with_decoder,
    chunks_per_thread,
    fused_float_decoder,
    nhwc_decoder,
    op_table,
    spinning_pool,
)
from vaegen_infer import providers, runners  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "exported" / "mnist-vae"


def run(model: object, z: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    return session.run(["x", "logits"], {"z": z})


@pytest.mark.parametrize("rewrite", [nhwc_decoder, fused_float_decoder])
@pytest.mark.parametrize("batch", [1, 3, 64])
def test_rewritten_decoders_compute_the_shipped_function(rewrite: object, batch: int) -> None:
    shipped = onnx.load(str(BUNDLE / "decoder.onnx"))
    z = np.random.default_rng(batch).standard_normal((batch, 32), dtype=np.float32) * 2.0
    want_x, want_logits = run(shipped, z)
    got_x, got_logits = run(rewrite(shipped), z)  # type: ignore[operator]
    assert got_x.shape == want_x.shape == (batch, 1, 28, 28)
    assert np.abs(got_logits - want_logits).max() < 1e-4
    assert np.abs(got_x - want_x).max() < 1e-5


def test_nhwc_decoder_is_channels_last_and_has_no_conv_transpose_before_the_last() -> None:
    graph = nhwc_decoder(onnx.load(str(BUNDLE / "decoder.onnx"))).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("ConvTranspose") == 1 and ops[-2:] == ["ConvTranspose", "Sigmoid"]
    reshape_in = next(i for i in graph.initializer if i.name == "nhwc_shape_in")
    assert list(onnx.numpy_helper.to_array(reshape_in)) == [-1, 7, 7, 64]  # (N, H, W, C)


def test_nhwc_rewrite_refuses_a_decoder_of_another_shape() -> None:
    encoder = onnx.load(str(BUNDLE / "encoder.onnx"))
    with pytest.raises(SystemExit, match="Gemm -> Relu -> Reshape -> ConvTranspose"):
        nhwc_decoder(encoder)


def test_bundle_with_decoder_loads_and_decodes_like_the_shipped_bundle(tmp_path: Path) -> None:
    shipped = onnx.load(str(BUNDLE / "decoder.onnx"))
    copy = bundle_with_decoder(BUNDLE, tmp_path / "nhwc", nhwc_decoder(shipped))
    manifest = json.loads((copy / "model.json").read_text())
    assert "variants" not in manifest
    z = np.random.default_rng(0).standard_normal((5, 32), dtype=np.float32)
    got = vi.load(copy, providers="cpu").decode(z)
    want = vi.load(BUNDLE, providers="cpu").decode(z)
    assert np.abs(got - want).max() < 1e-5


def test_chunks_per_thread_cuts_bigger_chunks_and_restores() -> None:
    runner = runners.SplitRunner(None, 2, 32, make_session=lambda: None)  # never made: chunks only
    original = runners.SplitRunner.chunks
    assert len(runner.chunks(4096)) == 8  # the shipped 4 per thread
    with chunks_per_thread(1):
        assert runner.chunks(4096) == [(0, 2048), (2048, 4096)]
        assert runner.chunks(63) == [(0, 63)]  # too small to split, as before
        assert runner.chunks(100) == [(0, 50), (50, 100)]
    assert runners.SplitRunner.chunks is original


def test_spinning_pool_changes_session_options_only_inside() -> None:
    request = providers.ProviderRequest("cpu")
    before = providers.intra_op_threads(request), providers.SPINNING
    with spinning_pool(3):
        assert providers.intra_op_threads(request) == 3 and providers.SPINNING is True
    assert (providers.intra_op_threads(request), providers.SPINNING) == before
    with spinning_pool():  # spinning alone: the thread count stays the runtime's
        assert providers.intra_op_threads(request) == before[0] and providers.SPINNING is True
    assert (providers.intra_op_threads(request), providers.SPINNING) == before


def test_op_table_orders_operators_by_total_time() -> None:
    lines = op_table({"a": {"Conv": 1.0, "Relu": 0.01}, "b": {"Gemm": 3.0, "Conv": 0.5}})
    assert lines[0] == "| operator | a | b |"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| Gemm", "| Conv", "| total"]
    assert lines[-1] == "| total | 1.01 | 3.50 |"
