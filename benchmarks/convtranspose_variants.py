"""Can the decoder's first ConvTranspose run faster on ONNX Runtime's CPU provider as a different graph?

    python benchmarks/convtranspose_variants.py [--bundle exported/mnist-vae] [--batches 1,64,512] [--rounds 5]
                                               [--budget 0.3] [--gemm-size 1024] [--out benchmarks/results]

Why: the decoder's time is 77% its first ConvTranspose (x (N, 64, 7, 7) -> (N, 32, 14, 14), kernel 4,
stride 2, pads 1), which ONNX Runtime runs at ~55% of numpy's one-thread GEMM rate
(benchmarks/results/profile_nodes.md). This script builds the same transposed convolution, with the
bundle's real weights, as small standalone graphs (input `x` (N, 64, 7, 7) -> output `y` (N, 32, 14, 14)):

- A  ConvTranspose: the decoder's own node, the reference.
- B  Reshape -> MatMul -> Col2Im -> Add: columns = W^T x as N small GEMMs (512 x 64 @ 64 x 49), Col2Im
     sums the overlapping 4x4 blocks into the 14x14 image, Add puts the bias on.
- C  Conv 3x3 pad 1 (128 = 4 phases x 32 channels) -> DepthToSpace(2, DCR): the sub-pixel form. Each of
     the 4 output phases (row parity, column parity) is a 2x2 convolution of the input; the four 2x2
     windows all lie inside one 3x3 window, so one Conv computes every phase (2.25x the useful
     multiply-adds: the rest are multiplications by zero) and DepthToSpace interleaves them. Fewest nodes.
- D  Conv 2x2 pad 1 (128 channels, 8x8) -> DepthToSpace(2, DCR) -> Slice [1:15]: the same phases with
     exact 2x2 kernels; the phases' windows are offset by one pixel, which the Slice undoes (1.31x the
     useful multiply-adds: the border positions computed and cropped).
- E  Reshape -> Transpose -> MatMul -> Transpose -> Col2Im -> Add: B with one large GEMM
     ((N*49) x 64 @ 64 x 512, constant right-hand side, which ONNX Runtime prepacks) instead of N small
     ones, paid for with two transposes.

Every variant must match A within 1e-4 (max absolute difference) on the timed random input, or the
script stops. Timing: one single-threaded session per variant (ORT_ENABLE_ALL, intra- and inter-op
threads 1, CPUExecutionProvider); per batch size, every variant is warmed up, then timed in `--rounds`
interleaved rounds (variants in a fresh order each round) so load from other processes falls on all of
them alike; p50 over all calls. GFLOP/s counts the *useful* FLOPs of the transposed convolution for
every variant, 2 * N * 64 * 32 * 16 * 49 (benchmarks/flops.py on A), so the rates compare; the FLOPs
each graph really executes are in the JSON. The yardstick is numpy's one-thread float32 GEMM rate
measured in the same process at the start and at the end (the higher counts, as in latency.py).
Writes <out>/convtranspose_variants.{json,md}.
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.flops import flops_per_item  # noqa: E402
from benchmarks.profile_nodes import gemm_one_thread  # noqa: E402
from train.variants import Deconv, subpixel_weights  # noqa: E402  (the int8 variant's rewrite, one copy)
from vaegen_infer.bench import machine_info, repeats_for, summarize, time_calls, warm_up  # noqa: E402
from vaegen_infer.io import save_json, write_bytes  # noqa: E402

WEIGHT = "model.decoder.deconv.0.weight"
BIAS = "model.decoder.deconv.0.bias"
OPSET = 18  # Col2Im is opset 18
IR_VERSION = 10  # the bundle's own; ONNX Runtime 1.20+ reads it
TOLERANCE = 1e-4  # max absolute difference from A that a variant may show
STEM = "convtranspose_variants"


# -- the weights ---------------------------------------------------------------------------------


def load_deconv(bundle: str | Path) -> Deconv:
    """The first ConvTranspose of the bundle's decoder.onnx: weights, and the attributes checked to be
    the ones every rewrite below assumes (square kernel, one stride and pad for both axes, no groups)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.shape_inference.infer_shapes(onnx.load(str(Path(bundle) / "decoder.onnx")))
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    node = next((n for n in g.node if n.op_type == "ConvTranspose" and n.input[1] == WEIGHT), None)
    if node is None or len(node.input) < 3 or node.input[2] != BIAS:
        raise ValueError(f"no ConvTranspose with weight {WEIGHT} and bias {BIAS} in {bundle}/decoder.onnx")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    weight = inits[WEIGHT].astype(np.float32)  # (Cin, Cout, k, k)
    k = weight.shape[2]
    strides, pads = list(attrs.get("strides", [1, 1])), list(attrs.get("pads", [0, 0, 0, 0]))
    expected = {
        "group": attrs.get("group", 1) == 1,
        "square kernel": weight.shape[2] == weight.shape[3] and list(attrs.get("kernel_shape", [k, k])) == [k, k],
        "one stride": strides[0] == strides[1],
        "one pad": len(set(pads)) == 1,
        "dilations 1": list(attrs.get("dilations", [1, 1])) == [1, 1],
        "no output_padding": list(attrs.get("output_padding", [0, 0])) == [0, 0],
        "explicit pads": attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"),
    }
    bad = [name for name, ok in expected.items() if not ok]
    if bad:
        raise ValueError(f"{node.name}: the rewrites assume {', '.join(bad)}; attributes are {attrs}")
    shape = next(vi for vi in [*g.value_info, *g.input] if vi.name == node.input[0])
    dims = [d.dim_value for d in shape.type.tensor_type.shape.dim]  # (batch, Cin, H, W); batch is symbolic
    return Deconv(weight, inits[BIAS].astype(np.float32), int(strides[0]), int(pads[0]), dims[2], dims[3])


