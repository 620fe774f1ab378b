"""Load on `vaegen-infer serve` over 127.0.0.1, with dynamic batching on and off, next to the
library's own `sample` throughput measured in the same run.

    cpuslot --all python benchmarks/serve_load.py       # the full run (about 6-8 minutes)
    python benchmarks/serve_load.py --seconds 1 --quick --memory-requests 2000 --memory-seconds 5  # a smoke test

- The server runs in its own process (`vaegen-infer serve`, CPU provider), restarted for each
  batching mode: `--batch-window-ms 2` (on) and `0` (off: every request its own graph call).
- The load client is the raw HTTP/1.1 keep-alive client of benchmarks/http_client.py in another
  process (httpx's async client cost more CPU than the server it measured). Every client loops
  until the cell has sent `--requests` requests or run `--seconds` seconds, whichever comes first;
  every NPY answer is checked to be whole.
- Cells: 1, 8, 64, 256 concurrent clients asking for one sample each (NPY); 64 clients asking for
  64 samples each (NPY); a mixed workload (sample PNG, decode, encode, interpolate, traverse) from
  16 clients; the same 64 single-sample clients on each `--single64` bundle (color-dsprites).
- Memory (batching on): `--memory-requests` (100,000) single-code decode requests from 128 clients,
  bounded by `--memory-seconds`; the server's RSS against the request count.
- SIGTERM: the signal 3 s into 64 single-sample clients; passes when every request in the server's
  access log got a whole 200 answer at the client and none was cut short.
- Reported per cell: requests/s, images/s, p50/p90/p99 latency, errors (non-200 answers, 503s
  counted apart), the client's CPU share (client CPU seconds / (client + server CPU seconds)),
  and the server's resident memory before and after.
- Warm-up: after every server start, `--warmup-seconds` (1.5) of 64 single-sample clients, not
  counted, so that no cell pays for the first session runs (sessions are made on first use).
- The `--single64` cells alternate on and off `--single64-repeats` times (2), each on a fresh
  server: their ratio is the issue's batching goal, and the spread between repeats is its noise.
- The library's baseline: `Model.sample(4096)` images/s in this process before the servers start.

Writes benchmarks/results/serve_load.json, serve_load.md and serve_load.png.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # http_client

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
    if kind == "decode":  # the cheapest request that runs the model: one code in, one image out (NPY)
        z = _codes(latent)[i % 256]
        return f"{base}/decode", {"z": [z], "format": "npy"}, 1
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


@functools.cache
def _codes(latent: int) -> list[list[float]]:
    """256 codes the decode cells cycle through (N(0, I) draws, 4 decimals)."""
    return np.random.default_rng(0).standard_normal((256, latent)).round(4).tolist()


def _npy_ok(body: bytes, images: int, image_values: int) -> bool:
    """A whole NPY answer: magic, and exactly images x C x H x W float32 values after the header."""
    if not body.startswith(b"\x93NUMPY") or len(body) < 10:
        return False
    header = 10 + int.from_bytes(body[8:10], "little")
    return len(body) - header == images * image_values * 4


async def _load(host: str, port: int, kind: str, model: str, clients: int, max_requests: int, seconds: float,
                latent: int, image_values: int) -> dict[str, Any]:  # fmt: skip
    from http_client import NOT_ACCEPTED, TRUNCATED, run_load

    def make(i: int) -> tuple[str, bytes, int]:
        path, body, count = _requests_for(kind, model, i, latent)
        return path, json.dumps(body, separators=(",", ":")).encode(), count

    npy = kind in ("single", "bundle", "decode")
    check = (lambda _i, body, images: _npy_ok(body, images, image_values)) if npy else None
    before = resource.getrusage(resource.RUSAGE_SELF)  # the load's CPU, not the interpreter's start
    tally = await run_load(host, port, make, clients, max_requests, seconds, check)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    lat = np.asarray(tally.latencies or [float("nan")]) * 1000
    statuses = tally.statuses
    ok = statuses.get(200, 0)
    return {
        "workload": kind, "clients": clients, "requests": len(tally.latencies), "seconds": round(tally.wall, 3),
        "requests_per_s": ok / tally.wall, "images_per_s": tally.images / tally.wall,
        "p50_ms": float(np.percentile(lat, 50)), "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)),
        "errors": sum(v for k, v in statuses.items() if k not in (200, 503)), "rejected_503": statuses.get(503, 0),
        "not_accepted": statuses.get(NOT_ACCEPTED, 0), "truncated": statuses.get(TRUNCATED, 0),
        "statuses": {str(k): v for k, v in statuses.items()},
        "client_cpu_s": usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime,
    }  # fmt: skip


def client_main(args: argparse.Namespace) -> None:
    from http_client import new_loop

    loop = new_loop()
    try:
        result = loop.run_until_complete(
            _load(
                "127.0.0.1",
                args.port,
                args.kind,
                args.model,
                args.clients,
                args.requests,
                args.seconds,
                args.latent,
                args.image_values,
            )
        )
    finally:
        loop.close()
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
    """`vaegen-infer serve` in its own process. `log`: a file for its stderr (the access log at
    --log-level info); otherwise warnings only, to a pipe."""

    def __init__(self, model: str, window_ms: float, max_batch: int, log: Path | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = "from vaegen_infer.cli import main; main()"
        cmd = [sys.executable, "-c", code, "serve", "--model", model, "--port", str(self.port), "--providers", "cpu",
               "--batch-window-ms", str(window_ms), "--max-batch", str(max_batch),
               "--log-level", "info" if log else "warning"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.log = log
        err: Any = log.open("w") if log else subprocess.PIPE
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        deadline = time.monotonic() + 90
        while True:
            if _get(f"{self.url}/readyz", 1)[0] == 200:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = log.read_text() if log else (self.proc.stderr.read() if self.proc.stderr else "")
                raise RuntimeError(f"the server did not start: {why}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _get(url: str, timeout: float) -> tuple[int, str]:
    """(status, body) of a GET on this machine's loopback; (0, reason) when it fails."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError as exc:
        return 0, str(exc)


