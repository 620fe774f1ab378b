"""The decoder's transposed convolution: the levers issue 17 left to try, measured through the library.

    python benchmarks/decoder_levers.py [--bundle exported/mnist-vae] [--batches 64,512,4096] [--rounds 5]
                                        [--int8-bundle DIR] [--out benchmarks/results]

Issue 6 timed four rewrites of the first ConvTranspose as standalone layers
(benchmarks/convtranspose_variants.py); all were slower at batch 512. This script times what was left,
each as a whole `Model.decode` call through the library (the split runner on every core unless the
lever changes the runner), so a lever counts only if a user would see it:

Runner levers, on the shipped float32 graph:
- `reference`: what ships: batches of 64 rows or more cut into about 4 chunks per thread
  (runners.SplitRunner), each chunk on one single-threaded session.
- `chunks 2/thread`, `chunks 1/thread`: a bigger per-chunk batch (ceil(n / (k * threads)) rows).
- `split + spinning pool`: the split runner whose session has ONNX Runtime's own intra-op threads
  (one per core) with spinning on, so each chunk is also parallel inside its operators.
- `intra-op, spin on` / `intra-op, spin off`: no split; the whole batch on ONNX Runtime's pool
  (`parallel="intra-op"` is spin off).

Graph levers, run by the reference runner:
- `channels-last (NHWC)`: the first ConvTranspose computed in NHWC as one GEMM. The fc layer's rows are
  permuted so it writes (N, 7, 7, 64) channels-last at no cost; Pad + four Slices + Concat build the
  2x2 patches (N, 8, 8, 256); one Gemm with the bias and the Relu fused computes the four output
  phases (N*64, 4*32) (the exact 2x2 sub-pixel form of train/variants.py, 1.31x the useful
  multiply-adds); Reshape + Transpose interleave the phases, which also turns the layout back to
  NCHW, and a Slice crops [1:15]. The second ConvTranspose is unchanged.
- `fused sub-pixel (float)`: train/variants.py's float rewrite before quantising, unquantised: the
  first ConvTranspose as a 3x3 Conv computing every phase, the second rewritten to read those phases
  directly (stride 4, kernel 6), so no interleave is left (a graph-level fusion of the layout ops).
- `int8`: the bundle's int8 variant (`python -m train variants DIR --int8`; built here in a temporary
  copy unless `--int8-bundle` names one), whose QLinearConv nodes ONNX Runtime already runs NHWC.

Each rewritten graph must match the shipped one within 1e-4 on the timed latents or the script stops.
Timing: every configuration is warmed up, then timed in `--rounds` interleaved rounds (a fresh
order each round, so load from other processes falls on all alike), enough calls per round to fill
`--budget` seconds; p50 over all calls. A second table times the graphs alone on one thread at batch
512 (one single-threaded session each, no split), to separate what the graph buys from the runner.
Writes <out>/decoder_levers.{json,md}.
"""

from __future__ import annotations

import argparse
import random
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.profile_nodes import profile  # noqa: E402
from vaegen_infer.bench import machine_info, repeats_for, time_calls, warm_up  # noqa: E402
from vaegen_infer.io import save_json, write_bytes  # noqa: E402

TOLERANCE = 1e-4  # max |rewritten - shipped| of the decoded images
WIN = 0.95  # a lever is kept only if it is at least 5% faster than the reference at every batch


# -- graphs -------------------------------------------------------------------------------------


def _chain(model: Any) -> tuple[Any, Any, Any, Any, Any]:
    """The decoder's (Gemm, Relu, Reshape, ConvTranspose, Relu) before its last ConvTranspose; the
    NHWC rewrite handles this shape of decoder only (the shipped MNIST VAEs and AAEs)."""
    nodes = list(model.graph.node)
    first = next((i for i, n in enumerate(nodes) if n.op_type == "ConvTranspose"), None)
    want = ["Gemm", "Relu", "Reshape", "ConvTranspose", "Relu"]
    if first is None or first < 3 or [n.op_type for n in nodes[first - 3 : first + 2]] != want:
        raise SystemExit(
            "decoder_levers: the NHWC rewrite needs a decoder Gemm -> Relu -> Reshape -> ConvTranspose -> Relu"
        )
    gemm, relu, reshape, deconv, act = nodes[first - 3 : first + 2]
    return gemm, relu, reshape, deconv, act