# -- graph builders ------------------------------------------------------------------------------


def _model(nodes: list[Any], inits: dict[str, np.ndarray], d: Deconv, name: str) -> Any:
    """A standalone model: `x` (N, Cin, H, W) -> `y` (N, Cout, Ho, Wo), batch dynamic, checked by onnx."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    ho, wo = d.out_size(d.height), d.out_size(d.width)
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", d.cin, d.height, d.width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", d.cout, ho, wo])],
        [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)  # strict shape inference: the declared output shape holds
    return model


def build_convtranspose(d: Deconv) -> Any:
    """A: the decoder's node as it is."""
    from onnx import helper

    node = helper.make_node(
        "ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[d.kernel] * 2, strides=[d.stride] * 2,
        pads=[d.pad] * 4,
    )  # fmt: skip
    return _model([node], {"w": d.weight, "b": d.bias}, d, "A_convtranspose")


def _col2im_nodes(d: Deconv, cols: str) -> tuple[list[Any], dict[str, np.ndarray]]:
    """cols (N, Cout*k*k, H*W) -> Col2Im -> Add bias -> y (N, Cout, Ho, Wo).

    Col2Im (torch's fold) adds block l's column, reshaped (Cout, k, k), into the padded image at rows
    s*(l // W) .. +k, columns s*(l % W) .. +k, then drops `pad` pixels on each side. That is exactly
    the transposed convolution's scatter: input pixel (ih, iw) through tap (kh, kw) lands on output
    (s*ih - pad + kh, s*iw - pad + kw). The bias is added once per output pixel, after the sum (the
    number of blocks covering a pixel varies at the border, so it cannot ride in the columns)."""
    from onnx import helper

    nodes = [
        # (N, Cout*k*k, H*W) -> (N, Cout, Ho, Wo)
        helper.make_node(
            "Col2Im",
            [cols, "image_shape", "block_shape"],
            ["img"],
            strides=[d.stride] * 2,
            pads=[d.pad] * 4,
            dilations=[1, 1],
        ),
        helper.make_node("Add", ["img", "b"], ["y"]),
    ]
    inits = {
        "image_shape": np.array([d.out_size(d.height), d.out_size(d.width)], dtype=np.int64),
        "block_shape": np.array([d.kernel, d.kernel], dtype=np.int64),
        "b": d.bias.reshape(d.cout, 1, 1),  # broadcasts over (N, Cout, Ho, Wo)
    }
    return nodes, inits


