"""One cell of benchmarks/serve_load.py for any bundle: 64 concurrent single-sample clients, batching
on (2 ms) and off, 3 s each (the full run's other cells left out, to fit a shared machine's budget).

    python benchmarks/serve_load_single64.py color-dsprites

Writes benchmarks/results/serve_load_single64-NAME.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import RESULTS, Server, _image_values, run_cell


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "mnist-vae"
    latent, values = _image_values(name)
    out: dict = {"model": name, "command": f"python benchmarks/serve_load_single64.py {name}", "cells": [],
                 "load_average_start": os.getloadavg()}  # fmt: skip
    for mode, window in (("on", 2.0), ("off", 0.0)):
        server = Server(name, window, 4096)
        try:
            r = run_cell(server, "single", name, 64, 20_000, 3.0, latent, values)
        finally:
            server.stop()
        r["batching"] = mode
        out["cells"].append(r)
        print(f"{name} batching {mode}: {r['requests_per_s']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
              f"p99 {r['p99_ms']:.1f} ms, errors {r['errors']}, client CPU share {r['client_cpu_share']:.0%}")
    out["load_average_end"] = os.getloadavg()
    path = RESULTS / f"serve_load_single64-{name}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
