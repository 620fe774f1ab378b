"""Reduced-precision variants: the sub-pixel rewrite, int8/fp16 bundles, load(precision=) and --precision."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _convtranspose(cin: int, cout: int, k: int, s: int, p: int, h: int, seed: int = 0) -> object:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((cin, cout, k, k), dtype=np.float32)
    b = rng.standard_normal(cout, dtype=np.float32)
    ho = (h - 1) * s - 2 * p + k
    node = helper.make_node(
        "ConvTranspose", ["x", "w", "b"], ["y"], name="deconv", kernel_shape=[k, k], strides=[s, s], pads=[p] * 4
    )
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cin, h, h])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", cout, ho, ho])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def _run(model: object, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    return s.run(None, {"x": x})[0]


@pytest.mark.parametrize(
    ("cin", "cout", "k", "s", "p", "h"),
    [(64, 32, 4, 2, 1, 7), (32, 1, 4, 2, 1, 14), (8, 4, 3, 2, 1, 5), (6, 3, 5, 3, 2, 4), (4, 2, 2, 2, 0, 6)],
)
def test_subpixel_rewrite_equals_convtranspose_in_float(cin: int, cout: int, k: int, s: int, p: int, h: int) -> None:
    from train.variants import subpixel_rewrite

    model = _convtranspose(cin, cout, k, s, p, h)
    rewritten, count = subpixel_rewrite(model)
    assert count == 1
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops == ["Conv", "Reshape", "Gather", "Reshape"]
    x = np.random.default_rng(1).standard_normal((3, cin, h, h), dtype=np.float32)
    want, got = _run(model, x), _run(rewritten, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_subpixel_plan_picks_the_smallest_kernel() -> None:
    from train.variants import Deconv, subpixel_plan

    d = Deconv(np.zeros((2, 2, 4, 4), np.float32), np.zeros(2, np.float32), stride=2, pad=1, height=7, width=7)
    assert subpixel_plan(d) == (2, 1, 1)  # 2x2 Conv, pad 1, output shifted by one: 1.31x the multiply-adds


def test_rewrite_refuses_what_it_cannot_express() -> None:
    from onnx import helper

    from train.variants import subpixel_rewrite
    from vaegen_infer.errors import BundleError

    model = _convtranspose(4, 2, 4, 2, 1, 5)
    model.graph.node[0].attribute.append(helper.make_attribute("output_padding", [1, 1]))  # type: ignore[attr-defined]
    with pytest.raises(BundleError, match="does not handle"):
        subpixel_rewrite(model)


@pytest.fixture(scope="module")
def variant_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mnist-vae-2d with int8 and fp16 variants, built once."""
    from train.variants import build_variants

    dst = tmp_path_factory.mktemp("variants") / "mnist-vae-2d"
    shutil.copytree(ROOT / "exported" / "mnist-vae-2d", dst)
    build_variants(dst, int8=True, fp16=True, calibration_images=128)
    return dst


def test_variants_are_listed_with_their_hashes_and_parity(variant_bundle: Path) -> None:
    from vaegen_infer.bundle import sha256_file

    m = json.loads((variant_bundle / "model.json").read_text())
    assert set(m["variants"]) == {"int8", "fp16"}
    for precision, v in m["variants"].items():
        for role in ("encoder", "decoder"):
            spec = v[role]
            assert spec["file"] == f"{role}.{precision}.onnx"
            assert spec["sha256"] == sha256_file(variant_bundle / spec["file"])
            assert spec["inputs"] == m["graphs"][role]["inputs"] and spec["outputs"] == m["graphs"][role]["outputs"]
        worst, mean = v["parity"]["max_abs_diff"], v["parity"]["mean_abs_diff"]
        # int8: pixels in [0, 1] off by 1% on average (a broken calibration or rewrite gives 0.1 and
        # more); a few edge pixels of the steep 2-D decoder move by up to ~0.8, so the max is only bounded.
        assert 0 < mean["decoder"]["x"] < (0.02 if precision == "int8" else 1e-3)
        assert 0 < worst["decoder"]["x"] < (1.0 if precision == "int8" else 0.01)
        assert mean["encoder"]["mu"] < (0.2 if precision == "int8" else 1e-2)
    build = m["variants"]["int8"]["quality"]["build"]
    assert build["decoder"]["convtranspose_rewritten"] == 1  # the first; the last stays float with the logits
    assert build["decoder"]["rewrite_max_abs_diff"] <= 1e-4


