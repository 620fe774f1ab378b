"""Load on `vaegen-infer serve` over 127.0.0.1, with dynamic batching on and off, next to the
library's own `sample` throughput measured in the same run.

    python benchmarks/serve_load.py                     # the full run (about 3-4 minutes)
    python benchmarks/serve_load.py --seconds 1 --quick # a smoke test of the script

- The server runs in its own process (`vaegen-infer serve`, CPU provider), restarted for each
  batching mode: `--batch-window-ms 2` (on) and `0` (off: every request its own graph call).
- The load client is an async httpx client in another process. Every client loops until the cell
  has sent `--requests` requests or run `--seconds` seconds, whichever comes first.
- Cells: 1, 8, 64, 256 concurrent clients asking for one sample each (NPY); 64 clients asking for
  64 samples each (NPY); a mixed workload (sample PNG, decode, encode, interpolate, traverse) from
  16 clients.
- Reported per cell: requests/s, images/s, p50/p90/p99 latency, errors (non-200 answers, 503s
  counted apart), the client's CPU share (client CPU seconds / (client + server CPU seconds)),
  and the server's resident memory before and after.
- The library's baseline: `Model.sample(4096)` images/s in this process before the servers start.

Writes benchmarks/results/serve_load.json, serve_load.md and serve_load.png.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
EXAMPLE = ROOT / "docs" / "examples" / "digit-4.png"


# -- the client process -----------------------------------------------------------------------------


def _requests_for(kind: str, model: str, i: int, latent: int) -> tuple[str, dict[str, Any], int]:
    """(path, JSON body, images in the answer) of request i of a workload."""
    base = f"/v1/models/{model}"
    if kind == "single":
        return f"{base}/sample", {"n": 1, "seed": i, "format": "npy"}, 1
    if kind == "bundle":
        return f"{base}/sample", {"n": 64, "seed": i, "format": "npy"}, 64
    # mixed: one of five operations in turn
    pick = i % 5
    if pick == 0:
        return f"{base}/sample", {"n": 16, "seed": i, "format": "png"}, 16
    if pick == 1:
        z = np.random.default_rng(i).standard_normal((1, latent)).round(4).tolist()
        return f"{base}/decode", {"z": z, "format": "json"}, 1
    if pick == 2:
        return f"{base}/encode", {"images": [_EXAMPLE_B64], "format": "json"}, 1
    if pick == 3:
        rng = np.random.default_rng(i)
        a, b = rng.standard_normal((2, latent)).round(4).tolist()
        return f"{base}/interpolate", {"anchors": [a, b], "steps": 8, "format": "json"}, 8
    return f"{base}/traverse", {"dims": [0, 1], "steps": 5, "format": "npy"}, 10


_EXAMPLE_B64 = base64.b64encode(EXAMPLE.read_bytes()).decode() if EXAMPLE.is_file() else ""


async def _load(url: str, kind: str, model: str, clients: int, max_requests: int, seconds: float,
                latent: int) -> dict[str, Any]:  # fmt: skip
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    images = 0
    sent = 0
    started = time.perf_counter()
    deadline = started + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def client() -> None:
            nonlocal sent, images
            while sent < max_requests and time.perf_counter() < deadline:
                i = sent
                sent += 1
                path, body, count = _requests_for(kind, model, i, latent)
                t0 = time.perf_counter()
                try:
                    r = await http.post(path, json=body)
                    status = r.status_code
                    await r.aread()
                except httpx.HTTPError:
                    status = -1
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    images += count

        await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    lat = np.asarray(latencies) * 1000
    ok = statuses.get(200, 0)
    return {
        "workload": kind, "clients": clients, "requests": len(latencies), "seconds": round(wall, 3),
        "requests_per_s": ok / wall, "images_per_s": images / wall,
        "p50_ms": float(np.percentile(lat, 50)), "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)),
        "errors": sum(v for k, v in statuses.items() if k not in (200, 503)), "rejected_503": statuses.get(503, 0),
        "statuses": {str(k): v for k, v in statuses.items()},
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
    }  # fmt: skip


def client_main(args: argparse.Namespace) -> None:
    result = asyncio.run(_load(args.url, args.kind, args.model, args.clients, args.requests, args.seconds, args.latent))
    print(json.dumps(result))


# -- the orchestrator ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    def __init__(self, model: str, window_ms: float, max_batch: int) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = "from vaegen_infer.cli import main; main()"
        cmd = [sys.executable, "-c", code, "serve", "--model", model, "--port", str(self.port), "--providers", "cpu",
               "--batch-window-ms", str(window_ms), "--max-batch", str(max_batch),
               "--log-level", "warning"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        import httpx

        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_cell(server: Server, kind: str, model: str, clients: int, requests: int, seconds: float,
             latent: int) -> dict[str, Any]:  # fmt: skip
    cpu0, rss0 = _cpu_seconds(server.proc.pid), _rss_mb(server.proc.pid)
    cmd = [sys.executable, __file__, "--client", "--url", server.url, "--kind", kind, "--model", model,
           "--clients", str(clients), "--requests", str(requests), "--seconds", str(seconds),
           "--latent", str(latent)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    server_cpu = _cpu_seconds(server.proc.pid) - cpu0
    result["server_cpu_s"] = round(server_cpu, 3)
    result["client_cpu_share"] = result["client_cpu_s"] / max(result["client_cpu_s"] + server_cpu, 1e-9)
    result["server_rss_mb"] = [round(rss0, 1), round(_rss_mb(server.proc.pid), 1)]
    return result


def memory_cell(server: Server, model: str, requests: int, seconds: float, latent: int) -> dict[str, Any]:
    """Single-sample requests from 64 clients while a thread samples (requests answered, server RSS)
    every 0.5 s: resident memory against the request count."""
    import threading

    import httpx

    points: list[tuple[float, float]] = []
    done = threading.Event()

    def watch() -> None:
        key = 'vaegen_requests_total{endpoint="/v1/models/{name}/sample",method="POST",status="200"}'
        while not done.is_set():
            try:
                text = httpx.get(f"{server.url}/metrics", timeout=5).text
            except httpx.HTTPError:
                continue
            count = sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(key))
            points.append((count, _rss_mb(server.proc.pid)))
            done.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = run_cell(server, "single", model, 64, requests, seconds, latent)
    finally:
        done.set()
        watcher.join(10)
    after_1000 = next(((c, r) for c, r in points if c >= 1000), points[0] if points else (0.0, float("nan")))
    last = points[-1] if points else (0.0, float("nan"))
    result["rss_points"] = points
    result["rss_from_request_1000"] = {"at": after_1000, "end": last,
                                       "change": (last[1] - after_1000[1]) / after_1000[1]}  # fmt: skip
    return result


def library_baseline(model: str, batch: int, seconds: float) -> dict[str, Any]:
    import vaegen_infer as vi

    g = vi.load(model, providers="cpu")
    g.sample(batch, seed=0)  # warm-up: sessions and arenas
    times = []
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < seconds and i < 200:
        t0 = time.perf_counter()
        g.sample(batch, seed=i)
        times.append(time.perf_counter() - t0)
        i += 1
    p50 = float(np.median(times))
    return {"batch": batch, "calls": len(times), "p50_ms": p50 * 1000, "images_per_s": batch / p50}


def markdown(report: dict[str, Any]) -> str:
    lib = report["library"]
    lines = [
        f"Library `sample` at batch {lib['batch']}: **{lib['images_per_s']:,.0f} images/s** "
        f"(p50 {lib['p50_ms']:.1f} ms), same run. Load average (1, 5, 15 min) at the start "
        f"{report['machine'].get('load_average', '?')}, at the end {report.get('load_average_end', '?')}.",
        "",
        "| batching | workload | clients | requests | req/s | images/s | p50 ms | p90 ms | p99 ms | errors | 503 "
        "| client CPU share | server RSS MB (start -> end) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["cells"]:
        lines.append(
            f"| {r['batching']} | {r['workload']} | {r['clients']} | {r['requests']:,} | {r['requests_per_s']:,.0f} | "
            f"{r['images_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | "
            f"{r['rejected_503']} | {r['client_cpu_share']:.0%} | {r['server_rss_mb'][0]:.0f} -> "
            f"{r['server_rss_mb'][1]:.0f} |"
        )
    mem = report.get("memory")
    if mem:
        m = mem["rss_from_request_1000"]
        lines += ["", f"Server RSS with batching on, 64 single-sample clients: {m['at'][1]:.0f} MB at request "
                  f"{m['at'][0]:,.0f}, {m['end'][1]:.0f} MB at request {m['end'][0]:,.0f} ({m['change']:+.1%}); "
                  f"{mem['errors']} errors, {mem['rejected_503']} 503s."]  # fmt: skip
    return "\n".join(lines) + "\n"


def chart(report: dict[str, Any], path: Path) -> None:
    from vaegen_infer.plots import line_chart

    series: dict[str, tuple[list[float], list[float]]] = {}
    for mode in ("on", "off"):
        cells = [c for c in report["cells"] if c["batching"] == mode and c["workload"] == "single"]
        if cells:
            xs = [c["clients"] for c in cells]
            series[f"batching {mode}"] = (xs, [max(c["requests_per_s"], 1e-3) for c in cells])
    image = line_chart(series, f"{report['model']}: single-sample requests/s over HTTP", "concurrent clients",
                       "requests/s", log_x=True, log_y=False)  # fmt: skip
    image.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    ap.add_argument("--clients", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--latent", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--model", default="mnist-vae")
    ap.add_argument("--seconds", type=float, default=6.0, help="Most seconds per cell.")
    ap.add_argument("--requests", type=int, default=20_000, help="Most requests per cell.")
    ap.add_argument("--max-batch", type=int, default=4096, help="The server's --max-batch.")
    ap.add_argument("--quick", action="store_true", help="Clients 1 and 8 only, no 256.")
    ap.add_argument("--memory-requests", type=int, default=30_000, help="Requests of the memory cell (0: none).")
    ap.add_argument("--memory-seconds", type=float, default=45.0, help="Most seconds of the memory cell.")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.client:
        client_main(args)
        return

    import vaegen_infer as vi
    from vaegen_infer.bench import machine_info

    latent = vi.load(args.model).latent_dim
    started = time.time()
    report: dict[str, Any] = {
        "model": args.model, "machine": machine_info(), "settings": vars(args) | {"out": str(args.out)},
        "command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:]),
        "library": library_baseline(args.model, 4096, min(args.seconds, 5.0)),
        "cells": [],
    }  # fmt: skip
    singles = (1, 8) if args.quick else (1, 8, 64, 256)
    for mode, window in (("on", 2.0), ("off", 0.0)):
        server = Server(args.model, window, args.max_batch)
        try:
            cells = [("single", c) for c in singles] + [("bundle", 64), ("mixed", 16)]
            for kind, clients in cells:
                r = run_cell(server, kind, args.model, clients, args.requests, args.seconds, latent)
                r["batching"] = mode
                report["cells"].append(r)
                print(f"batching {mode} {kind} x{clients}: {r['requests_per_s']:,.0f} req/s, "
                      f"{r['images_per_s']:,.0f} images/s, p99 {r['p99_ms']:.1f} ms, errors {r['errors']}",
                      flush=True)  # fmt: skip
            if mode == "on" and args.memory_requests:
                mem = memory_cell(server, args.model, args.memory_requests, args.memory_seconds, latent)
                report["memory"] = mem
                m = mem["rss_from_request_1000"]
                print(f"memory: RSS {m['at'][1]:.0f} MB at request {m['at'][0]:,.0f}, {m['end'][1]:.0f} MB at "
                      f"{m['end'][0]:,.0f} ({m['change']:+.1%})", flush=True)
        finally:
            server.stop()
    report["wall_s"] = round(time.time() - started, 1)
    report["load_average_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())  # other processes' load
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_load.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "serve_load.md").write_text(markdown(report))
    chart(report, args.out / "serve_load.png")
    print(markdown(report))
    print(f"wrote {args.out / 'serve_load.json'}, serve_load.md, serve_load.png in {report['wall_s']} s")


if __name__ == "__main__":
    main()
