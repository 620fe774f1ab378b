"""What each of the server's speed fixes is worth: `vaegen-infer serve` with all of them, with each one
undone in turn, and with none, under the same load.

    python benchmarks/serve_ablation.py [--model mnist-vae] [--clients 64] [--seconds 5]

The fixes (see README "Serve it"): small batches on one ONNX Runtime thread instead of a spinning
pool (`spin`), `tune_gc` (`gc`), operation POSTs dispatched past the router (`router`), one event-loop
wake-up per batch (`handoff`). A variant undoes fixes by patching the server process before it
starts (this file only; the server has no switch for them). The load: the raw HTTP/1.1 client of
benchmarks/http_client.py, `--clients` connections of single-sample NPY requests, batching on (2 ms).
Reported per variant: requests/s, p50/p99 latency, CPU milliseconds per request of the event-loop
thread, of the server's other threads (batcher, ONNX Runtime) and of the client.

Writes benchmarks/results/serve_ablation[-MODEL].md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from serve_load import _client_cmd, _free_port, _get  # noqa: E402

FIXES = ("spin", "gc", "router", "handoff")

# Run in the server process before `vaegen-infer serve`: undo the fixes named in sys.argv[1].
LAUNCHER = r"""
import sys
undo = set(filter(None, sys.argv[1].split(",")))
if "spin" in undo:  # small batches back on ONNX Runtime's spinning pool (the library's default)
    import vaegen_infer.cli as cli
    load = cli._load
    cli._load = lambda model, providers, threads=None, **kw: load(model, providers, threads)
if "gc" in undo:
    import vaegen_infer.serve as serve
    serve.tune_gc = lambda: None
if "router" in undo:  # every request through FastAPI's router again
    import vaegen_infer.serve.app as app
    build = app.create_app
    def create_app(models, settings):
        made = build(models, settings)
        made.state.vaegen.endpoints.clear()
        return made
    app.create_app = create_app
if "handoff" in undo:  # one concurrent future and one loop wake-up per request
    import asyncio
    from vaegen_infer.serve.batcher import Batcher
    async def submit_async(self, rows):
        return await asyncio.wrap_future(self.submit(rows))
    Batcher.submit_async = submit_async
from vaegen_infer.cli import main
sys.argv = ["vaegen-infer", *sys.argv[2:]]
main()
"""


def thread_cpu(pid: int) -> dict[int, float]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


class _Port:
    def __init__(self, port: int) -> None:
        self.port = port


def variant(model: str, undo: tuple[str, ...], clients: int, seconds: float, latent: int,
            values: int) -> dict[str, Any]:  # fmt: skip
    port = _free_port()
    cmd = [sys.executable, "-c", LAUNCHER, ",".join(undo), "serve", "--model", model, "--port", str(port),
           "--providers", "cpu", "--batch-window-ms", "2", "--max-batch", "4096", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while _get(f"http://127.0.0.1:{port}/readyz", 1)[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.1)
        before = thread_cpu(proc.pid)
        client = _client_cmd(_Port(port), "single", model, clients, 1_000_000, seconds, latent, values)  # type: ignore[arg-type]
        out = subprocess.run(client, check=True, capture_output=True, text=True, timeout=seconds + 120)
        after = thread_cpu(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    n = max(r["statuses"].get("200", 0), 1)
    loop = after.get(proc.pid, 0.0) - before.get(proc.pid, 0.0)  # the main thread runs the event loop
    others = sum(v - before.get(t, 0.0) for t, v in after.items() if t != proc.pid)
    return {
        "undo": list(undo), "requests_per_s": r["requests_per_s"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
        "errors": r["errors"], "event_loop_ms": loop * 1000 / n, "other_threads_ms": others * 1000 / n,
        "client_ms": r["client_cpu_s"] * 1000 / n, "requests": r["requests"],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist-vae")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    import numpy as np

    import vaegen_infer as vi

    g = vi.load(args.model, providers="cpu")
    latent, values = g.latent_dim, int(np.prod(g.image_shape))
    started = time.time()
    variants: list[tuple[str, ...]] = [(), *((f,) for f in FIXES), FIXES]
    rows = []
    for undo in variants:
        r = variant(args.model, undo, args.clients, args.seconds, latent, values)
        rows.append(r)
        print(f"undo {','.join(undo) or '-':28s} {r['requests_per_s']:7.0f} req/s  p99 {r['p99_ms']:7.1f} ms  "
              f"loop {r['event_loop_ms']:.3f}  others {r['other_threads_ms']:.3f}  client {r['client_ms']:.3f} ms/req",
              flush=True)  # fmt: skip
    names = {"spin": "small batches on a spinning 2-thread pool", "gc": "default garbage collection",
             "router": "every request through the router", "handoff": "a loop wake-up per request"}  # fmt: skip
    command = "python benchmarks/serve_ablation.py " + " ".join(sys.argv[1:])
    lines = [
        f"Command: `{command}`, started {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC, load "
        f"average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}. `{args.model}`, {args.clients} "
        f"clients of single-sample NPY requests, batching on (2 ms), {args.seconds:.0f} s per variant.",
        "",
        "| server | req/s | p50 ms | p99 ms | errors | event loop CPU ms/req | other threads ms/req | client ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        what = ("all fixes" if not r["undo"] else "no fixes (as before)" if len(r["undo"]) == len(FIXES)
                else "all but: " + names[r["undo"][0]])  # fmt: skip
        lines.append(f"| {what} | {r['requests_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | "
                     f"{r['event_loop_ms']:.3f} | {r['other_threads_ms']:.3f} | {r['client_ms']:.3f} |")  # fmt: skip
    suffix = "" if args.model == "mnist-vae" else f"-{args.model}"
    out = ROOT / "benchmarks" / "results" / f"serve_ablation{suffix}"
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