def test_int8_graph_runs_int8_convolutions(variant_bundle: Path) -> None:
    nodes = onnx.load(str(variant_bundle / "decoder.int8.onnx")).graph.node
    ops = [n.op_type for n in nodes]
    # the first ConvTranspose as an int8 Conv; the last one reads its phases (no interleave left)
    assert ops.count("ConvTranspose") == 1 and ops.count("Conv") == 1
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(ops) and not {"Gather", "DepthToSpace"} & set(ops)


def _two_deconvs(relu: bool) -> object:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w1, b1 = rng.standard_normal((8, 6, 4, 4), dtype=np.float32), rng.standard_normal(6, dtype=np.float32)
    w2, b2 = rng.standard_normal((6, 2, 4, 4), dtype=np.float32), rng.standard_normal(2, dtype=np.float32)
    attrs = {"kernel_shape": [4, 4], "strides": [2, 2], "pads": [1] * 4}
    mid = "h" if relu else "y1"
    nodes = [helper.make_node("ConvTranspose", ["x", "w1", "b1"], ["y1"], name="first", **attrs)]
    if relu:
        nodes.append(helper.make_node("Relu", ["y1"], ["h"], name="act"))
    nodes.append(helper.make_node("ConvTranspose", [mid, "w2", "b2"], ["y"], name="tail", **attrs))
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 20, 20])],
        [numpy_helper.from_array(v, k) for k, v in {"w1": w1, "b1": b1, "w2": w2, "b2": b2}.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


@pytest.mark.parametrize("relu", [True, False])
def test_a_float_tail_reads_the_phases_directly(relu: bool) -> None:
    from train.variants import subpixel_rewrite

    model = _two_deconvs(relu)
    fused, count = subpixel_rewrite(model, skip=frozenset({"tail"}))
    assert count == 1
    nodes = list(fused.graph.node)
    assert [n.op_type for n in nodes] == ["Conv", *(["Relu"] if relu else []), "ConvTranspose"]
    tail = nodes[-1]
    attrs = {a.name: list(a.ints) for a in tail.attribute}
    assert tail.name == "tail" and attrs["strides"] == [4, 4] and attrs["kernel_shape"] == [6, 6]
    x = np.random.default_rng(4).standard_normal((3, 8, 5, 5), dtype=np.float32)
    np.testing.assert_allclose(_run(fused, x), _run(model, x), atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize(("precision", "tol"), [("int8", 0.05), ("fp16", 1e-3)])
def test_load_precision_runs_the_variant_close_to_float32(variant_bundle: Path, precision: str, tol: float) -> None:
    import vaegen_infer

    ref = vaegen_infer.load(variant_bundle, providers="cpu")
    g = vaegen_infer.load(variant_bundle, providers="cpu", precision=precision)
    assert g.precision == precision
    assert g.session_for("decoder", 1) is not ref.session_for("decoder", 1)
    x_ref, x = ref.sample(256, seed=0), g.sample(256, seed=0)
    assert x.dtype == np.float32 and x.shape == x_ref.shape
    err = float(np.abs(x - x_ref).mean())
    assert 0 < err < tol
    mu_ref, _ = ref.encode(x_ref)
    mu, _ = g.encode(x_ref)
    assert float(np.abs(mu - mu_ref).mean()) < 10 * tol


def test_missing_variant_falls_back_to_float32_with_one_line(bundle_copy: Path) -> None:
    import vaegen_infer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = vaegen_infer.load(bundle_copy, providers="cpu", precision="int8")
    assert g.precision == "float32"
    (w,) = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert "no int8 variant" in str(w.message) and "\n" not in str(w.message)
    np.testing.assert_array_equal(
        g.sample(4, seed=0), vaegen_infer.load(bundle_copy, providers="cpu").sample(4, seed=0)
    )


def test_unknown_precision_is_a_usage_error() -> None:
    import vaegen_infer
    from vaegen_infer.errors import UsageError

    with pytest.raises(UsageError, match="unknown precision 'int4'"):
        vaegen_infer.load("mnist-vae", precision="int4")


def test_manifest_rejects_a_bad_variant(variant_bundle: Path, tmp_path: Path) -> None:
    from vaegen_infer.bundle import read_manifest
    from vaegen_infer.errors import BundleError

    dst = tmp_path / "b"
    shutil.copytree(variant_bundle, dst)
    m = json.loads((dst / "model.json").read_text())
    m["variants"]["int4"] = m["variants"].pop("int8")
    (dst / "model.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"'variants\.int4' must be a variant named int8 or fp16"):
        read_manifest(dst)
    m["variants"] = {"int8": {**m["variants"]["int4"], "decoder": {**m["variants"]["int4"]["decoder"], "sha256": "x"}}}
    (dst / "model.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"variants\.int8\.decoder\.sha256"):
        read_manifest(dst)


def test_a_damaged_variant_file_is_caught(variant_bundle: Path, tmp_path: Path) -> None:
    import vaegen_infer
    from vaegen_infer.errors import BundleError

    dst = tmp_path / "b"
    shutil.copytree(variant_bundle, dst)
    with open(dst / "decoder.int8.onnx", "ab") as fh:
        fh.write(b"0")
    vaegen_infer.load(dst, providers="cpu")  # float32 does not read the variant
    with pytest.raises(BundleError, match=r"decoder\.int8\.onnx: sha256 mismatch"):
        vaegen_infer.load(dst, providers="cpu", precision="int8")


def test_cli_precision_option_and_note(
    variant_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vaegen_infer.cli import app

    def run(*args: str) -> int:
        with pytest.raises(SystemExit) as exc:
            app(list(args))
        return int(exc.value.code or 0)

    assert (
        run("sample", "-m", str(variant_bundle), "--n", "4", "-o", str(tmp_path / "a.npy"), "--precision", "int8") == 0
    )
    assert "note:" not in capsys.readouterr().err
    assert run("sample", "--n", "4", "-o", str(tmp_path / "b.npy"), "--precision", "fp16") == 0
    assert capsys.readouterr().err.strip() == "note: mnist-vae has no fp16 variant; running float32"
    assert run("sample", "--n", "4", "-o", str(tmp_path / "c.npy"), "--precision", "int4") == 2
    assert "'int4' is not one of float32, int8, fp16" in capsys.readouterr().err


def test_train_variants_command_needs_a_variant(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from train.cli import app

    result = CliRunner().invoke(app, ["variants", str(ROOT / "exported" / "mnist-vae-2d")])
    assert result.exit_code == 2
    assert "choose at least one variant" in result.output


def test_the_schema_takes_variants_and_refuses_unknown_ones(variant_bundle: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from importlib.resources import files

    schema = json.loads(files("vaegen_infer").joinpath("schema/model.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    m = json.loads((variant_bundle / "model.json").read_text())
    assert list(validator.iter_errors(m)) == []
    bad = json.loads(json.dumps(m))
    bad["variants"]["int4"] = bad["variants"].pop("int8")
    assert not validator.is_valid(bad)
    bad = json.loads(json.dumps(m))
    del bad["variants"]["fp16"]["decoder"]["sha256"]
    assert not validator.is_valid(bad)