def build_matmul_col2im(d: Deconv) -> Any:
    """B: columns = W^T x per image, then Col2Im.

    cols[n, co*k*k + kh*k + kw, ih*W + iw] = sum_ci W[ci, co, kh, kw] x[n, ci, ih, iw], i.e.
    Wcols (Cout*k*k, Cin) = W.reshape(Cin, Cout*k*k).T, and cols = Wcols @ x.reshape(N, Cin, H*W):
    (512, 64) @ (N, 64, 49) -> (N, 512, 49), the row order (co, kh, kw) that Col2Im reads."""
    from onnx import helper

    k2 = d.kernel**2
    nodes = [
        helper.make_node("Reshape", ["x", "x_shape"], ["x_flat"]),  # (N, Cin, H*W)
        helper.make_node("MatMul", ["w_cols", "x_flat"], ["cols"]),  # (N, Cout*k*k, H*W)
    ]
    inits = {
        "x_shape": np.array([0, d.cin, d.height * d.width], dtype=np.int64),  # 0: keep N
        "w_cols": d.weight.reshape(d.cin, d.cout * k2).T,  # (Cout*k*k, Cin)
    }
    tail, tail_inits = _col2im_nodes(d, "cols")
    return _model(nodes + tail, {**inits, **tail_inits}, d, "B_matmul_col2im")


def build_gemm_col2im(d: Deconv) -> Any:
    """E: B's columns from one large GEMM with the weight on the right, where ONNX Runtime prepacks it:
    x (N, Cin, H*W) -> Transpose (N, H*W, Cin) @ W (Cin, Cout*k*k) -> (N, H*W, Cout*k*k) -> Transpose
    (N, Cout*k*k, H*W). MatMul with a 2-D right-hand side is one (N*H*W) x Cin x (Cout*k*k) GEMM."""
    from onnx import helper

    k2 = d.kernel**2
    nodes = [
        helper.make_node("Reshape", ["x", "x_shape"], ["x_flat"]),  # (N, Cin, H*W)
        helper.make_node("Transpose", ["x_flat"], ["x_rows"], perm=[0, 2, 1]),  # (N, H*W, Cin)
        helper.make_node("MatMul", ["x_rows", "w_rows"], ["cols_t"]),  # (N, H*W, Cout*k*k)
        helper.make_node("Transpose", ["cols_t"], ["cols"], perm=[0, 2, 1]),  # (N, Cout*k*k, H*W)
    ]
    inits = {
        "x_shape": np.array([0, d.cin, d.height * d.width], dtype=np.int64),
        "w_rows": d.weight.reshape(d.cin, d.cout * k2),  # (Cin, Cout*k*k), columns ordered (co, kh, kw)
    }
    tail, tail_inits = _col2im_nodes(d, "cols")
    return _model(nodes + tail, {**inits, **tail_inits}, d, "E_gemm_col2im")