def nhwc_decoder(model: Any) -> Any:
    """The decoder with its first ConvTranspose computed channels-last as one GEMM (see the module doc)."""
    import onnx
    from onnx import helper, numpy_helper

    from train.variants import Deconv, subpixel_plan, subpixel_weights

    gemm, relu, reshape, deconv, act = _chain(model)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    if attrs.get("transB") != 1:
        raise SystemExit("decoder_levers: the fc layer before the ConvTranspose must be a Gemm with transB=1")
    w_fc, b_fc = inits[gemm.input[1]], inits[gemm.input[2]]  # (C*H*W, K), (C*H*W,)
    shape = [int(v) for v in inits[reshape.input[1]]]  # [N, C, H, W]
    c, h, w = shape[1:]
    weight = inits[deconv.input[1]].astype(np.float32)  # (Cin, Cout, k, k)
    dattrs = {a.name: helper.get_attribute_value(a) for a in deconv.attribute}
    bias = inits[deconv.input[2]].astype(np.float32)
    d = Deconv(weight, bias, int(dattrs["strides"][0]), int(dattrs["pads"][0]), h, w)
    kc, pc, offset = subpixel_plan(d)  # (2, 1, 1) for kernel 4, stride 2, pad 1
    s, cout = d.stride, d.cout
    ho, wo = d.out_size(h), d.out_size(w)
    conv_h, conv_w = h + 2 * pc - kc + 1, w + 2 * pc - kc + 1
    # fc rows in (h, w, c) order: row (y*W + x)*C + ch of the new Gemm is row ch*H*W + y*W + x of the old
    ch, yy, xx = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    perm = np.empty(c * h * w, dtype=np.int64)
    perm[((yy * w + xx) * c + ch).ravel()] = (ch * h * w + yy * w + xx).ravel()
    # (s*s*Cout, Cin, kc, kc) -> patch rows (dh, dw, ci), columns = phase channels (DCR)
    w_phase = subpixel_weights(d, kc, pc, offset).transpose(2, 3, 1, 0).reshape(kc * kc * c, s * s * cout)
    p = "nhwc"
    new_inits = {
        f"{p}_fc_w": w_fc[perm], f"{p}_fc_b": b_fc[perm],
        f"{p}_shape_in": np.array([-1, h, w, c], np.int64),
        f"{p}_pads": np.array([0, pc, pc, 0, 0, pc, pc, 0], np.int64),
        f"{p}_rows": np.array([-1, kc * kc * c], np.int64),
        f"{p}_w": w_phase, f"{p}_b": np.tile(d.bias, s * s),
        f"{p}_phases": np.array([-1, conv_h, conv_w, s, s, cout], np.int64),
        f"{p}_image": np.array([-1, cout, s * conv_h, s * conv_w], np.int64),
        f"{p}_crop_lo": np.array([offset, offset], np.int64),
        f"{p}_crop_hi": np.array([offset + ho, offset + wo], np.int64),
        f"{p}_crop_axes": np.array([2, 3], np.int64),
        f"{p}_axes12": np.array([1, 2], np.int64),
    }  # fmt: skip
    nodes = [
        helper.make_node("Gemm", [gemm.input[0], f"{p}_fc_w", f"{p}_fc_b"], [f"{p}_fc"], transB=1),
        helper.make_node("Relu", [f"{p}_fc"], [f"{p}_fc_relu"]),
        helper.make_node("Reshape", [f"{p}_fc_relu", f"{p}_shape_in"], [f"{p}_x"]),  # (N, H, W, C)
        helper.make_node("Pad", [f"{p}_x", f"{p}_pads"], [f"{p}_xp"]),  # (N, H+2pc, W+2pc, C)
    ]
    taps = []
    for dh in range(kc):
        for dw in range(kc):
            lo, hi = f"{p}_lo{dh}{dw}", f"{p}_hi{dh}{dw}"
            new_inits[lo] = np.array([dh, dw], np.int64)
            new_inits[hi] = np.array([dh + conv_h, dw + conv_w], np.int64)
            nodes.append(helper.make_node("Slice", [f"{p}_xp", lo, hi, f"{p}_axes12"], [f"{p}_t{dh}{dw}"]))
            taps.append(f"{p}_t{dh}{dw}")
    nodes += [
        helper.make_node("Concat", taps, [f"{p}_patches"], axis=3),  # (N, conv_h, conv_w, kc*kc*C)
        helper.make_node("Reshape", [f"{p}_patches", f"{p}_rows"], [f"{p}_prow"]),  # (N*conv_h*conv_w, kc*kc*C)
        helper.make_node("Gemm", [f"{p}_prow", f"{p}_w", f"{p}_b"], [f"{p}_y"]),  # (.., s*s*Cout)
        helper.make_node("Relu", [f"{p}_y"], [f"{p}_yr"]),
        helper.make_node("Reshape", [f"{p}_yr", f"{p}_phases"], [f"{p}_y6"]),  # (N, ch, cw, s, s, Cout)
        helper.make_node("Transpose", [f"{p}_y6"], [f"{p}_yt"], perm=[0, 5, 1, 3, 2, 4]),  # (N, Cout, ch, s, cw, s)
        helper.make_node("Reshape", [f"{p}_yt", f"{p}_image"], [f"{p}_full"]),  # (N, Cout, s*ch, s*cw)
        helper.make_node("Slice", [f"{p}_full", f"{p}_crop_lo", f"{p}_crop_hi", f"{p}_crop_axes"], [act.output[0]]),
    ]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    old = {n.name for n in (gemm, relu, reshape, deconv, act)}
    kept = [n for n in model.graph.node if n.name not in old]
    at = [n.name for n in model.graph.node].index(gemm.name)
    del out.graph.node[:]
    out.graph.node.extend([*kept[:at], *nodes, *kept[at:]])
    del out.graph.value_info[:]
    used = {i for n in out.graph.node for i in n.input}
    keep_inits = [i for i in out.graph.initializer if i.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(keep_inits)
    out.graph.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in new_inits.items())
    onnx.checker.check_model(out)
    return out