def _client_cmd(server: Server, kind: str, model: str, clients: int, requests: int, seconds: float,
                latent: int, image_values: int) -> list[str]:  # fmt: skip
    return [sys.executable, __file__, "--client", "--port", str(server.port), "--kind", kind, "--model", model,
            "--clients", str(clients), "--requests", str(requests), "--seconds", str(seconds),
            "--latent", str(latent), "--image-values", str(image_values)]  # fmt: skip


def run_cell(server: Server, kind: str, model: str, clients: int, requests: int, seconds: float,
             latent: int, image_values: int) -> dict[str, Any]:  # fmt: skip
    cpu0, rss0 = _cpu_seconds(server.proc.pid), _rss_mb(server.proc.pid)
    cmd = _client_cmd(server, kind, model, clients, requests, seconds, latent, image_values)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    server_cpu = _cpu_seconds(server.proc.pid) - cpu0
    result["model"] = model
    result["server_cpu_s"] = round(server_cpu, 3)
    result["client_cpu_share"] = result["client_cpu_s"] / max(result["client_cpu_s"] + server_cpu, 1e-9)
    result["server_rss_mb"] = [round(rss0, 1), round(_rss_mb(server.proc.pid), 1)]
    return result


def warm_up(server: Server, model: str, seconds: float, latent: int, image_values: int) -> None:
    """64 single-sample clients for `seconds`, not counted: the first session runs (sessions are
    made on first use, ONNX Runtime plans each new batch shape once) fall outside every cell."""
    if seconds > 0:
        run_cell(server, "single", model, 64, 20_000, seconds, latent, image_values)