def build_subpixel(d: Deconv, kc: int = 3, pc: int = 1, offset: int = 0, mode: str = "DCR") -> Any:
    """C (kc=3, pc=1, offset 0) and D (kc=2, pc=1, offset 1): Conv -> DepthToSpace [-> Slice].

    With stride 2, kernel 4, pad 1: even output rows 2a take input rows a-1 and a (taps 3, 1), odd
    rows 2a+1 take rows a and a+1 (taps 2, 0). C: a 3x3 window around row a holds both, so a 3x3
    Conv with pad 1 gives (N, 128, 7, 7) and DepthToSpace gives (N, 32, 14, 14) directly. D: a 2x2
    window at rows p-1, p is phase 1 of a = p-1 and phase 0 of a = p, so a 2x2 Conv with pad 1
    gives (N, 128, 8, 8) -> (N, 32, 16, 16), output row = DepthToSpace row - 1: Slice [1:15]."""
    from onnx import helper

    s = d.stride
    ho, wo = d.out_size(d.height), d.out_size(d.width)
    conv_h, conv_w = d.height + 2 * pc - kc + 1, d.width + 2 * pc - kc + 1  # Conv output (N, s*s*Cout, .., ..)
    if offset + ho > s * conv_h or offset + wo > s * conv_w:
        raise ValueError(f"kernel {kc}, pad {pc}, offset {offset}: the phases do not reach the last output row")
    bias = np.tile(d.bias, s * s) if mode == "DCR" else np.repeat(d.bias, s * s)  # follows the channel order
    inits: dict[str, np.ndarray] = {"w": subpixel_weights(d, kc, pc, offset, mode), "b": bias}
    crop = offset != 0 or s * conv_h != ho or s * conv_w != wo
    d2s_out = "y_full" if crop else "y"
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["phases"], kernel_shape=[kc, kc], pads=[pc] * 4),
        helper.make_node("DepthToSpace", ["phases"], [d2s_out], blocksize=s, mode=mode),  # (N, Cout, s*conv_h, ..)
    ]
    if crop:
        nodes.append(helper.make_node("Slice", [d2s_out, "starts", "ends", "axes"], ["y"]))
        inits.update({
            "starts": np.array([offset, offset], dtype=np.int64),
            "ends": np.array([offset + ho, offset + wo], dtype=np.int64),
            "axes": np.array([2, 3], dtype=np.int64),
        })  # fmt: skip
    name = f"subpixel_conv{kc}x{kc}_{mode}" + ("_slice" if crop else "")
    return _model(nodes, inits, d, name)


@dataclass(frozen=True)
class Variant:
    key: str
    description: str
    build: Callable[[Deconv], Any]


VARIANTS: tuple[Variant, ...] = (
    Variant("A", "ConvTranspose (reference)", build_convtranspose),
    Variant("B", "MatMul (N small GEMMs) + Col2Im + Add", build_matmul_col2im),
    Variant("C", "Conv 3x3 pad 1 -> 128 ch + DepthToSpace DCR", lambda d: build_subpixel(d, 3, 1, 0)),
    Variant("D", "Conv 2x2 pad 1 -> 128 ch + DepthToSpace DCR + Slice", lambda d: build_subpixel(d, 2, 1, 1)),
    Variant("E", "Transpose + MatMul (one GEMM) + Transpose + Col2Im + Add", build_gemm_col2im),
)


# -- running and timing --------------------------------------------------------------------------