def fused_float_decoder(model: Any) -> Any:
    """train/variants.py's float sub-pixel rewrite (the int8 variant's graph before quantising)."""
    from train.variants import subpixel_rewrite

    last = [n.name for n in model.graph.node if n.op_type == "ConvTranspose"][-1]
    out, _ = subpixel_rewrite(model, skip=frozenset({last}))
    return out


def bundle_with_decoder(src: Path, dst: Path, decoder: Any) -> Path:
    """A copy of bundle `src` at `dst` whose decoder.onnx is `decoder` (model.json's sha256 updated)."""
    import json

    import onnx

    from vaegen_infer.bundle import sha256_file

    shutil.copytree(src, dst)
    for stale in dst.glob("*.int8.onnx"):
        stale.unlink()
    onnx.save(decoder, str(dst / "decoder.onnx"))
    manifest = json.loads((dst / "model.json").read_text())
    manifest["graphs"]["decoder"]["sha256"] = sha256_file(dst / "decoder.onnx")
    manifest.pop("variants", None)
    write_text(dst / "model.json", json.dumps(manifest, indent=2) + "\n")
    return dst


def write_text(path: Path, text: str) -> None:
    write_bytes(path, lambda fh: fh.write(text.encode()))


# -- runner levers ------------------------------------------------------------------------------