def memory_cell(server: Server, model: str, clients: int, requests: int, seconds: float, latent: int,
                image_values: int) -> dict[str, Any]:  # fmt: skip
    """Single-code decode requests (the cheapest request that runs the model) from `clients`
    connections, bounded by `requests` and `seconds`, while a thread samples (requests answered,
    server RSS) every 0.5 s: resident memory against the request count."""
    import threading

    points: list[tuple[float, float]] = []
    done = threading.Event()
    key = 'vaegen_requests_total{endpoint="/v1/models/{name}/decode",method="POST",status="200"}'

    def watch() -> None:
        while not done.is_set():
            status, text = _get(f"{server.url}/metrics", 5)
            if status == 200:
                count = sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(key))
                points.append((count, _rss_mb(server.proc.pid)))
            done.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = run_cell(server, "decode", model, clients, requests, seconds, latent, image_values)
    finally:
        done.set()
        watcher.join(10)
    status, text = _get(f"{server.url}/metrics", 5)  # the count and RSS once every answer is in
    if status == 200:
        points.append((sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(key)),
                       _rss_mb(server.proc.pid)))  # fmt: skip
    after_1000 = next(((c, r) for c, r in points if c >= 1000), points[0] if points else (0.0, float("nan")))
    last = points[-1] if points else (0.0, float("nan"))
    result["rss_points"] = points
    result["rss_from_request_1000"] = {"at": after_1000, "end": last,
                                       "change": (last[1] - after_1000[1]) / after_1000[1]}  # fmt: skip
    return result


def sigterm_cell(model: str, window_ms: float, max_batch: int, clients: int, after_s: float, latent: int,
                 image_values: int, log: Path) -> dict[str, Any]:  # fmt: skip
    """SIGTERM to a server under load from `clients` single-sample clients, `after_s` seconds in.

    Accepted means the app saw it: the server's access log (one JSON line per request, written when
    the answer has gone) says what it answered. Passed when every request in that log was answered
    200 and the client received exactly that many complete 200 answers (whole NPY bodies), with no
    answer cut short; requests that found the server gone (connection refused or closed before any
    byte of an answer) were never accepted and are counted apart. The client stops by itself once
    the server is gone (or at 60 s, or 200,000 requests)."""
    import signal

    from http_client import NOT_ACCEPTED

    server = Server(model, window_ms, max_batch, log=log)
    cmd = _client_cmd(server, "single", model, clients, 200_000, 60.0, latent, image_values)
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after_s)
    sent_at = time.perf_counter()
    server.proc.send_signal(signal.SIGTERM)
    code = server.proc.wait(60)
    stopped_s = time.perf_counter() - sent_at
    out, err = client.communicate(timeout=120)
    if client.returncode != 0:
        raise RuntimeError(f"the load client failed: {err}")
    result = json.loads(out.strip().splitlines()[-1])
    answered: dict[str, int] = {}
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"path"' in line:
            entry = json.loads(line)
            if entry["path"].endswith("/sample"):
                answered[str(entry["status"])] = answered.get(str(entry["status"]), 0) + 1
    ok = result["statuses"].get("200", 0)
    result.update({
        "batching": "on" if window_ms > 0 else "off", "model": model, "sigterm_after_s": after_s,
        "server_exit_code": code, "server_stopped_s": round(stopped_s, 3), "server_answered": answered,
        "passed": answered.get("200", 0) == ok
        and sum(answered.values()) == ok
        and result["truncated"] == 0
        and set(result["statuses"]) <= {"200", str(NOT_ACCEPTED)},
    })  # fmt: skip
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
        f"Command: `{report['command']}`, started {report['started_utc']} UTC, {report['wall_s']:.0f} s. "
        f"Load average (1, 5, 15 min) at the start {report['machine'].get('load_average', '?')}, at the end "
        f"{report.get('load_average_end', '?')}.",
        "",
        f"Library `sample` at batch {lib['batch']} ({report['model']}): **{lib['images_per_s']:,.0f} images/s** "
        f"(p50 {lib['p50_ms']:.1f} ms), same run.",
        "",
        "| model | batching | workload | clients | requests | req/s | images/s | p50 ms | p90 ms | p99 ms | errors "
        "| 503 | client CPU share | server RSS MB (start -> end) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["cells"]:
        lines.append(
            f"| {r['model']} | {r['batching']} | {r['workload']} | {r['clients']} | {r['requests']:,} | "
            f"{r['requests_per_s']:,.0f} | {r['images_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['errors']} | {r['rejected_503']} | {r['client_cpu_share']:.0%} | "
            f"{r['server_rss_mb'][0]:.0f} -> {r['server_rss_mb'][1]:.0f} |"
        )
    for name in sorted({c["model"] for c in report["cells"]} - {report["model"]}):
        on = [c["requests_per_s"] for c in report["cells"] if c["model"] == name and c["batching"] == "on"]
        off = [c["requests_per_s"] for c in report["cells"] if c["model"] == name and c["batching"] == "off"]
        if not on or not off:
            continue
        # a cell that answered nothing reads 0 req/s: its ratio is infinite, not a crash of the report
        pairs = ", ".join(f"{a:,.0f} / {b:,.0f} = {a / max(b, 1e-9):.2f}x" for a, b in zip(on, off))
        lines += ["", f"{name}, 64 single-sample clients, batching on / off, repeat by repeat: {pairs}; "
                  f"medians {statistics.median(on) / max(statistics.median(off), 1e-9):.2f}x."]  # fmt: skip
    mem = report.get("memory")
    if mem:
        m = mem["rss_from_request_1000"]
        lines += ["", f"Memory: {mem['requests']:,} single-code decode requests (NPY) from {mem['clients']} clients "
                  f"in {mem['seconds']:.0f} s ({mem['requests_per_s']:,.0f} req/s, p99 {mem['p99_ms']:.1f} ms), "
                  f"batching on: server RSS {m['at'][1]:.1f} MB at request {m['at'][0]:,.0f}, {m['end'][1]:.1f} MB "
                  f"at request {m['end'][0]:,.0f} ({m['change']:+.1%}); {mem['errors']} errors, "
                  f"{mem['rejected_503']} 503s."]  # fmt: skip
    term = report.get("sigterm")
    if term:
        lines += ["", f"SIGTERM {term['sigterm_after_s']} s into {term['clients']} single-sample clients "
                  f"(batching {term['batching']}): the server answered {term['server_answered']} "
                  f"(access log) and stopped {term['server_stopped_s']:.2f} s after the signal (exit "
                  f"{term['server_exit_code']}); the client got {term['statuses'].get('200', 0):,} complete 200 "
                  f"answers, {term['truncated']} cut short, {term['not_accepted']} requests not accepted "
                  f"(server gone). " + ("**Passed**: every accepted request got its whole answer." if term["passed"]
                  else "**FAILED**: an accepted request did not get its whole answer.")]  # fmt: skip
    return "\n".join(lines) + "\n"