def make_session(model: Any, optimized_path: Path | None = None) -> Any:
    """One single-threaded CPU session: the settings the runtime itself uses for one thread."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if optimized_path is not None:
        opts.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run(session: Any, x: np.ndarray) -> np.ndarray:
    return session.run(None, {"x": x})[0]


def optimized_ops(model: Any, tmp: Path) -> list[str]:
    """The node types ONNX Runtime really runs after ORT_ENABLE_ALL (e.g. NCHWc Conv, FusedConv)."""
    import onnx

    path = tmp / f"{model.graph.name}.opt.onnx"
    make_session(model, optimized_path=path)
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def save_model(model: Any, tmp: Path) -> Path:
    import onnx

    path = tmp / f"{model.graph.name}.onnx"
    onnx.save(model, str(path))
    return path


def executed_flops_per_item(model: Any, tmp: Path) -> int:
    """FLOPs per image that the graph really executes (benchmarks/flops.py: Conv, MatMul, ConvTranspose)."""
    return flops_per_item(save_model(model, tmp))


def time_batch(
    sessions: dict[str, Any], x: np.ndarray, rounds: int, budget_s: float, warmup: int, order_rng: random.Random
) -> dict[str, list[float]]:
    """Seconds per call for each variant at one batch: warmed up, then `rounds` interleaved rounds."""
    calls = {key: (lambda s=s: run(s, x)) for key, s in sessions.items()}
    per_call = {key: warm_up(fn, warmup) for key, fn in calls.items()}
    repeats = {key: repeats_for(per_call[key], budget_s, 3, 500) for key in calls}  # per round
    samples: dict[str, list[float]] = {key: [] for key in calls}
    order = list(calls)
    for _ in range(rounds):
        order_rng.shuffle(order)
        for key in order:
            samples[key] += time_calls(calls[key], repeats[key])
    return samples


def parse_batches(text: str) -> list[int]:
    batches = [int(b) for b in text.split(",") if b.strip()]
    if not batches or any(b < 1 for b in batches):
        raise argparse.ArgumentTypeError(f"batch sizes must be integers >= 1, got {text!r}")
    return batches


def markdown(results: dict[str, Any]) -> str:
    m, gemm = results["meta"], results["gemm"]
    lines = [
        "# ConvTranspose rewrites: the decoder's first transposed convolution as other ONNX graphs",
        "",
        f"Command: `{m['command']}`",
        "",
        f"{m['cpu']}, {m['physical_cores']} physical cores, load average {m['load_average']} at the start; "
        f"onnxruntime {m['onnxruntime']}, numpy {m['numpy']}. One thread per session, ORT_ENABLE_ALL, "
        f"CPUExecutionProvider; p50 over {m['rounds']} interleaved rounds. Layer: x (N, {m['layer']['cin']}, "
        f"{m['layer']['height']}, {m['layer']['width']}) -> (N, {m['layer']['cout']}, {m['layer']['out_height']}, "
        f"{m['layer']['out_width']}), kernel {m['layer']['kernel']}, stride {m['layer']['stride']}, pads "
        f"{m['layer']['pad']}, weights from `{m['bundle']}`.",
        "",
        f"GEMM rate (numpy float32 {gemm['n']}x{gemm['n']}, one thread, median of 5): {gemm['start_gflops']:.1f} "
        f"GFLOP/s at the start, {gemm['end_gflops']:.1f} at the end; the higher, **{gemm['gflops']:.1f} GFLOP/s**, "
        "is the yardstick. GFLOP/s counts the useful FLOPs of the transposed convolution for every variant "
        f"(2 x N x Cin x H x W x Cout x k x k = {results['useful_flops_per_item']:,} per image), whatever the graph "
        "executes; `executed` is what each graph really multiplies, zeros "
        "included. Ratio: p50 / A's p50 at the same batch (< 1 is faster than the reference).",
        "",
        "| variant | nodes | ORT runs | executed | batch | max abs diff vs A | p50 ms | p90 ms | calls "
        "| GFLOP/s | of GEMM | p50 / A |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    info = {v["key"]: v for v in results["variants"]}
    for r in results["rows"]:
        v = info[r["variant"]]
        lines.append(
            f"| {v['key']}: {v['description']} | {len(v['nodes'])}: {' + '.join(v['nodes'])} "
            f"| {' + '.join(v['optimized_nodes'])} | {v['executed_over_useful']:.2f}x | {r['batch']} "
            f"| {r['max_abs_diff']:.1e} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['calls']} | {r['gflops']:.1f} "
            f"| {r['fraction_of_gemm']:.0%} | {r['ratio_to_reference']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "exported" / "mnist-vae")
    parser.add_argument("--batches", type=parse_batches, default=[1, 64, 512], help="comma-separated, e.g. 1,64,512")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per batch")
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per variant per round (>= 3 calls)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per variant and batch")
    parser.add_argument("--gemm-size", type=int, default=1024, help="n of the numpy n x n GEMM yardstick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    command = shlex.join(["python", "benchmarks/convtranspose_variants.py", *(sys.argv[1:] if argv is None else argv)])

    d = load_deconv(args.bundle)
    models = {v.key: v.build(d) for v in VARIANTS}
    useful_per_item = d.useful_flops(1)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        if executed_flops_per_item(models["A"], tmp) != useful_per_item:  # the two FLOP counts must agree
            raise RuntimeError("benchmarks/flops.py counts A differently from Deconv.useful_flops")
        variants = [
            {
                "key": v.key, "description": v.description,
                "nodes": [n.op_type for n in models[v.key].graph.node],
                "optimized_nodes": optimized_ops(models[v.key], tmp),
                "executed_flops_per_item": (ex := executed_flops_per_item(models[v.key], tmp)),
                "executed_over_useful": ex / useful_per_item,
            }
            for v in VARIANTS
        ]  # fmt: skip
    for v in variants:
        print(f"{v['key']}: {' + '.join(v['nodes'])}  (ORT runs {' + '.join(v['optimized_nodes'])})", flush=True)

    meta = {**machine_info(), "command": command, "rounds": args.rounds, "budget_s_per_round": args.budget}
    meta.update({
        "warmup": args.warmup, "seed": args.seed, "tolerance": TOLERANCE, "threads": 1,
        "graph_optimization_level": "ORT_ENABLE_ALL", "provider": "CPUExecutionProvider",
        "bundle": _display(args.bundle),
        "layer": {
            "weight": WEIGHT, "bias": BIAS, "cin": d.cin, "cout": d.cout, "kernel": d.kernel, "stride": d.stride,
            "pad": d.pad, "height": d.height, "width": d.width, "out_height": d.out_size(d.height),
            "out_width": d.out_size(d.width),
        },
    })  # fmt: skip
    gemm_start = gemm_one_thread(args.gemm_size)
    print(f"GEMM one thread: {gemm_start:.1f} GFLOP/s", flush=True)

    sessions = {key: make_session(model) for key, model in models.items()}
    rng = np.random.default_rng(args.seed)
    order_rng = random.Random(args.seed)
    rows: list[dict[str, Any]] = []
    for batch in args.batches:
        x = rng.standard_normal((batch, d.cin, d.height, d.width), dtype=np.float32)  # (N, Cin, H, W)
        reference = run(sessions["A"], x)
        diffs = {key: float(np.max(np.abs(run(s, x) - reference))) for key, s in sessions.items()}
        wrong = {key: diff for key, diff in diffs.items() if not diff <= TOLERANCE}  # NaN counts as wrong
        if wrong:
            raise AssertionError(f"batch {batch}: variants differ from A by more than {TOLERANCE}: {wrong}")
        samples = time_batch(sessions, x, args.rounds, args.budget, args.warmup, order_rng)
        timings = {key: summarize(key, "convtranspose", batch, s) for key, s in samples.items()}
        for key, t in timings.items():
            gflops = d.useful_flops(batch) / (t.p50_ms / 1000.0) / 1e9
            rows.append({
                "variant": key, "batch": batch, "max_abs_diff": diffs[key], "p50_ms": t.p50_ms, "p90_ms": t.p90_ms,
                "calls": t.repeats, "gflops": gflops, "fraction_of_gemm": None,
                "ratio_to_reference": t.p50_ms / timings["A"].p50_ms,
            })  # fmt: skip
            print(f"batch {batch:>5}  {key}  p50 {t.p50_ms:8.3f} ms  {gflops:6.1f} GFLOP/s  diff {diffs[key]:.1e}")

    gemm_end = gemm_one_thread(args.gemm_size)
    gemm = max(gemm_start, gemm_end)  # load from other processes only ever lowers it
    for r in rows:
        r["fraction_of_gemm"] = r["gflops"] / gemm
    results = {
        "meta": meta,
        "gemm": {"n": args.gemm_size, "start_gflops": gemm_start, "end_gflops": gemm_end, "gflops": gemm},
        "useful_flops_per_item": useful_per_item,
        "variants": variants,
        "rows": rows,
    }
    text = markdown(results)  # both files are complete before either is written
    args.out.mkdir(parents=True, exist_ok=True)
    save_json(args.out / f"{STEM}.json", results)
    write_bytes(args.out / f"{STEM}.md", lambda fh: fh.write(text.encode("utf-8")))
    print(text)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()
