"""Load on a real Triton server (2.51, Python backend, CPU) with its dynamic batching on and off.

    python benchmarks/triton_load.py [--seconds 3] [--concurrency 1,8,64]

Exports mnist-vae with `--backend python --kind cpu` twice (dynamic batching on, 500 us queue
delay, max batch 256; and off), starts the local tritonserver of vaegen_infer/triton/local.py on
each, and drives it with a closed loop of C requests in flight over gRPC (C client threads, each
sending its next request when the last is answered) for `--seconds` per cell, after a short warm-up.
Operations: `decode` (NAME-decoder, one code per request) and `sample` (NAME-sample, n=1, the BLS
path: a numpy prior draw, then a call of NAME-decoder inside the server). Reports requests per
second, client-side p50/p99 latency, and the mean batch the decoder executed (Triton's own
statistics: rows inferred / executions). Client and server share the machine's 2 cores, and
other processes run beside them: read the numbers as relative, not as capacity. Triton's own
perf_analyzer does not install here (PyPI offers only a 0.1.0 placeholder to this machine).
Writes benchmarks/results/triton_load.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tritonclient.grpc as grpc  # noqa: E402

import vaegen_infer as vi  # noqa: E402
from vaegen_infer.triton import export_repository  # noqa: E402
from vaegen_infer.triton.local import prepare, serve  # noqa: E402

MODEL = "mnist-vae"
MAX_IN_FLIGHT_S = 60.0  # hard bound on one cell, whatever happens to the server


def _inputs(op: str, dim: int, k: int) -> list[Any]:
    if op == "decode":
        z = grpc.InferInput("z", [1, dim], "FP32")
        z.set_data_from_numpy(np.random.default_rng(k).standard_normal((1, dim), dtype=np.float32))
        return [z]
    n, seed = grpc.InferInput("n", [1], "INT64"), grpc.InferInput("seed", [1], "INT64")
    n.set_data_from_numpy(np.array([1], dtype=np.int64))
    seed.set_data_from_numpy(np.array([k], dtype=np.int64))
    return [n, seed]


def closed_loop(client: Any, op: str, dim: int, concurrency: int, seconds: float) -> dict[str, Any]:
    """`concurrency` threads, each sending its next request when the last is answered, for `seconds`."""
    model = f"{MODEL}-{'decoder' if op == 'decode' else 'sample'}"
    per_thread: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds

    def worker(i: int) -> None:
        k = i * 1_000_000
        while time.perf_counter() < stop_at and not errors:
            inputs = _inputs(op, dim, k)
            t0 = time.perf_counter()
            try:
                client.infer(model, inputs, client_timeout=MAX_IN_FLIGHT_S)
            except Exception as exc:  # recorded and re-raised below, with the cell it happened in
                errors.append(str(exc))
                return
            per_thread[i].append(time.perf_counter() - t0)
            k += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + MAX_IN_FLIGHT_S)
    wall = time.perf_counter() - start
    if errors or any(t.is_alive() for t in threads):
        raise RuntimeError(f"{op} at concurrency {concurrency}: {errors[0] if errors else 'a request hung'}")
    latencies = [v for lst in per_thread for v in lst]
    lat = np.asarray(latencies) * 1e3
    return {
        "requests": len(latencies),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
    }


def decoder_stats(client: Any) -> tuple[int, int]:
    stats = client.get_inference_statistics(f"{MODEL}-decoder", as_json=True)["model_stats"][0]
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per cell (max 20)")
    ap.add_argument("--concurrency", default="1,8,64")
    ap.add_argument(
        "--sample-instances", type=int, default=4, help="NAME-sample instances (export-triton's default: 4)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "triton_load.json")
    args = ap.parse_args()
    seconds = min(args.seconds, 20.0)
    levels = [int(c) for c in args.concurrency.split(",")]
    dim = vi.load(MODEL).latent_dim
    local = prepare()
    load_start = " ".join(f"{v:.2f}" for v in os.getloadavg())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batching in (True, False):
            repo = Path(tmp) / f"repo-{batching}"
            export_repository(
                [MODEL], repo, backend="python", kind="cpu", dynamic_batching=batching,
                sample_instances=args.sample_instances,
            )  # fmt: skip
            with serve(repo, local, timeout_s=120) as running:
                client = grpc.InferenceServerClient(running.grpc)
                try:
                    for op in ("decode", "sample"):
                        closed_loop(client, op, dim, 4, 0.5)  # warm-up
                        for c in levels:
                            before = decoder_stats(client)
                            cell = closed_loop(client, op, dim, c, seconds)
                            after = decoder_stats(client)
                            rows_inferred, executions = after[0] - before[0], after[1] - before[1]
                            cell.update(
                                op=op, concurrency=c, dynamic_batching=batching,
                                mean_decoder_batch=round(rows_inferred / max(executions, 1), 2),
                            )  # fmt: skip
                            print(json.dumps(cell), file=sys.stderr)
                            rows.append(cell)
                finally:
                    client.close()
    meta = {
        "command": "python benchmarks/triton_load.py " + " ".join(sys.argv[1:]),
        "server": (
            "tritonserver 2.51 (nvidia-pytriton 0.7.0), Python backend, on CPU: 1 encoder and 1 decoder "
            f"instance, {args.sample_instances} sampler instances"
        ),
        "client": "tritonclient.grpc, one thread per in-flight request (closed loop), same machine",
        "seconds_per_cell": seconds,
        "logical_cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "load_average_start": load_start,
        "load_average_end": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "caveat": "client and server share 2 cores with other processes: relative numbers only",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(markdown(rows))


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| operation | concurrency | dynamic batching | requests/s | p50 ms | p99 ms | mean decoder batch |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted(rows, key=lambda r: (r["op"], r["concurrency"], not r["dynamic_batching"])):
        lines.append(
            f"| {r['op']} | {r['concurrency']} | {'on' if r['dynamic_batching'] else 'off'} | {r['requests_per_s']} | "
            f"{r['p50_ms']} | {r['p99_ms']} | {r['mean_decoder_batch']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
