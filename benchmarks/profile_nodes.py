"""Where does a graph's time go? ONNX Runtime's profiler, per operator type, with FLOP/s.

    python benchmarks/profile_nodes.py [--bundle exported/mnist-vae] [--batch 512] [--runs 10]

One single-threaded session per graph, at the runtime's settings (ORT_ENABLE_ALL), profiled over
`--runs` runs after a warm-up; kernel time is summed per operator type (Conv, ConvTranspose,
Gemm/FusedGemm/MatMul, the rest) and set against the FLOPs benchmarks/flops.py counts for it,
next to numpy's one-thread GEMM rate measured in the same process. Writes
benchmarks/results/profile_nodes.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.flops import graph_flops  # noqa: E402
from vaegen_infer.bench import machine_info  # noqa: E402

# Optimised graphs rename and fuse nodes (Gemm + Relu -> FusedGemm, Conv -> NCHWc Conv), so time
# and FLOPs are matched per family of operator type, not per node.
FAMILY = {"Gemm": "Gemm", "FusedGemm": "Gemm", "MatMul": "Gemm", "Conv": "Conv", "FusedConv": "Conv"}


def family(op_type: str) -> str:
    return FAMILY.get(op_type, op_type if op_type == "ConvTranspose" else "other")


def profile(path: Path, feeds: dict[str, np.ndarray], runs: int, by: Callable[[str], str] = family) -> dict[str, float]:
    """Kernel milliseconds per run, by operator family (or by whatever `by` makes of an op type)."""
    import onnxruntime as ort

    from vaegen_infer.providers import ProviderRequest, session_options

    opts = session_options(ProviderRequest("cpu", threads=1))
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:  # no trace left behind, even when a run fails
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        for _ in range(3 + runs):  # the profile holds the warm-up too: only the last `runs` count
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_node: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[e["name"]].append((e["args"]["op_name"], e["dur"] / 1000.0))
    ms: dict[str, float] = defaultdict(float)
    for samples in per_node.values():
        for op, dur in samples[-runs:]:
            ms[by(op)] += dur / runs
    return dict(ms)


def gemm_one_thread(n: int = 2048) -> float:
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        a @ a
        times = []
        for _ in range(5):
            started = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - started)
    return 2.0 * n**3 / float(np.median(times)) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "exported" / "mnist-vae")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    latent_dim = json.loads((args.bundle / "model.json").read_text())["latent_dim"]
    feeds = {
        "encoder": {"x": rng.random((args.batch, 1, 28, 28), dtype=np.float32)},
        "decoder": {"z": rng.standard_normal((args.batch, latent_dim), dtype=np.float32)},
    }
    gemm = gemm_one_thread()
    rows: list[dict[str, Any]] = []
    for role in ("encoder", "decoder"):
        path = args.bundle / f"{role}.onnx"
        flops: dict[str, int] = defaultdict(int)
        for name, f in graph_flops(path, args.batch).items():
            flops[family(name.split(":", 1)[0])] += f
        for fam, ms in sorted(profile(path, feeds[role], args.runs).items(), key=lambda kv: -kv[1]):
            gflops = flops.get(fam, 0) / (ms / 1000.0) / 1e9 if flops.get(fam) else None
            rows.append({
                "graph": role, "family": fam, "ms": ms, "mflop": flops.get(fam, 0) / 1e6, "gflops": gflops,
                "fraction_of_gemm": None if gflops is None else gflops / gemm,
            })  # fmt: skip
    meta = {**machine_info(), "batch": args.batch, "runs": args.runs, "gemm_one_thread_gflops": gemm}
    meta["command"] = "python benchmarks/profile_nodes.py" + (f" --batch {args.batch}" if args.batch != 512 else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile_nodes.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        f"# Where the time goes: one thread, batch {args.batch}, ONNX Runtime profiler",
        "",
        f"{meta['cpu']}, onnxruntime {meta['onnxruntime']}, load average {meta['load_average']}. numpy one-thread "
        f"GEMM in the same process: {gemm:.1f} GFLOP/s. Command: `{meta['command']}`.",
        "",
        "| graph | operators | ms per run | MFLOP | GFLOP/s | of one-thread GEMM |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        rate = "-" if r["gflops"] is None else f"{r['gflops']:.1f}"
        frac = "-" if r["fraction_of_gemm"] is None else f"{r['fraction_of_gemm']:.0%}"
        lines.append(f"| {r['graph']} | {r['family']} | {r['ms']:.2f} | {r['mflop']:.0f} | {rate} | {frac} |")
    text = "\n".join(lines) + "\n"
    (args.out / "profile_nodes.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
