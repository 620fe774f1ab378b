"""Where a single-sample request's time goes in `vaegen-infer serve` (the event-loop thread, profiled).

    python benchmarks/serve_profile.py --requests 2000 --clients 8

The server (uvicorn, the app, the batcher) runs in this process with cProfile on the event-loop
thread; an async httpx client in another process sends `--requests` single-sample NPY requests from
`--clients` connections. The decoder's own time comes from the batcher's metrics (it runs on the
batcher's worker thread, which cProfile does not see). Writes benchmarks/results/serve_profile.md:
the event loop's CPU time per request by layer, and the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

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
import asyncio, sys, httpx
url, n, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def main():
    sent = 0
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        async def one():
            nonlocal sent
            while sent < n:
                i = sent; sent += 1
                r = await http.post("/v1/models/mnist-vae/sample", json={"n": 1, "seed": i, "format": "npy"})
                assert r.status_code == 200, r.text
        await asyncio.gather(*(one() for _ in range(clients)))
asyncio.run(main())
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--window-ms", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve_profile.md")
    args = ap.parse_args()

    import uvicorn

    import vaegen_infer as vi
    from vaegen_infer.serve import Settings, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app({"mnist-vae": vi.load("mnist-vae", providers="cpu")},
                     Settings(batch_window_ms=args.window_ms, access_log=True))  # fmt: skip
    import logging

    logging.basicConfig(level=logging.WARNING)  # access lines are formatted, then dropped: their cost counts
    # The asyncio loop, not uvloop, while profiling: its wait for the network is a visible Python-level
    # call (select.epoll.poll), counted as idle below, where uvloop's C loop would hide it in run().
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, loop="asyncio")
    server = uvicorn.Server(config)
    url = f"http://127.0.0.1:{port}"
    result: dict[str, float] = {}

    profiler = cProfile.Profile()

    def sample_value(name: str) -> float:
        labels = {"model": "mnist-vae", "graph": "decoder"}
        return app.state.vaegen.metrics.registry.get_sample_value(name, labels) or 0.0

    def drive() -> None:
        while not server.started:
            time.sleep(0.05)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", CLIENT, url, str(args.requests), str(args.clients)], check=True,
                       timeout=600)  # fmt: skip
        result["wall"] = time.perf_counter() - t0
        result["decode_s"] = sample_value("vaegen_batch_seconds_sum")
        result["decode_calls"] = sample_value("vaegen_batch_seconds_count")
        server.should_exit = True

    threading.Thread(target=drive, daemon=True).start()
    # cProfile sees the thread it runs on: the event loop's (uvicorn, the app, the answers). The
    # counts include the server's start and stop, which are small next to thousands of requests.
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
    lines = [
        f"{n:,} single-sample NPY requests from {args.clients} connections, batch window {args.window_ms} ms, "
        f"wall {result['wall']:.2f} s = {n / result['wall']:,.0f} requests/s.",
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"Command: `python benchmarks/serve_profile.py {' '.join(sys.argv[1:])}`\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
