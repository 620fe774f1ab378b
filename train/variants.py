"""Reduced-precision variants of an exported bundle: int8 (static QDQ, for CPUs) and fp16 (for GPUs).

    python -m train variants exported/NAME --int8 --fp16

Works on any bundle directory (it reads the graphs and model.json, never the training run), adds
`encoder.int8.onnx` / `decoder.int8.onnx` (and `.fp16.`) beside the float32 graphs and lists each
variant in model.json's `variants` with its own sha256, its measured parity against float32 and
its calibration protocol. The runtime picks one with `load(..., precision="int8")`.

- int8: `onnxruntime.quantization.quantize_static`, QDQ format, per-channel int8 weights, uint8
  activations, MinMax calibration on training images (the bundle's own training data: encoder
  inputs binarised as in training for binary data; decoder inputs half the encoder's mu of those
  images, half draws from the prior). ONNX Runtime's CPU provider has no int8 ConvTranspose kernel
  (between its Q/DQ pairs it would run in float), so every ConvTranspose is first rewritten as the
  equivalent sub-pixel convolution (`subpixel_rewrite`), checked equal to the original in float
  before quantising: a Conv computing every output phase, then either one Gather that interleaves
  and crops the phases, or, when the next layer is a ConvTranspose that stays float, that layer
  rewritten to read the phases directly (`fused_tail_weights`), so no interleave is left at all.
  Profiled at batch 512 on one thread (mnist-vae decoder): float32 39.4 ms; int8 with DepthToSpace +
  Slice 98 ms under load (their kernels cost more than the int8 Conv), with the Gather 27.7 ms, with
  the fused tail 18.7 ms. Each graph's last weight layer and what
  follows it stay float: they make mu/logvar and the decoder's logits, whose ranges 8 bits cut too
  coarsely (a logit step of ~0.1 costs nats).
- fp16: `onnxconverter_common.float16.convert_float_to_float16(keep_io_types=True)`: half-precision
  weights and arithmetic, float32 inputs and outputs. On a CPU, ONNX Runtime runs most of it through
  inserted casts, so CPU figures for it are a proxy of what a GPU computes.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vaegen_infer.bundle import open_bundle, sha256_file
from vaegen_infer.errors import BundleError, UsageError
from vaegen_infer.io import save_json, write_bytes
from vaegen_infer.manifest import MANIFEST_FILE, GraphSpec, Variant

ROLES = ("encoder", "decoder")
REWRITE_TOLERANCE = 1e-4  # max |rewritten - original| in float before quantising
CALIBRATION_IMAGES = 512
PARITY_ROWS = 256
WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


# -- the sub-pixel rewrite of ConvTranspose ---------------------------------------------------


@dataclass(frozen=True)
class Deconv:
    """One transposed convolution: y = ConvTranspose(x, weight, bias), x (N, Cin, H, W)."""

    weight: np.ndarray  # (Cin, Cout, k, k) float32, ONNX ConvTranspose layout
    bias: np.ndarray  # (Cout,) float32
    stride: int
    pad: int  # the same on all four sides
    height: int  # input spatial size
    width: int

    @property
    def cin(self) -> int:
        return int(self.weight.shape[0])

    @property
    def cout(self) -> int:
        return int(self.weight.shape[1])

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[2])

    def out_size(self, n: int) -> int:
        """Output length along an axis of input length n (no output_padding, dilation 1)."""
        return (n - 1) * self.stride - 2 * self.pad + self.kernel

    def useful_flops(self, batch: int) -> int:
        """2 FLOPs per multiply-add of the transposed convolution itself: 2 * N * Cin * H * W * Cout * k * k."""
        return 2 * batch * self.cin * self.height * self.width * self.cout * self.kernel**2


def subpixel_weights(d: Deconv, kc: int, pc: int, offset: int, mode: str = "DCR") -> np.ndarray:
    """The Conv weight (s*s*Cout, Cin, kc, kc) that computes every output phase of the transposed conv.

    Conv (kernel kc, pad pc) output position p reads input rows p - pc + dh, dh in [0, kc).
    DepthToSpace(s) puts phase r of position p at row s*p + r; a Slice starting at `offset` makes that
    output row oh = s*p + r - offset. The transposed conv sends input row ih through tap kh to
    oh = s*ih - pad + kh, so the Conv tap dh of phase r carries
        kh = oh + pad - s*ih = r - offset + pad + s*(pc - dh)        (a zero where kh is outside [0, k)).
    Same along columns. Raises ValueError unless every tap of W lands exactly once per phase, so a
    wrong (kc, pc, offset) cannot build a graph that is silently wrong.

    Channel order: DCR (DepthToSpace's default) reads channel (rh*s + rw)*Cout + co, phase-major;
    CRD reads co*s*s + rh*s + rw."""
    s, k = d.stride, d.kernel
    w = np.zeros((s, s, d.cout, d.cin, kc, kc), dtype=np.float32)  # (rh, rw, co, ci, dh, dw)
    wt = d.weight.transpose(1, 0, 2, 3)  # (Cout, Cin, k, k)
    used = np.zeros((s, s, k, k), dtype=np.int64)  # how often each phase uses each tap
    for rh in range(s):
        for rw in range(s):
            for dh in range(kc):
                kh = rh - offset + d.pad + s * (pc - dh)
                if not 0 <= kh < k:
                    continue
                for dw in range(kc):
                    kw = rw - offset + d.pad + s * (pc - dw)
                    if 0 <= kw < k:
                        w[rh, rw, :, :, dh, dw] = wt[:, :, kh, kw]
                        used[rh, rw, kh, kw] += 1
    # Phase (rh, rw) owns the taps kh = rh - offset + pad (mod s), likewise kw; each exactly once.
    for rh in range(s):
        for rw in range(s):
            want = np.zeros((k, k), dtype=np.int64)
            want[(rh - offset + d.pad) % s :: s, (rw - offset + d.pad) % s :: s] = 1
            if not np.array_equal(used[rh, rw], want):
                raise ValueError(f"kernel {kc}, pad {pc}, offset {offset} do not cover phase ({rh}, {rw})")
    if mode == "DCR":
        return w.reshape(s * s * d.cout, d.cin, kc, kc)
    if mode == "CRD":
        return w.transpose(2, 0, 1, 3, 4, 5).reshape(d.cout * s * s, d.cin, kc, kc)
    raise ValueError(f"mode must be DCR or CRD, not {mode!r}")


def subpixel_plan(d: Deconv, exact: bool = False) -> tuple[int, int, int]:
    """The smallest Conv (kernel kc, pad pc, Slice offset) that computes `d` as a sub-pixel conv.

    Kernels from ceil(k / s) up: the fewer zeros multiplied, the better (for stride 2, kernel 4,
    pad 1 that is 2x2, pad 1, offset 1: 1.31x the useful multiply-adds, against 2.25x for 3x3).
    `exact`: only plans whose phases are the output with nothing to crop (offset 0), so that the
    phase tensor (N, s*s*Cout, H', W') is the output itself, interleaved (3x3, pad 1 above)."""
    s, k = d.stride, d.kernel
    ho, wo = d.out_size(d.height), d.out_size(d.width)
    for kc in range(max(1, math.ceil(k / s)), k + 1):
        for pc in range(kc):
            for offset in range(1 if exact else s):
                conv_h, conv_w = d.height + 2 * pc - kc + 1, d.width + 2 * pc - kc + 1
                if offset + ho > s * conv_h or offset + wo > s * conv_w:
                    continue
                if exact and (s * conv_h != ho or s * conv_w != wo):
                    continue
                try:
                    subpixel_weights(d, kc, pc, offset)
                except ValueError:
                    continue
                return kc, pc, offset
    raise ValueError(f"no {'exact ' if exact else ''}sub-pixel form for kernel {k}, stride {s}, pad {d.pad}")


def fused_tail_weights(first: Deconv, tail: Deconv) -> tuple[np.ndarray, int, int, int]:
    """The next transposed conv `tail`, rewritten to read `first`'s phase tensor directly.

    With an exact plan, first's output Y is its phases P (N, s*s*C, H, W) interleaved:
    Y[c, s*p + rh, s*q + rw] = P[(rh*s + rw)*C + c, p, q] (DCR). The tail sends Y[c, ih] through tap kh
    to o = s2*ih - p2 + kh = (s*s2)*p - p2 + (s2*rh + kh): one ConvTranspose of P with stride s*s2,
    kernel s2*(s - 1) + k2 and the same pad, whose tap a = s2*rh + kh of channel (rh, rw, c) is the
    tail's tap kh of channel c. Each phase owns its own input channels, so nothing overlaps: exact.
    Elementwise ops between the two (Relu) commute with the interleave. Returns (weight
    (s*s*C, Cout2, K', K'), stride, kernel, pad)."""
    s, s2, k2 = first.stride, tail.stride, tail.kernel
    c = first.cout
    kk = s2 * (s - 1) + k2
    w = np.zeros((s, s, c, tail.cout, kk, kk), dtype=np.float32)  # (rh, rw, c, co, a, b)
    for rh in range(s):
        for rw in range(s):
            w[rh, rw, :, :, s2 * rh : s2 * rh + k2, s2 * rw : s2 * rw + k2] = tail.weight
    return w.reshape(s * s * c, tail.cout, kk, kk), s * s2, kk, tail.pad


def subpixel_gather_index(d: Deconv, kc: int, pc: int, offset: int) -> np.ndarray:
    """Indices into the flattened Conv output (s*s*Cout * conv_h * conv_w,) that give the transposed
    conv's output (Cout, Ho, Wo) flattened: DepthToSpace (DCR) and the Slice in one Gather.

    Output (co, oh, ow) is phase (rh, rw) = ((oh + offset) % s, (ow + offset) % s) at Conv position
    ((oh + offset) // s, (ow + offset) // s); DCR puts that phase in channel (rh*s + rw)*Cout + co."""
    s = d.stride
    ho, wo = d.out_size(d.height), d.out_size(d.width)
    conv_h, conv_w = d.height + 2 * pc - kc + 1, d.width + 2 * pc - kc + 1
    co, oh, ow = np.meshgrid(np.arange(d.cout), np.arange(ho) + offset, np.arange(wo) + offset, indexing="ij")
    channel = ((oh % s) * s + ow % s) * d.cout + co
    return (channel * conv_h * conv_w + (oh // s) * conv_w + ow // s).reshape(-1).astype(np.int64)


def subpixel_nodes(d: Deconv, x: str, y: str, prefix: str) -> tuple[list[Any], dict[str, np.ndarray]]:
    """Nodes x (N, Cin, H, W) -> Conv (N, s*s*Cout, conv_h, conv_w) -> Reshape (N, -1) -> Gather ->
    Reshape -> y (N, Cout, Ho, Wo), and their initializers (names start with `prefix`).

    One Gather, not DepthToSpace + Slice: ONNX Runtime's DepthToSpace and Slice ran longer than the
    int8 Conv itself (profiled at batch 512: 22 and 13 ms against 15 ms), and a Gather, which the
    quantizer keeps in 8 bits, both interleaves the phases and crops."""
    from onnx import helper

    kc, pc, offset = subpixel_plan(d)
    s = d.stride
    ho, wo = d.out_size(d.height), d.out_size(d.width)
    inits = {
        f"{prefix}_w": subpixel_weights(d, kc, pc, offset),
        f"{prefix}_b": np.tile(d.bias, s * s),
        f"{prefix}_flat": np.array([0, -1], dtype=np.int64),
        f"{prefix}_index": subpixel_gather_index(d, kc, pc, offset),
        f"{prefix}_shape": np.array([0, d.cout, ho, wo], dtype=np.int64),
    }
    nodes = [
        helper.make_node(
            "Conv", [x, f"{prefix}_w", f"{prefix}_b"], [f"{prefix}_phases"], name=f"{prefix}_conv",
            kernel_shape=[kc, kc], pads=[pc] * 4,
        ),
        helper.make_node("Reshape", [f"{prefix}_phases", f"{prefix}_flat"], [f"{prefix}_pf"], name=f"{prefix}_r1"),
        helper.make_node(
            "Gather", [f"{prefix}_pf", f"{prefix}_index"], [f"{prefix}_g"], name=f"{prefix}_gather", axis=1
        ),
        helper.make_node("Reshape", [f"{prefix}_g", f"{prefix}_shape"], [y], name=f"{prefix}_r2"),
    ]  # fmt: skip
    return nodes, inits


def _deconv_of(node: Any, inits: dict[str, np.ndarray], shapes: dict[str, list[int]]) -> Deconv | None:
    """The Deconv a ConvTranspose node computes, or None if it is outside what the rewrite handles."""
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if len(node.input) < 2 or node.input[1] not in inits or node.input[0] not in shapes:
        return None
    weight = inits[node.input[1]].astype(np.float32)  # (Cin, Cout, k, k)
    k = weight.shape[2]
    strides, pads = list(attrs.get("strides", [1, 1])), list(attrs.get("pads", [0, 0, 0, 0]))
    ok = (
        attrs.get("group", 1) == 1
        and weight.ndim == 4
        and weight.shape[2] == weight.shape[3]
        and list(attrs.get("kernel_shape", [k, k])) == [k, k]
        and strides[0] == strides[1]
        and len(set(pads)) == 1
        and list(attrs.get("dilations", [1, 1])) == [1, 1]
        and list(attrs.get("output_padding", [0, 0])) == [0, 0]
        and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
        and "output_shape" not in attrs
    )
    if not ok:
        return None
    cout = weight.shape[1]
    bias = (
        inits[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else np.zeros(cout, np.float32)
    )
    h, w = shapes[node.input[0]][2:]
    return Deconv(weight, bias, int(strides[0]), int(pads[0]), int(h), int(w))


def subpixel_rewrite(model: Any, skip: frozenset[str] = frozenset()) -> tuple[Any, int]:
    """Every ConvTranspose of `model` (but those named in `skip`) rewritten as its sub-pixel Conv
    form -> (new model, how many).

    Raises BundleError naming a ConvTranspose the rewrite cannot express (grouped, dilated,
    asymmetric pads, output_padding)."""
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    shapes = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in [*g.value_info, *g.input, *g.output]
    }
    from onnx import helper

    consumers: dict[str, list[Any]] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in g.output}

    def only_consumer(tensor: str) -> Any | None:
        users = consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in outputs else None

    new_nodes: list[Any] = []
    new_inits: dict[str, np.ndarray] = {}
    dropped: set[str] = set()
    replaced: set[str] = set()  # names of nodes already rewritten as part of a fusion
    count = 0
    for node in g.node:
        if node.name in replaced:
            continue
        if node.op_type != "ConvTranspose" or node.name in skip:
            new_nodes.append(node)
            continue
        d = _deconv_of(node, inits, shapes)
        if d is None:
            raise BundleError(f"ConvTranspose {node.name!r} has attributes the sub-pixel rewrite does not handle")
        prefix = f"subpixel{count}"
        # Followed (through a Relu) by a ConvTranspose that stays as it is: that one reads the phases
        # directly (fused_tail_weights), so the interleave, a per-element Gather, disappears.
        act = only_consumer(node.output[0])
        act = act if act is not None and act.op_type == "Relu" else None
        tail = only_consumer(act.output[0] if act is not None else node.output[0])
        tail_d = None
        if tail is not None and tail.op_type == "ConvTranspose" and tail.name in skip:
            tail_d = _deconv_of(tail, inits, shapes)
        try:
            plan = subpixel_plan(d, exact=True) if tail_d is not None else None
        except ValueError:
            plan = None
        if tail is not None and tail_d is not None and plan is not None:
            kc, pc, offset = plan
            s = d.stride
            phases = f"{prefix}_phases"
            new_inits[f"{prefix}_w"] = subpixel_weights(d, kc, pc, offset)
            new_inits[f"{prefix}_b"] = np.tile(d.bias, s * s)
            new_nodes.append(
                helper.make_node(
                    "Conv", [node.input[0], f"{prefix}_w", f"{prefix}_b"], [phases], name=f"{prefix}_conv",
                    kernel_shape=[kc, kc], pads=[pc] * 4,
                )
            )  # fmt: skip
            if act is not None:
                new_nodes.append(helper.make_node("Relu", [phases], [f"{prefix}_act"], name=act.name))
                phases = f"{prefix}_act"
            w2, stride2, k2, pad2 = fused_tail_weights(d, tail_d)
            new_inits[f"{prefix}_tail_w"] = w2
            new_inits[f"{prefix}_tail_b"] = tail_d.bias
            new_nodes.append(
                helper.make_node(
                    "ConvTranspose", [phases, f"{prefix}_tail_w", f"{prefix}_tail_b"], [tail.output[0]],
                    name=tail.name, kernel_shape=[k2, k2], strides=[stride2] * 2, pads=[pad2] * 4,
                )
            )  # fmt: skip
            replaced.update(n.name for n in (act, tail) if n is not None)
            dropped.update([*node.input[1:], *tail.input[1:]])
        else:
            nodes, extra = subpixel_nodes(d, node.input[0], node.output[0], prefix)
            new_nodes += nodes
            new_inits.update(extra)
            dropped.update(node.input[1:])
        count += 1
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(new_nodes)
    del out.graph.value_info[:]  # intermediate shapes changed; ONNX Runtime infers them again
    still_used = {i for n in new_nodes for i in n.input}
    kept = [i for i in out.graph.initializer if i.name not in dropped or i.name in still_used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    out.graph.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in new_inits.items())
    onnx.checker.check_model(out)
    return out, count


# -- calibration data -------------------------------------------------------------------------


def calibration_inputs(bundle_dir: Path, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for calibrating each graph: {"encoder": x (n, C, H, W), "decoder": z (n, D)}.

    Images: the first n training images of the bundle's own training data (model.json
    training.train_config.data), binarised with `seed` for binary data as training did. Codes:
    the float32 encoder's mu of the first half, prior draws (seed) for the second half: what the
    decoder sees when reconstructing and when sampling."""
    import vaegen_infer
    from train import data as datasets

    g = vaegen_infer.load(bundle_dir, providers="cpu")
    spec = (g.manifest.training.get("train_config") or {}).get("data")
    if not isinstance(spec, str):
        raise BundleError(f"{bundle_dir}/{MANIFEST_FILE} names no training data (training.train_config.data)")
    split = datasets.load(spec)
    x = split.to_float(np.asarray(split.x_train[:n]))  # (n, C, H, W) in [0, 1]
    rng = np.random.default_rng(seed)
    if g.manifest.image.data_kind == "binary":
        x = (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)
    mu, _ = g.encode(x)
    half = len(x) // 2
    z = np.concatenate([mu[:half], g.sample_latents(len(x) - half, seed=seed)]).astype(np.float32)
    return {"encoder": x, "decoder": z}


def sampled_inputs(bundle_dir: Path, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs with no training data at hand: codes drawn from the prior (seed) and the float32
    decoder's images of them (binarised with `seed` for binary data). Enough for measuring parity
    (fp16 needs no calibration), and all a GPU machine with only the runtime installed can make."""
    import vaegen_infer

    g = vaegen_infer.load(bundle_dir, providers="cpu")
    z = g.sample_latents(n, seed=seed)  # (n, D)
    x = g.decode(z)  # (n, C, H, W) in [0, 1]
    if g.manifest.image.data_kind == "binary":
        x = (np.random.default_rng(seed).random(x.shape, dtype=np.float32) < x).astype(np.float32)
    return {"encoder": x, "decoder": z}


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over one array, in batches."""

    def __init__(self, name: str, data: np.ndarray, batch: int = 64) -> None:
        self._batches = iter([{name: data[i : i + batch]} for i in range(0, len(data), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


# -- building the variants --------------------------------------------------------------------


def _tail_nodes(model: Any) -> list[str]:
    """Names of the graph's last weight layer (Conv, ConvTranspose, Gemm, MatMul with a constant weight) and every
    node after it, in graph order: these stay float in the int8 variant."""
    inits = {i.name for i in model.graph.initializer}
    nodes = list(model.graph.node)
    weights = [i for i, n in enumerate(nodes) if n.op_type in WEIGHT_OPS and any(x in inits for x in n.input)]
    last = max(weights, default=len(nodes))
    return [n.name for n in nodes[last:]]


def _name_nodes(model: Any) -> None:
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type.lower()}_{i}"


def _session(data: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _run(data: bytes, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    s = _session(data)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, feed), strict=True))


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: round(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))), 6) for k in a}


def _mean_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: round(float(np.mean(np.abs(a[k].astype(np.float64) - b[k]))), 6) for k in a}


def int8_graph(model: Any, input_name: str, calibration: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """The statically quantised copy of one float32 graph -> (serialized model, what was done)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static, registry
    from onnxruntime.quantization.operators.direct_q8 import QDQDirect8BitOp

    logging.getLogger().setLevel(logging.ERROR)  # its advice to run a pre-processing step, on every call
    # DepthToSpace only moves values, like Reshape and Transpose, which the quantizer already keeps in
    # 8 bits; unlisted, it would run in float between a DequantizeLinear and a QuantizeLinear, which
    # cost more than the int8 Conv before it (profiled at batch 512: 38 + 16 ms against 15 ms).
    registry.QDQRegistry.setdefault("DepthToSpace", QDQDirect8BitOp)

    _name_nodes(model)
    # The float tail is not rewritten: as ConvTranspose, ONNX Runtime runs it faster in float.
    keep_float = _tail_nodes(model)
    rewritten, count = subpixel_rewrite(model, skip=frozenset(keep_float))
    probe = calibration[: min(len(calibration), 64)]
    before = _run(model.SerializeToString(), {input_name: probe})
    after = _run(rewritten.SerializeToString(), {input_name: probe})
    diff = max(_max_diff(before, after).values())
    if not diff <= REWRITE_TOLERANCE:  # NaN counts as a failure
        raise BundleError(
            f"the sub-pixel rewrite differs from the original graph by {diff:.2e} (> {REWRITE_TOLERANCE})"
        )
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(rewritten, str(src))
        quantize_static(
            str(src), str(dst), _Reader(input_name, calibration), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep_float,
            calibrate_method=CalibrationMethod.MinMax,
        )  # fmt: skip
        data = dst.read_bytes()
    info = {
        "convtranspose_rewritten": count,
        "rewrite_max_abs_diff": diff,
        "kept_float": keep_float,
    }
    return data, info


def fp16_graph(model: Any) -> bytes:
    """Half-precision copy of one graph, float32 inputs and outputs."""
    from onnx import TensorProto, helper
    from onnxconverter_common.float16 import convert_float_to_float16

    # The decoder's Sigmoid reads `logits`, itself a graph output; converted, the converter gives the
    # Sigmoid a float16 output that ONNX Runtime rejects (onnxconverter-common 1.16), so it stays float.
    with warnings.catch_warnings():  # one per tiny weight clamped to float16's range: expected, not news
        warnings.filterwarnings("ignore", message=".*will be truncated", category=UserWarning)
        half = convert_float_to_float16(model, keep_io_types=True, op_block_list=["Sigmoid"])
    # Even so the converter leaves a float16 Cast on the Sigmoid's output (graph output `x`): cast back.
    for out in half.graph.output:
        if out.type.tensor_type.elem_type == TensorProto.FLOAT16:
            inner = f"{out.name}_fp16"
            for node in half.graph.node:
                node.output[:] = [inner if o == out.name else o for o in node.output]
                node.input[:] = [inner if i == out.name else i for i in node.input]
            half.graph.node.append(helper.make_node("Cast", [inner], [out.name], to=TensorProto.FLOAT))
            out.type.tensor_type.elem_type = TensorProto.FLOAT
    kinds = {o.name: o.type.tensor_type.elem_type for o in [*half.graph.input, *half.graph.output]}
    if set(kinds.values()) != {TensorProto.FLOAT}:
        raise BundleError(f"the fp16 graph's inputs and outputs are not all float32: {kinds}")
    return half.SerializeToString()


def build_variants(
    bundle_dir: str | Path, int8: bool, fp16: bool, calibration_images: int = CALIBRATION_IMAGES
) -> dict[str, Any]:
    """Add the requested variants to a bundle directory (files and model.json); return each
    variant's parity summary. Rewrites model.json atomically after every graph file is written."""
    import onnx

    import vaegen_infer

    if not (int8 or fp16):
        raise UsageError("choose at least one variant: --int8 and/or --fp16")
    bundle = open_bundle(Path(bundle_dir))
    if bundle.manifest.label_input:
        raise UsageError(
            f"model '{bundle.manifest.name}' has a label-conditioned decoder (supervised AAE); reduced-precision "
            "variants are not made for those yet"
        )
    path = bundle.path
    manifest = bundle.manifest
    # int8 is calibrated on training images; fp16 alone needs only parity inputs, drawn from the model
    calib = calibration_inputs(path, calibration_images) if int8 else sampled_inputs(path, PARITY_ROWS)
    rng = np.random.default_rng(1)
    parity_in = {
        "encoder": calib["encoder"][:PARITY_ROWS],
        "decoder": np.concatenate([calib["decoder"][: PARITY_ROWS // 2], rng.standard_normal(
            (PARITY_ROWS // 2, manifest.latent_dim), dtype=np.float32)]),
    }  # fmt: skip
    reference = {
        role: _run(bundle.file(role).read_bytes(), {next(iter(manifest.graph(role).inputs)): parity_in[role]})
        for role in ROLES
    }
    wanted = [p for p, on in (("int8", int8), ("fp16", fp16)) if on]
    summary: dict[str, Any] = {}
    for precision in wanted:
        specs: dict[str, GraphSpec] = {}
        # The max is one pixel's worst case (int8 moves a few pixels on a steep edge by up to ~0.8 on
        # mnist-vae-2d); the mean is what a reader compares. Neither replaces the quality protocol.
        parity: dict[str, Any] = {"rows": PARITY_ROWS, "max_abs_diff": {}, "mean_abs_diff": {}}
        build: dict[str, Any] = {}
        for role in ROLES:
            float_spec = manifest.graph(role)
            input_name = next(iter(float_spec.inputs))
            model = onnx.load(str(bundle.file(role)))
            if precision == "int8":
                data, info = int8_graph(model, input_name, calib[role])
                build[role] = info
            else:
                data = fp16_graph(model)
            name = f"{role}.{precision}.onnx"
            write_bytes(path / name, lambda fh, data=data: fh.write(data))
            got = _run(data, {input_name: parity_in[role]})
            parity["max_abs_diff"][role] = _max_diff(got, reference[role])
            parity["mean_abs_diff"][role] = _mean_diff(got, reference[role])
            specs[role] = GraphSpec(name, sha256_file(path / name), float_spec.inputs, float_spec.outputs)
        images = f"the first {PARITY_ROWS} calibration images" if int8 else f"{PARITY_ROWS} decoded prior samples"
        parity["inputs"] = (
            f"encoder: {images}; decoder: {PARITY_ROWS // 2} of their codes and {PARITY_ROWS // 2} "
            "standard-normal draws (seed 1); onnxruntime CPU, against the float32 graphs"
        )
        quality: dict[str, Any] = {"built_by": f"python -m train variants {path.name} --{precision}"}
        if precision == "int8":
            source = (manifest.training.get("train_config") or {}).get("data")
            quality["calibration"] = (
                f"MinMax over the first {calibration_images} training images ({source}); "
                "QDQ, per-channel int8 weights, uint8 activations; ConvTranspose as sub-pixel Conv"
            )
            quality["build"] = build
        else:
            quality["note"] = (
                "onnxconverter-common float16, float32 inputs and outputs; on CPU ONNX Runtime inserts casts"
            )
        manifest.variants[precision] = Variant(specs["encoder"], specs["decoder"], parity, quality)
        summary[precision] = parity
    save_json(path / MANIFEST_FILE, manifest.to_dict())
    for precision in wanted:  # the runtime must accept what was written
        vaegen_infer.load(path, providers="cpu", precision=precision).sample(2, seed=0)
    return summary
