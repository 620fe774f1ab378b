"""Which ONNX Runtime session settings should the CPU runtime use? Measure them on this machine.

    python benchmarks/session_settings.py [--bundle exported/mnist-vae] [--rounds 5] [--quick]

Three questions, each answered with the other settings held at the runtime's defaults:

1. Graph optimisation level (disable / basic / extended / all): run time (single-threaded
   sessions, so that threading does not blur the graph's own effect), and session creation
   time, which every `vaegen-infer` command pays.
2. How to use the cores (T = physical cores): one session with ONNX Runtime's T intra-op
   threads, spinning on (ONNX Runtime's default), spinning stopped after each run
   (`session.force_spinning_stop`), or spinning off (`session.intra_op.allow_spinning` = 0);
   against the batch split (runners.SplitRunner: T threads take chunks of at least
   MIN_ROWS_PER_PART rows of a batch, one after another, on one single-threaded session); and
   one thread alone.
3. Two sessions in one process (reconstruct: encode, then decode the codes, over and over): each
   session with its own intra-op pool (three spinning policies), ONNX Runtime's process-wide
   (global) pool shared by both, or the batch split on the runtime's shared worker threads.

Configurations are timed in interleaved rounds (each round runs every configuration once, in a
fresh order) so that load from other processes hits all of them alike; the p50 over all rounds is
reported. Writes benchmarks/results/session_settings.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaegen_infer.bench import machine_info, time_calls  # noqa: E402
from vaegen_infer.providers import MIN_ROWS_PER_PART  # noqa: E402
from vaegen_infer.runners import SessionRunner, SplitRunner  # noqa: E402

LEVELS = ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL")


def options(ort: Any, level: str, threads: int, spinning: bool, shared: bool, stop_spin: bool = False) -> Any:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if shared:
        opts.use_per_session_threads = False  # run on the process's global pools
    else:
        opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        if stop_spin:  # spin during a run, stop as soon as it returns
            opts.add_session_config_entry("session.force_spinning_stop", "1")
    return opts


# Pause between two configurations' blocks of calls. A session's pool threads keep spinning for a
# while after its last run; without the pause they would steal the cores from the next
# configuration (on 2 cores, that doubled some timings), and each configuration is meant to be
# measured as if it were alone. The pool comparison (section 4) measures exactly that contention
# between an encoder and a decoder, inside one configuration.
SETTLE_S = 0.05


def interleaved_p50(configs: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, float]:
    """p50 ms per configuration over `rounds` rounds of `calls` calls each, configurations shuffled per round."""
    samples: dict[str, list[float]] = {k: [] for k in configs}
    order = list(configs)
    rng = random.Random(0)
    for fn in configs.values():  # warm-up: first runs allocate arenas and pre-pack weights
        for _ in range(3):
            fn()
    for _ in range(rounds):
        rng.shuffle(order)
        for key in order:
            time.sleep(SETTLE_S)
            configs[key]()  # one untimed call wakes the pool after the pause
            samples[key] += time_calls(configs[key], calls)
    return {k: float(np.median(v) * 1000) for k, v in samples.items()}


def calls_for(batch: int) -> int:
    return {1: 200, 2: 200, 4: 150, 8: 100, 64: 30, 512: 6}.get(batch, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "exported" / "mnist-vae")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one round, batches 1 and 64 (a smoke test)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    batches = (1, 8) if args.quick else (1, 2, 4, 8, 64, 512, 4096)

    import onnxruntime as ort

    from vaegen_infer.providers import physical_cores

    cores = physical_cores()
    graphs = {role: (args.bundle / f"{role}.onnx").read_bytes() for role in ("encoder", "decoder")}
    rng = np.random.default_rng(0)
    latent_dim = json.loads((args.bundle / "model.json").read_text())["latent_dim"]

    def session(role: str, level: str = "ORT_ENABLE_ALL", threads: int = cores, spinning: bool = True,
                shared: bool = False, stop_spin: bool = False) -> Any:  # fmt: skip
        opts = options(ort, level, threads, spinning, shared, stop_spin)
        return ort.InferenceSession(graphs[role], opts, providers=["CPUExecutionProvider"])

    def feeds(role: str, batch: int) -> dict[str, np.ndarray]:
        if role == "decoder":
            return {"z": rng.standard_normal((batch, latent_dim), dtype=np.float32)}
        return {"x": rng.random((batch, 1, 28, 28), dtype=np.float32)}

    results: dict[str, Any] = {"meta": machine_info(), "physical_cores": cores, "rounds": rounds}
    results["meta"]["command"] = "python benchmarks/session_settings.py" + (" --quick" if args.quick else "")

    # 1. optimisation level: creation time (median of 5) and run time, one thread.
    creation: dict[str, float] = {}
    for level in LEVELS:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            session("decoder", level, threads=1)
            times.append(time.perf_counter() - started)
        creation[level] = float(np.median(times) * 1000)
    results["creation_ms_decoder"] = creation
    level_runs: dict[str, Any] = {}
    for role in ("encoder", "decoder"):
        sessions = {level: session(role, level, threads=1) for level in LEVELS}
        for batch in [b for b in batches if b in (1, 64, 512)]:
            f = feeds(role, batch)
            configs = {lv: (lambda s=s, f=f: s.run(None, f)) for lv, s in sessions.items()}
            level_runs[f"{role} b{batch}"] = interleaved_p50(configs, rounds, calls_for(batch))
            print(f"level    {role} b{batch}: {level_runs[f'{role} b{batch}']}", flush=True)
    results["level_p50_ms"] = level_runs

    # 2. how to use the cores, one session at a time.
    def split(role: str) -> SplitRunner:
        return SplitRunner(session(role, threads=1), cores, MIN_ROWS_PER_PART)

    parallel_runs: dict[str, Any] = {}
    for role in ("encoder", "decoder"):
        out = ["x"] if role == "decoder" else ["mu", "logvar"]
        runners: dict[str, Any] = {
            "1 thread": SessionRunner(session(role, threads=1)),
            f"intra-op {cores}, spin on": SessionRunner(session(role)),
            f"intra-op {cores}, spin + stop after run": SessionRunner(session(role, stop_spin=True)),
            f"intra-op {cores}, spin off": SessionRunner(session(role, spinning=False)),
            f"batch split, {cores} threads": split(role),
        }
        for batch in batches:
            f = feeds(role, batch)
            configs = {k: (lambda r=r, f=f, out=out: r.run(out, f)) for k, r in runners.items()}
            parallel_runs[f"{role} b{batch}"] = interleaved_p50(configs, rounds, calls_for(batch))
            print(f"parallel {role} b{batch}: {parallel_runs[f'{role} b{batch}']}", flush=True)
    results["parallel_p50_ms"] = parallel_runs

    # 3. two sessions in one process, called in turn.
    def pair(**kw: Any) -> tuple[Any, Any]:
        return SessionRunner(session("encoder", **kw)), SessionRunner(session("decoder", **kw))

    pairs: dict[str, tuple[Any, Any]] = {
        "own pools, spin on": pair(),
        "own pools, spin + stop after run": pair(stop_spin=True),
        "own pools, spin off": pair(spinning=False),
        f"batch split, {cores} threads": (split("encoder"), split("decoder")),
    }
    # Python's onnxruntime refuses sessions with their own pools once the global pools exist, so
    # every other session is made first, then the global pool (sized like the runtime's).
    ort.set_global_thread_pool_sizes(cores, 1)
    pairs["ONNX Runtime global pool"] = pair(shared=True)
    pool_runs: dict[str, Any] = {}
    for batch in [b for b in batches if b <= 512]:
        x = feeds("encoder", batch)

        def reconstruct(enc: Any, dec: Any, x: dict[str, np.ndarray] = x) -> object:
            mu, _ = enc.run(["mu", "logvar"], x)
            return dec.run(["x"], {"z": mu})

        configs = {name: (lambda e=e, d=d: reconstruct(e, d)) for name, (e, d) in pairs.items()}
        pool_runs[f"reconstruct b{batch}"] = interleaved_p50(configs, rounds, calls_for(batch))
        print(f"pools    b{batch}: {pool_runs[f'reconstruct b{batch}']}", flush=True)
    results["pools_p50_ms"] = pool_runs

    results["meta"]["load_average_end"] = machine_info()["load_average"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "session_settings.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "session_settings.md").write_text(markdown(results) + "\n")
    print(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    m = results["meta"]
    lines = [
        "# ONNX Runtime session settings, measured",
        "",
        f"{m['cpu']}, {m['physical_cores']} physical cores ({m['logical_cpus']} logical); onnxruntime "
        f"{m['onnxruntime']}. p50 in ms over {results['rounds']} interleaved rounds. Command: `{m['command']}`. "
        f"Load average (1, 5, 15 min) at the start: {m['load_average']}, at the end: {m['load_average_end']}.",
        "",
        "Session creation (decoder), ms: "
        + ", ".join(f"{k.removeprefix('ORT_')} {v:.1f}" for k, v in results["creation_ms_decoder"].items()),
    ]
    for title, key in (
        ("Graph optimisation level (1 thread)", "level_p50_ms"),
        ("Using the cores: intra-op threads and spinning, or the batch split", "parallel_p50_ms"),
        ("Two sessions in one process: reconstruct (encode, then decode)", "pools_p50_ms"),
    ):
        table = results[key]
        cols = list(next(iter(table.values())))
        lines += ["", f"## {title}", "", "| case | " + " | ".join(c.removeprefix("ORT_") for c in cols) + " |"]
        lines.append("| --- | " + " | ".join("---:" for _ in cols) + " |")
        for case, row in table.items():
            best = min(row.values())
            cells = [f"**{row[c]:.3f}**" if row[c] == best else f"{row[c]:.3f}" for c in cols]
            lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
