"""Count a graph's floating-point operations from its ONNX file, with shape inference.

    python benchmarks/flops.py exported/mnist-vae/decoder.onnx [--batch 1]

Counted: the multiply-adds of Gemm, MatMul, Conv and ConvTranspose, 2 FLOPs each (the convention
of GEMM rates, so the two compare). Bias adds, activations and reshapes are left out: they are
under 1% of these graphs' work and run at memory speed, not at the GEMM rate. The batch axis is
fixed to `batch` before shape inference, so every shape is concrete.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

COUNTED = ("Gemm", "MatMul", "Conv", "ConvTranspose")


def _shapes(model: Any) -> dict[str, list[int]]:
    """Tensor name -> concrete shape, for inputs, initializers, and everything shape inference found."""
    from onnx import numpy_helper

    out: dict[str, list[int]] = {}
    g = model.graph
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            out[vi.name] = [d.dim_value for d in dims]
    for init in g.initializer:
        out[init.name] = list(numpy_helper.to_array(init).shape)
    return out


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def node_flops(node: Any, shapes: dict[str, list[int]]) -> int:
    """FLOPs (2 per multiply-add) of one node; 0 for node types that are not counted."""
    op = node.op_type
    if op == "Gemm":  # Y (M, N) = A (M, K) @ B (K, N), either transposed by attribute
        a, b = shapes[node.input[0]], shapes[node.input[1]]
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
        n = b[0] if _attr(node, "transB", 0) else b[1]
        return 2 * m * k * n
    if op == "MatMul":  # (..., M, K) @ (..., K, N), batch axes broadcast
        a, b = shapes[node.input[0]], shapes[node.input[1]]
        y = shapes[node.output[0]]
        k = a[-1]
        return 2 * math.prod(y) * k
    if op == "Conv":  # Y (N, Cout, Ho, Wo); W (Cout, Cin / group, kh, kw): each output sums Cin/g * kh * kw
        w, y = shapes[node.input[1]], shapes[node.output[0]]
        return 2 * math.prod(y) * math.prod(w[1:])
    if (
        op == "ConvTranspose"
    ):  # X (N, Cin, Hi, Wi); W (Cin, Cout / group, kh, kw): each input scatters to Cout/g * kh * kw
        x, w = shapes[node.input[0]], shapes[node.input[1]]
        return 2 * math.prod(x) * math.prod(w[1:])
    return 0


def graph_flops(path: str | Path, batch: int = 1) -> dict[str, int]:
    """FLOPs per counted node (by node name) of the graph at `path`, at batch size `batch`."""
    import onnx

    model = onnx.load(str(path))
    for inp in model.graph.input:
        dim0 = inp.type.tensor_type.shape.dim[0]
        dim0.ClearField("dim_param")
        dim0.dim_value = batch
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = _shapes(model)
    out: dict[str, int] = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type in COUNTED:
            out[f"{node.op_type}:{node.name or i}"] = node_flops(node, shapes)
    return out


def flops_per_item(path: str | Path) -> int:
    """Total counted FLOPs for one batch item (these graphs' work is linear in the batch size)."""
    return sum(graph_flops(path, batch=1).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("graph", type=Path)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    per_node = graph_flops(args.graph, args.batch)
    for name, f in per_node.items():
        print(f"{name:40s} {f / 1e6:10.3f} MFLOP")
    print(f"{'total':40s} {sum(per_node.values()) / 1e6:10.3f} MFLOP at batch {args.batch}")


if __name__ == "__main__":
    main()