def chart(report: dict[str, Any], path: Path) -> None:
    from vaegen_infer.plots import line_chart

    series: dict[str, tuple[list[float], list[float]]] = {}
    for mode in ("on", "off"):
        cells = [c for c in report["cells"] if c["batching"] == mode and c["workload"] == "single"
                 and c["model"] == report["model"]]  # fmt: skip
        if cells:
            xs = [c["clients"] for c in cells]
            series[f"batching {mode}"] = (xs, [max(c["requests_per_s"], 1e-3) for c in cells])
    image = line_chart(series, f"{report['model']}: single-sample requests/s over HTTP", "concurrent clients",
                       "requests/s", log_x=True, log_y=False)  # fmt: skip
    image.save(path)


def _image_values(model: str) -> tuple[int, int]:
    """(latent size, values per image C x H x W) of a bundle."""
    import vaegen_infer as vi

    g = vi.load(model, providers="cpu")
    return g.latent_dim, int(np.prod(g.image_shape))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    ap.add_argument("--clients", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--latent", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--image-values", type=int, default=784, help=argparse.SUPPRESS)
    ap.add_argument("--model", default="mnist-vae")
    ap.add_argument(
        "--single64",
        nargs="*",
        default=["color-dsprites"],
        help="Further bundles measured with 64 single-sample clients, batching on and off.",
    )
    ap.add_argument("--seconds", type=float, default=6.0, help="Most seconds per cell.")
    ap.add_argument("--requests", type=int, default=20_000, help="Most requests per cell.")
    ap.add_argument("--max-batch", type=int, default=4096, help="The server's --max-batch.")
    ap.add_argument("--quick", action="store_true", help="Clients 1 and 8 only, no 256.")
    ap.add_argument("--memory-requests", type=int, default=100_000, help="Requests of the memory cell (0: none).")
    ap.add_argument("--memory-seconds", type=float, default=240.0, help="Most seconds of the memory cell.")
    ap.add_argument("--memory-clients", type=int, default=128, help="Clients of the memory cell.")
    ap.add_argument("--sigterm-after", type=float, default=3.0, help="Seconds of load before SIGTERM (0: no cell).")
    ap.add_argument("--warmup-seconds", type=float, default=1.5,
                    help="Seconds of 64 single-sample clients after each server start, not counted (0: none).")
    ap.add_argument("--single64-repeats", type=int, default=2,
                    help="Times each --single64 bundle is measured, batching on then off, each on a fresh server.")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.client:
        client_main(args)
        return

    from vaegen_infer.bench import machine_info

    latent, values = _image_values(args.model)
    started = time.time()
    report: dict[str, Any] = {
        "model": args.model, "machine": machine_info(), "settings": vars(args) | {"out": str(args.out)},
        "command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:]),
        "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
        "library": library_baseline(args.model, 4096, min(args.seconds, 5.0)),
        "cells": [],
    }  # fmt: skip

    def show(r: dict[str, Any]) -> None:
        print(f"{r['model']} batching {r['batching']} {r['workload']} x{r['clients']}: {r['requests_per_s']:,.0f} "
              f"req/s, {r['images_per_s']:,.0f} images/s, p99 {r['p99_ms']:.1f} ms, errors {r['errors']}, "
              f"client CPU {r['client_cpu_share']:.0%}", flush=True)  # fmt: skip

    singles = (1, 8) if args.quick else (1, 8, 64, 256)
    for mode, window in (("on", 2.0), ("off", 0.0)):
        server = Server(args.model, window, args.max_batch)
        try:
            warm_up(server, args.model, args.warmup_seconds, latent, values)
            cells = [("single", c) for c in singles] + [("bundle", 64), ("mixed", 16)]
            for kind, clients in cells:
                r = run_cell(server, kind, args.model, clients, args.requests, args.seconds, latent, values)
                r["batching"] = mode
                report["cells"].append(r)
                show(r)
            if mode == "on" and args.memory_requests:
                mem = memory_cell(server, args.model, args.memory_clients, args.memory_requests,
                                  args.memory_seconds, latent, values)  # fmt: skip
                report["memory"] = mem
                m = mem["rss_from_request_1000"]
                print(
                    f"memory: RSS {m['at'][1]:.1f} MB at request {m['at'][0]:,.0f}, {m['end'][1]:.1f} MB at "
                    f"{m['end'][0]:,.0f} ({m['change']:+.1%}), {mem['requests_per_s']:,.0f} req/s",
                    flush=True,
                )
        finally:
            server.stop()
    for name in args.single64:
        other_latent, other_values = _image_values(name)
        for mode, window in [("on", 2.0), ("off", 0.0)] * max(1, args.single64_repeats):
            server = Server(name, window, args.max_batch)
            try:
                warm_up(server, name, args.warmup_seconds, other_latent, other_values)
                r = run_cell(server, "single", name, 64, args.requests, args.seconds, other_latent, other_values)
            finally:
                server.stop()
            r["batching"] = mode
            report["cells"].append(r)
            show(r)
    if args.sigterm_after > 0:
        with tempfile.TemporaryDirectory() as tmp:
            term = sigterm_cell(args.model, 2.0, args.max_batch, 64, args.sigterm_after, latent, values,
                                Path(tmp) / "server.log")  # fmt: skip
        report["sigterm"] = term
        print(
            f"SIGTERM: passed {term['passed']}, answered {term['server_answered']}, client {term['statuses']}",
            flush=True,
        )
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
