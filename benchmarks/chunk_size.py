"""Does a bigger per-chunk batch help the batch-split CPU runner? float32 and int8 decoders.

    python benchmarks/chunk_size.py --int8-bundle DIR [--batches 512,4096] [--rounds 5]

runners.SplitRunner cuts a batch into chunks of at least MIN_ROWS_PER_PART rows, about four per
thread, that the threads take in turn. This times `Model.decode` with 1, 2 and 4 chunks per
thread (chunk rows = ceil(n / (k * threads)), never under MIN_ROWS_PER_PART), interleaved rounds,
p50 of all calls, for the float32 graphs and the int8 variant (a bundle with one, `python -m train
variants DIR --int8`). Prints a table and writes chunk_size.json.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaegen_infer.bench import machine_info  # noqa: E402
from vaegen_infer.io import save_json  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    import vaegen_infer as vi
    from vaegen_infer import runners

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--int8-bundle", type=Path, required=True)
    parser.add_argument("--batches", default="512,4096")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3, help="timed calls per setting and round")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "chunk_size.json")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/chunk_size.py", *(sys.argv[1:] if argv is None else argv)])

    models = {p: vi.load(args.int8_bundle, providers="cpu", precision=p) for p in ("float32", "int8")}
    per_thread = (1, 2, 4)
    original = runners.SplitRunner.chunks

    def chunks_with(k: int) -> Callable[[runners.SplitRunner, int], list[tuple[int, int]]]:
        def chunks(self: runners.SplitRunner, n: int) -> list[tuple[int, int]]:
            if not self._splits(n):
                return [(0, n)]
            size = max(self.min_rows, -(-n // (k * self.parts)))
            return [(lo, min(lo + size, n)) for lo in range(0, n, size)]

        return chunks

    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        z = models["float32"].sample_latents(batch, seed=0)
        samples: dict[tuple[str, int], list[float]] = {(p, k): [] for p in models for k in per_thread}
        for key in samples:
            runners.SplitRunner.chunks = chunks_with(key[1])  # type: ignore[method-assign]
            models[key[0]].decode(z)  # warm
        for r in range(args.rounds):
            for key in samples if r % 2 == 0 else reversed(list(samples)):
                runners.SplitRunner.chunks = chunks_with(key[1])  # type: ignore[method-assign]
                for _ in range(args.calls):
                    t = time.perf_counter()
                    models[key[0]].decode(z)
                    samples[key].append(time.perf_counter() - t)
        runners.SplitRunner.chunks = original  # type: ignore[method-assign]
        for (p, k), s in samples.items():
            rows.append({"precision": p, "batch": batch, "chunks_per_thread": k, "p50_ms": float(np.median(s) * 1e3)})
            print(f"{p:8s} b{batch:<5d} {k} chunk(s) per thread: p50 {np.median(s) * 1e3:8.2f} ms", flush=True)
    save_json(args.out, {"meta": {**machine_info(), "command": command}, "rows": rows})


if __name__ == "__main__":
    main()