@contextmanager
def chunks_per_thread(k: int) -> Iterator[None]:
    """SplitRunner.chunks cutting about k chunks per thread instead of the shipped 4."""
    from vaegen_infer import runners

    original = runners.SplitRunner.chunks

    def chunks(self: runners.SplitRunner, n: int) -> list[tuple[int, int]]:
        if not self._splits(n):
            return [(0, n)]
        size = max(self.min_rows, -(-n // (k * self.parts)))
        return [(lo, min(lo + size, n)) for lo in range(0, n, size)]

    runners.SplitRunner.chunks = chunks  # type: ignore[method-assign]
    try:
        yield
    finally:
        runners.SplitRunner.chunks = original  # type: ignore[method-assign]


@contextmanager
def spinning_pool(threads: int | None = None) -> Iterator[None]:
    """Sessions made inside spin (ONNX Runtime's default); with `threads`, they also get that many
    intra-op threads, the split runner's single-threaded session included."""
    from vaegen_infer import providers

    saved = providers.intra_op_threads, providers.SPINNING
    if threads is not None:
        providers.intra_op_threads = lambda request: threads  # type: ignore[assignment]
    providers.SPINNING = True
    try:
        yield
    finally:
        providers.intra_op_threads, providers.SPINNING = saved


# -- timing -------------------------------------------------------------------------------------


def time_configs(
    configs: dict[str, tuple[Callable[[np.ndarray], Any], Callable[[], Any]]],
    z: np.ndarray,
    rounds: int,
    budget: float,
    seed: int,
) -> dict[str, list[float]]:
    """{name: seconds of every timed call}; each config is (decode, context manager factory)."""
    per_call = {}
    for name, (decode, context) in configs.items():
        with context():
            per_call[name] = warm_up(lambda d=decode: d(z), 3)  # sessions are made here, inside the context
    times: dict[str, list[float]] = {name: [] for name in configs}
    order = list(configs)
    rng = random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            decode, context = configs[name]
            with context():
                calls = repeats_for(per_call[name], budget, 3, 200)
                times[name] += time_calls(lambda d=decode: d(z), calls)
            time.sleep(0.03)  # a spinning pool stops spinning before the next config's calls
    return times


def one_thread_session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> None:
    import onnx

    import vaegen_infer as vi
    from benchmarks.flops import flops_per_item
    from benchmarks.latency import gemm_limit, gemm_rate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "exported" / "mnist-vae")
    parser.add_argument(
        "--int8-bundle", type=Path, help="a copy of --bundle with its int8 variant (default: built here)"
    )
    parser.add_argument("--batches", default="64,512,4096")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.25, help="seconds of timed calls per config and round")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/decoder_levers.py", *(sys.argv[1:] if argv is None else argv)])
    batches = [int(b) for b in args.batches.split(",")]
    meta_start = machine_info()
    gemm_start = gemm_rate(2048, 10)

    shipped = onnx.load(str(args.bundle / "decoder.onnx"))
    with tempfile.TemporaryDirectory(prefix="decoder-levers-") as tmp:
        work = Path(tmp)
        bundles = {
            "channels-last (NHWC)": bundle_with_decoder(args.bundle, work / "nhwc", nhwc_decoder(shipped)),
            "fused sub-pixel (float)": bundle_with_decoder(args.bundle, work / "fused", fused_float_decoder(shipped)),
        }
        int8_dir = args.int8_bundle
        if int8_dir is None:
            from train.variants import build_variants

            print("building the int8 variant in a temporary copy ...", flush=True)
            int8_dir = work / "int8"
            shutil.copytree(args.bundle, int8_dir)
            build_variants(int8_dir, int8=True, fp16=False)

        ref = vi.load(args.bundle, providers="cpu")
        models: dict[str, Any] = {"reference": ref}
        models.update({name: vi.load(path, providers="cpu") for name, path in bundles.items()})
        models["int8"] = vi.load(int8_dir, providers="cpu", precision="int8")
        models["split + spinning pool"] = vi.load(args.bundle, providers="cpu")
        models["intra-op, spin on"] = vi.load(args.bundle, providers="cpu", parallel="intra-op")
        models["intra-op, spin off"] = vi.load(args.bundle, providers="cpu", parallel="intra-op")
        cores = meta_start["physical_cores"]

        Config = tuple[Callable[[np.ndarray], Any], Callable[[], Any]]

        def config(model: Any, context: Callable[[], Any] = nullcontext) -> Config:
            return (lambda z: model.decode(z)), context

        configs = {
            "reference": config(ref),
            "chunks 2/thread": config(ref, lambda: chunks_per_thread(2)),
            "chunks 1/thread": config(ref, lambda: chunks_per_thread(1)),
            "split + spinning pool": config(models["split + spinning pool"], lambda: spinning_pool(cores)),
            "intra-op, spin on": config(models["intra-op, spin on"], spinning_pool),
            "intra-op, spin off": config(models["intra-op, spin off"]),
            "channels-last (NHWC)": config(models["channels-last (NHWC)"]),
            "fused sub-pixel (float)": config(models["fused sub-pixel (float)"]),
            "int8": config(models["int8"]),
        }

        # Parity first: a rewrite that is not the same function is not a lever.
        z = ref.sample_latents(512, seed=0)
        want = ref.decode(z)
        parity = {}
        for name in ("channels-last (NHWC)", "fused sub-pixel (float)", "int8"):
            diff = float(np.abs(models[name].decode(z) - want).max())
            parity[name] = diff
            print(f"{name}: max |decode - shipped| {diff:.2e}", flush=True)
            if name != "int8" and diff > TOLERANCE:
                raise SystemExit(f"decoder_levers: {name} differs from the shipped decoder by {diff:.2e} > {TOLERANCE}")

        rows = []
        for batch in batches:
            z = ref.sample_latents(batch, seed=batch)
            times = time_configs(configs, z, args.rounds, args.budget, seed=batch)
            base = float(np.median(times["reference"]))
            for name, seconds in times.items():
                p50 = float(np.median(seconds))
                rows.append({"config": name, "batch": batch, "calls": len(seconds), "p50_ms": p50 * 1e3,
                             "p90_ms": float(np.percentile(seconds, 90)) * 1e3, "ratio": p50 / base})  # fmt: skip
                print(f"b{batch:<5d} {name:26s} p50 {p50 * 1e3:9.3f} ms  {p50 / base:5.2f}x", flush=True)

        # The graphs alone: one single-threaded session each, batch 512, no split.
        graph_files = {"reference": args.bundle / "decoder.onnx", **{n: p / "decoder.onnx" for n, p in bundles.items()},
                       "int8": int8_dir / "decoder.int8.onnx"}  # fmt: skip
        sessions = {name: one_thread_session(path) for name, path in graph_files.items()}
        z512 = ref.sample_latents(512, seed=1)
        single = time_configs(
            {name: ((lambda z, s=s: s.run(["x"], {"z": z})), nullcontext) for name, s in sessions.items()},
            z512,
            args.rounds,
            args.budget,
            seed=1,
        )
        base1 = float(np.median(single["reference"]))
        # Where each graph's time goes (ONNX Runtime's profiler, one thread, batch 512, per op type)
        ops = {name: profile(path, {"z": z512}, 5, by=str) for name, path in graph_files.items()}
        one_thread = [{"graph": n, "batch": 512, "p50_ms": float(np.median(s)) * 1e3,
                       "ratio": float(np.median(s)) / base1} for n, s in single.items()]  # fmt: skip
    gemm = gemm_limit(gemm_start, gemm_rate(2048, 10))
    flops = flops_per_item(args.bundle / "decoder.onnx")  # useful FLOPs of one image, the shipped graph
    for r in rows:
        r["of_gemm"] = flops * r["batch"] / (r["p50_ms"] / 1e3) / 1e9 / gemm

    names = list(configs)
    kept = [n for n in names[1:] if all(r["ratio"] <= WIN for r in rows if r["config"] == n)]
    meta = {
        **meta_start,
        "load_average_end": machine_info()["load_average"],
        "command": command,
        "rounds": args.rounds,
        "budget_s": args.budget,
        "gemm_gflops": gemm,
        "decoder_flops_per_image": flops,
    }
    result = {
        "meta": meta,
        "parity_max_abs": parity,
        "rows": rows,
        "one_thread_b512": one_thread,
        "op_ms_b512": ops,
        "kept": kept,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    save_json(args.out / "decoder_levers.json", result)
    write_text(args.out / "decoder_levers.md", markdown(result, names, batches))
    print(f"wrote {args.out / 'decoder_levers.md'}")


def op_table(ops: dict[str, dict[str, float]]) -> list[str]:
    """Rows: operator types, heaviest first; columns: graphs."""
    total: dict[str, float] = {}
    for per in ops.values():
        for op, ms in per.items():
            total[op] = total.get(op, 0.0) + ms
    names = list(ops)
    lines = ["| operator | " + " | ".join(names) + " |", "| --- | " + " | ".join("---:" for _ in names) + " |"]
    for op in sorted(total, key=lambda o: -total[o]):
        if total[op] >= 0.05:
            lines.append(
                f"| {op} | " + " | ".join(f"{ops[n].get(op, 0.0):.2f}" if op in ops[n] else "" for n in names) + " |"
            )
    lines.append("| total | " + " | ".join(f"{sum(ops[n].values()):.2f}" for n in names) + " |")
    return lines


def markdown(result: dict[str, Any], names: list[str], batches: list[int]) -> str:
    meta = result["meta"]
    cell = {(r["config"], r["batch"]): r for r in result["rows"]}
    lines = [
        "# The decoder's transposed convolution: levers, through the library",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"{meta['cpu']}, {meta['physical_cores']} physical cores; onnxruntime {meta.get('onnxruntime', '?')}; "
        f"load average {meta['load_average']} at the start, {meta['load_average_end']} at the end. "
        f"`Model.decode` p50 over {meta['rounds']} interleaved rounds; ratio = p50 / the reference's p50 in "
        f"the same run (< 1 is faster); in brackets the shipped graph's useful FLOPs "
        f"({meta['decoder_flops_per_image'] / 1e6:.1f} MFLOP per image) per second as a share of numpy's float32 "
        f"GEMM rate in the same run ({meta['gemm_gflops']:.0f} GFLOP/s, the better of all cores and one "
        "thread; int8 passes 100% because its products are 8-bit). Max |decode - shipped| at batch 512 "
        "(int8's quality is judged by benchmarks/variant_quality.py, not by this): "
        + ", ".join(f"{k} {v:.1e}" for k, v in result["parity_max_abs"].items())
        + ".",
        "",
        "| lever | " + " | ".join(f"b{b} p50 ms | b{b} ratio" for b in batches) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in batches) + " |",
    ]
    for name in names:
        cells = []
        for b in batches:
            r = cell[(name, b)]
            cells.append(f"{r['p50_ms']:.3f} | {r['ratio']:.2f}x ({r['of_gemm']:.0%})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The graphs alone, one single-threaded session each, batch 512:",
        "",
        "| graph | p50 ms | ratio |",
        "| --- | ---: | ---: |",
        *[f"| {r['graph']} | {r['p50_ms']:.3f} | {r['ratio']:.2f}x |" for r in result["one_thread_b512"]],
        "",
        "Kernel ms per run by operator type (ONNX Runtime's profiler, the same sessions' settings, batch 512; "
        "`FusedGemm` is a Gemm with its Relu):",
        "",
        *op_table(result["op_ms_b512"]),
        "",
        f"Kept (at least {1 - WIN:.0%} faster than the reference at every batch): "
        + (", ".join(result["kept"]) if result["kept"] else "none")
        + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
