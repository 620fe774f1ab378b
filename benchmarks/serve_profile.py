"""Where a single-sample request's time goes in `vaegen-infer serve` (the event-loop thread, profiled).

    python benchmarks/serve_profile.py --requests 5000 --clients 64 [--model color-dsprites]

The server (uvicorn, the app, the batcher) runs in this process, set up as `vaegen-infer serve` sets
it up (small batches on one thread, `tune_gc`), with cProfile on the event-loop thread; the raw
HTTP/1.1 client of benchmarks/http_client.py in another process sends `--requests` single-sample
NPY requests from `--clients` connections. Also measured: the CPU time of every thread of this
process and of the client (/proc, getrusage), the time spent in garbage collection (gc.callbacks),
and the decoder's own time (the batcher's metrics). Writes benchmarks/results/serve_profile[-MODEL].md:
CPU per request by thread, the event loop's CPU time per request by layer, and the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Which layer a profiled function belongs to, by the path of its file (first match wins).
LAYERS = [
    ("uvicorn + HTTP parsing", ("uvicorn", "httptools", "h11")),
    ("asyncio event loop", ("asyncio", "selectors")),
    ("starlette + fastapi routing", ("starlette", "fastapi")),
    ("pydantic validation", ("pydantic",)),
    ("prometheus metrics", ("prometheus_client",)),
    ("logging (access log)", ("logging",)),
    ("vaegen_infer.serve (app, parsing, answers)", ("vaegen_infer/serve",)),
    ("prior draw (numpy)", ("vaegen_infer/priors", "vaegen_infer/model", "numpy/random")),
    ("numpy (npy encoding, concatenation)", ("numpy",)),
    ("json", ("json",)),
]


def layer_of(filename: str) -> str:
    for name, keys in LAYERS:
        if any(k in filename for k in keys):
            return name
    return "other (stdlib, anyio, concurrent.futures ...)"


CLIENT = """
import json, resource, sys
sys.path.insert(0, sys.argv[5])
from http_client import new_loop, run_load
port, n, clients, model = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
make = lambda i: (f"/v1/models/{model}/sample", b'{"n":1,"seed":%d,"format":"npy"}' % i, 1)
before = resource.getrusage(resource.RUSAGE_SELF)
tally = new_loop().run_until_complete(run_load("127.0.0.1", port, make, clients, n, 600.0))
after = resource.getrusage(resource.RUSAGE_SELF)
assert tally.statuses == {200: n}, tally.statuses
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(json.dumps({"cpu_s": cpu, "wall_s": tally.wall}))
"""


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of every thread of this process, by thread id (Linux /proc)."""
    out = {}
    for task in Path("/proc/self/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--window-ms", type=float, default=2.0)
    ap.add_argument("--model", default="mnist-vae")
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/serve_profile[-MODEL].md")
    args = ap.parse_args()
    suffix = "" if args.model == "mnist-vae" else f"-{args.model}"
    out = args.out or ROOT / "benchmarks" / "results" / f"serve_profile{suffix}.md"

    import uvicorn

    import vaegen_infer as vi
    from vaegen_infer.serve import Settings, create_app, tune_gc

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = vi.load(args.model, providers="cpu", small_batch_threads=1)  # as `vaegen-infer serve` loads it
    app = create_app({args.model: model}, Settings(batch_window_ms=args.window_ms, access_log=True))
    tune_gc()
    gc_time = [0.0, 0.0, 0]  # seconds in collections, start of the current one, collections

    def on_gc(phase: str, _info: dict) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_time[1]
            gc_time[2] += 1

    gc.callbacks.append(on_gc)
    import logging

    logging.basicConfig(level=logging.WARNING)  # access lines are formatted, then dropped: their cost counts
    # The asyncio loop, not uvloop, while profiling: its wait for the network is a visible Python-level
    # call (select.epoll.poll), counted as idle below, where uvloop's C loop would hide it in run().
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, loop="asyncio")
    server = uvicorn.Server(config)
    result: dict[str, Any] = {}

    profiler = cProfile.Profile()

    def sample_value(name: str) -> float:
        labels = {"model": args.model, "graph": "decoder"}
        return app.state.vaegen.metrics.registry.get_sample_value(name, labels) or 0.0

    def drive() -> None:
        while not server.started:
            time.sleep(0.05)
        cpu0 = thread_cpu()
        gc0 = list(gc_time)
        t0 = time.perf_counter()
        client = subprocess.run(
            [sys.executable, "-c", CLIENT, str(port), str(args.requests), str(args.clients), args.model,
             str(ROOT / "benchmarks")],
            check=True, timeout=600, capture_output=True, text=True,
        )  # fmt: skip
        result["wall"] = time.perf_counter() - t0
        cpu1 = thread_cpu()
        names.update({t.native_id: t.name for t in threading.enumerate() if t.native_id is not None})
        result["threads"] = {tid: cpu1[tid] - cpu0.get(tid, 0.0) for tid in cpu1}
        result["client_cpu"] = json.loads(client.stdout.strip().splitlines()[-1])["cpu_s"]
        result["gc_s"], result["gc_n"] = gc_time[0] - gc0[0], gc_time[2] - gc0[2]
        result["decode_s"] = sample_value("vaegen_batch_seconds_sum")
        result["decode_calls"] = sample_value("vaegen_batch_seconds_count")
        server.should_exit = True

    loop_thread = [0]
    names: dict[int, str] = {}  # native thread id -> name, taken while the batchers' threads live
    threading.Thread(target=drive, daemon=True).start()
    # cProfile sees the thread it runs on: the event loop's (uvicorn, the app, the answers). The
    # counts include the server's start and stop, which are small next to thousands of requests.
    loop_thread[0] = threading.get_native_id()
    profiler.runcall(server.run)
    stats = pstats.Stats(profiler)
    n = args.requests
    by_layer: dict[str, float] = {}
    idle = 0.0
    for (filename, _line, name), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "poll" in name and ("epoll" in name or "select" in name):
            idle += tt  # waiting for the network or for the batcher's answer: not CPU
            continue
        by_layer[layer_of(filename)] = by_layer.get(layer_of(filename), 0.0) + tt
    total = sum(by_layer.values())
    by_thread: dict[str, float] = {}
    for tid, secs in result["threads"].items():
        if tid == loop_thread[0]:
            name = "event loop (uvicorn, the app, answers)"
        elif names.get(tid, "").startswith("batcher-"):
            name = f"{names[tid]} (batcher worker: ONNX Runtime runs)"
        else:
            name = names.get(tid, "threads not made by Python (ONNX Runtime pools)")
        by_thread[name] = by_thread.get(name, 0.0) + secs
    lines = [
        f"{n:,} single-sample NPY requests to `{args.model}` from {args.clients} connections, batch window "
        f"{args.window_ms} ms, wall {result['wall']:.2f} s = {n / result['wall']:,.0f} requests/s (with cProfile "
        f"on the event loop). Load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}.",
        "",
        "CPU per request, by thread (/proc; the client is another process):",
        "",
        "| thread | ms per request |",
        "|---|---:|",
        *[f"| {name} | {secs * 1000 / n:.3f} |" for name, secs in sorted(by_thread.items(), key=lambda kv: -kv[1])
          if secs > 0],
        f"| load client (raw HTTP/1.1, own process) | {result['client_cpu'] * 1000 / n:.3f} |",
        "",
        f"Garbage collection (on the event loop, counted in its layers below): {result['gc_n']} collections, "
        f"{result['gc_s'] * 1000 / n:.3f} ms per request.",
        f"Decoder (batcher thread): {result['decode_calls']:.0f} calls, "
        f"{result['decode_s'] * 1000 / n:.3f} ms per request, "
        f"{result['decode_s'] * 1e6 / max(result['decode_calls'], 1):.0f} us per call.",
        f"Event-loop thread busy (cProfile, with its own overhead): {total * 1000 / n:.3f} ms per request; "
        f"idle in epoll {idle * 1000 / n:.3f} ms per request.",
        "",
        "| layer | ms per request | share |",
        "|---|---:|---:|",
    ]
    for name, tt in sorted(by_layer.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {tt * 1000 / n:.3f} | {tt / total:.0%} |")
    lines += ["", "Top functions on the event-loop thread by own time:", "",
              "| function | ms per request |", "|---|---:|"]  # fmt: skip
    top = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])  # type: ignore[attr-defined]
    shown = 0
    for (filename, line, name), (_cc, _nc, tt, _ct, _callers) in top:
        if "poll" in name and ("epoll" in name or "select" in name):
            continue
        where = filename.split("site-packages/")[-1].split("/lib/python")[-1]
        lines.append(f"| `{name}` ({where}:{line}) | {tt * 1000 / n:.3f} |")
        shown += 1
        if shown == 15:
            break
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"Command: `python benchmarks/serve_profile.py {' '.join(sys.argv[1:])}`\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
