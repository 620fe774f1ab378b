"""Latency side by side: this runtime, raw ONNX Runtime, PyTorch eager and torch.compile, in one run.

    python benchmarks/latency.py                      # the full run (several minutes)
    python benchmarks/latency.py --quick              # a smoke test: batches 1 and 8, tiny budgets

Same weights for every engine: the bundle's ONNX graphs for the ONNX Runtime engines, and the
PyTorch model rebuilt from those graphs' weights (`train.export.model_from_bundle`) for PyTorch.

- Operations: encode, decode, sample (prior draw + decode) and sample -> PNG (grid + PNG bytes,
  in memory). Batch sizes 1, 8, 64, 512, 4096. Each engine's inputs are the same arrays.
- Method: per (operation, batch) cell, each engine is warmed up, then timed in `--rounds`
  interleaved rounds (engines in a fresh order each round, a short pause between engines so
  one engine's spinning threads do not slow the next), so load from other processes falls on all
  engines alike. Reported: p50, p90, p99, images/s at the p50, and ratios ours / peer of the p50.
- The limit: numpy's float32 GEMM rate measured in the same run (start and end, the higher
  median counts); each engine's achieved FLOP/s, counted from the graphs (benchmarks/flops.py),
  as a fraction of it.
- Library overhead: `Model.decode` against a bare `session.run` on the same session at batch 1.
- End to end: wall time and peak RSS of the `vaegen-infer sample --n 64` process against
  benchmarks/torch_sample.py doing the same in PyTorch, median over `--e2e-runs` alternated runs.

Writes benchmarks/results/latency.json, latency.md, latency.png (decode p50 against batch size,
one line per engine) and latency-encode.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.flops import flops_per_item  # noqa: E402
from vaegen_infer.bench import (  # noqa: E402
    DEFAULT_BATCHES,
    OPERATIONS,
    Timing,
    encode_png,
    machine_info,
    markdown_table,
    model_operations,
    repeats_for,
    summarize,
    time_calls,
    warm_up,
)

OURS = "vaegen-infer"
INT8 = "vaegen-infer-int8"  # the bundle's int8 variant (built into a temporary copy when it has none)
OPENVINO = ("openvino-latency", "openvino-throughput")  # OpenVINO's CPU plugin, one engine per performance hint
ENGINES = (OURS, INT8, "onnxruntime-default", *OPENVINO, "torch-eager", "torch-eager-1t", "torch-compile")
EAGER = ("torch-eager", "torch-eager-1t")  # the goals compare with the faster of the two, per cell
SETTLE_S = 0.03  # pause between engines' blocks: lets ONNX Runtime pools stop spinning
Ops = dict[str, Callable[[], object]]


@dataclass
class Engine:
    name: str
    # batch, codes (B, D), images (B, C, H, W) -> the four operations; None when unavailable
    ops_for: Callable[[int, np.ndarray, np.ndarray], Ops] | None
    about: str  # provider and threads, or "not available: <reason>"


# -- engines ------------------------------------------------------------------------------------


def ours_engine(
    bundle: Path, threads: int | None, providers: str = "cpu", precision: str = "float32"
) -> tuple[Engine, Any]:
    import vaegen_infer as vi

    g = vi.load(bundle, providers=providers, threads=threads, precision=precision)
    g.provider("encoder"), g.provider("decoder")  # create both sessions now, outside any timing

    def ops(batch: int, z: np.ndarray, images: np.ndarray) -> Ops:
        return model_operations(g, batch)  # same seed, so the same z and images as the peers get

    name = OURS if precision == "float32" else INT8
    where = g.provider("decoder")
    about = f"{where}, {g.threads()} threads" if where == "cpu" else f"{where}, device {g.request.device_id}"
    return Engine(name, ops, f"{about} (vaegen_infer.load, precision {g.precision})"), g


def int8_bundle(bundle: Path, tmp: Path) -> Path:
    """The bundle itself when it carries an int8 variant, else a temporary copy with one built
    (train.variants: QDQ, calibrated on the bundle's training images)."""
    import shutil

    from vaegen_infer.bundle import read_manifest

    if "int8" in read_manifest(bundle).variants:
        return bundle
    from train.variants import build_variants

    copy = tmp / bundle.name
    shutil.copytree(bundle, copy)
    build_variants(copy, int8=True, fp16=False)
    return copy


def openvino_engines(bundle: Path, threads: int | None) -> list[Engine]:
    """OpenVINO's CPU plugin on the same ONNX graphs, once with each performance hint: LATENCY
    (one stream, for one request at a time) and THROUGHPUT (several streams; one synchronous
    request still runs on one of them, as a caller with one request at a time would use it)."""
    try:
        import openvino as ov
    except ImportError as exc:
        return [Engine(name, None, f"not available: {exc} (pip install openvino)") for name in OPENVINO]
    import vaegen_infer as vi
    from vaegen_infer.images import make_grid

    core = ov.Core()
    prior = vi.load(bundle, providers="cpu").prior
    engines = []
    for name, hint in zip(OPENVINO, ("LATENCY", "THROUGHPUT"), strict=True):
        # f32 like the graphs: on CPUs with AMX or AVX-512 BF16 (this one has both) the plugin's
        # default inference precision is bf16, which would compare 8-bit mantissas with float32.
        config: dict[str, Any] = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        enc = core.compile_model(str(bundle / "encoder.onnx"), "CPU", config).create_infer_request()
        dec = core.compile_model(str(bundle / "decoder.onnx"), "CPU", config).create_infer_request()

        def ops(batch: int, z: np.ndarray, images: np.ndarray, enc: Any = enc, dec: Any = dec) -> Ops:
            def decode(zz: np.ndarray) -> np.ndarray:
                return dec.infer({"z": zz})["x"]  # (B, C, H, W); the port's own buffer, read at once

            def sample() -> np.ndarray:
                return decode(prior.sample(len(z), np.random.default_rng(0)))

            return {
                "encode": lambda: enc.infer({"x": images}),
                "decode": lambda: decode(z),
                "sample": sample,
                "sample-png": lambda: encode_png(make_grid(sample(), scale=2)),
            }

        about = f"openvino {ov.__version__.split('-')[0]} CPU plugin, PERFORMANCE_HINT {hint}, f32"
        engines.append(Engine(name, ops, about))
    return engines


def ort_default_engine(bundle: Path, providers: str = "cpu") -> Engine:
    import onnxruntime as ort

    import vaegen_infer as vi
    from vaegen_infer.images import make_grid

    # What a raw ONNX Runtime user would write too: the prior drawn in numpy from model.json.
    prior = vi.load(bundle, providers="cpu").prior  # sessions open lazily: none is created here
    eps = ["CUDAExecutionProvider", "CPUExecutionProvider"] if providers == "cuda" else ["CPUExecutionProvider"]
    enc = ort.InferenceSession(str(bundle / "encoder.onnx"), providers=eps)
    dec = ort.InferenceSession(str(bundle / "decoder.onnx"), providers=eps)

    def ops(batch: int, z: np.ndarray, images: np.ndarray) -> Ops:
        def sample() -> np.ndarray:
            zz = prior.sample(len(z), np.random.default_rng(0))  # (B, D), the bundle's prior in numpy
            return dec.run(["x"], {"z": zz})[0]

        return {
            "encode": lambda: enc.run(None, {"x": images}),
            "decode": lambda: dec.run(["x"], {"z": z}),
            "sample": sample,
            "sample-png": lambda: encode_png(make_grid(sample(), scale=2)),
        }

    return Engine("onnxruntime-default", ops, f"{providers}, InferenceSession(path) with default SessionOptions")


def torch_ops(
    encode: Callable[[Any], Any],
    decode: Callable[[Any], Any],
    draw: Callable[[int, Any], Any],
    threads: int | None = None,
) -> Callable[..., Ops]:
    """The four operations in PyTorch; with `threads`, each call runs at that many intra-op threads
    (torch's setting is process-wide, so it is set for the call and restored: ~0.5 us)."""
    import torch

    from vaegen_infer.images import make_grid

    default = torch.get_num_threads()

    def ops(batch: int, z: np.ndarray, images: np.ndarray) -> Ops:
        x_t, z_t = torch.from_numpy(images), torch.from_numpy(z)  # shares memory: no copy
        gen = torch.Generator().manual_seed(0)

        def run(fn: Callable[[Any], Any], arg: Any) -> Any:
            if threads is not None:
                torch.set_num_threads(threads)
            try:
                with torch.inference_mode():
                    return fn(arg)
            finally:
                if threads is not None:
                    torch.set_num_threads(default)

        def sample() -> Any:
            return run(decode, draw(batch, gen))  # the model's prior, in torch: (B, D)

        return {
            "encode": lambda: run(encode, x_t),
            "decode": lambda: run(decode, z_t),
            "sample": sample,
            "sample-png": lambda: encode_png(make_grid(sample().numpy(), scale=2)),
        }

    return ops


def torch_engines(
    bundle: Path, batches: Sequence[int], with_compile: bool, warm: Callable[[int], tuple[np.ndarray, np.ndarray]]
) -> tuple[list[Engine], dict[str, Any]]:
    import torch

    from train.export import model_from_bundle

    model = model_from_bundle(bundle)
    draw = model.sample_prior  # (n, generator) -> z (n, D) from the bundle's prior
    threads = torch.get_num_threads()
    decode = lambda z: torch.sigmoid(model.decode(z))  # noqa: E731  logits -> images in [0, 1]
    engines = [
        Engine(
            "torch-eager",
            torch_ops(model.encode, decode, draw),
            f"cpu, torch {torch.__version__}, its default {threads} threads, inference_mode",
        ),
        # torch's OpenMP threads wait for each other at every operator: on a machine where other
        # processes hold the cores, one thread can be much faster, so that is measured too.
        Engine("torch-eager-1t", torch_ops(model.encode, decode, draw, threads=1), "as torch-eager, 1 thread"),
    ]
    info: dict[str, Any] = {"torch": str(torch.__version__), "torch_threads": threads}
    if not with_compile:
        return engines, info
    import torch._dynamo.exc

    enc_c = torch.compile(model.encode)
    dec_c = torch.compile(lambda z: torch.sigmoid(model.decode(z)))
    started = time.perf_counter()
    try:
        # Compile now, for every batch size, so no compilation lands inside a timed cell: the
        # first size compiles a static graph, the second a dynamic one that serves the rest.
        with torch.inference_mode():
            for b in batches:
                z, images = warm(b)
                enc_c(torch.from_numpy(images))
                dec_c(torch.from_numpy(z))
    except torch._dynamo.exc.TorchDynamoException as exc:  # includes BackendCompilerFailed, InductorError
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        engines.append(Engine("torch-compile", None, f"not available: {type(exc).__name__}: {reason}"))
        info["torch_compile"] = f"not available: {type(exc).__name__}: {reason}"
        return engines, info
    seconds = time.perf_counter() - started
    info["torch_compile_seconds"] = round(seconds, 1)
    engines.append(
        Engine(
            "torch-compile",
            torch_ops(enc_c, dec_c, draw),
            f"cpu, torch.compile (inductor), compiled in {seconds:.0f} s",
        )
    )
    return engines, info


# -- measurements -------------------------------------------------------------------------------


def gemm_rate(n: int, repeats: int) -> dict[str, Any]:
    """numpy float32 GEMM (n x n @ n x n) in GFLOP/s: median and best of `repeats` timed products,
    with numpy's default threads (all cores) and, where threadpoolctl is installed, with one."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    flops = 2.0 * n**3

    def measure() -> dict[str, float]:
        warm_up(lambda: a @ b, 2)
        seconds = time_calls(lambda: a @ b, repeats)
        return {"median_gflops": flops / float(np.median(seconds)) / 1e9, "best_gflops": flops / min(seconds) / 1e9}

    out: dict[str, Any] = {"n": n, "default_threads": measure()}
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        out["one_thread"] = "not measured: threadpoolctl is not installed"
        return out
    # On a machine other processes load, all-core GEMM waits at every barrier for its slowest
    # thread and can fall below the one-thread rate; the limit is whichever is higher.
    with threadpool_limits(limits=1, user_api="blas"):
        out["one_thread"] = measure()
    return out


def gemm_limit(*measurements: dict[str, Any]) -> float:
    """The machine's GEMM rate for this run: the best median over measurements and thread settings."""
    medians = [
        m[key]["median_gflops"]
        for m in measurements
        for key in ("default_threads", "one_thread")
        if isinstance(m.get(key), dict)
    ]
    return max(medians)


def run_cells(
    engines: Sequence[Engine],
    operations: Sequence[str],
    batches: Sequence[int],
    inputs: Callable[[int], tuple[np.ndarray, np.ndarray]],
    budget_s: float,
    min_repeats: int,
    max_repeats: int,
    rounds: int,
    warmup: int,
) -> list[Timing]:
    timings: list[Timing] = []
    live = [e for e in engines if e.ops_for is not None]
    shuffle = random.Random(0)
    for batch in batches:
        z, images = inputs(batch)
        ops = {e.name: e.ops_for(batch, z, images) for e in live if e.ops_for is not None}
        for op in operations:
            fns = {name: table[op] for name, table in ops.items()}
            # Big cells get one warm-up call: a 1 s call is warm after one run, and three would cost minutes.
            per_call = {name: warm_up(fn, warmup if batch < 512 else 1) for name, fn in fns.items()}
            per_round = {
                name: math.ceil(repeats_for(per_call[name], budget_s, min_repeats, max_repeats) / rounds)
                for name in fns
            }
            samples: dict[str, list[float]] = {name: [] for name in fns}
            order = list(fns)
            for _ in range(rounds):
                shuffle.shuffle(order)
                for name in order:
                    time.sleep(SETTLE_S)
                    if per_call[name] < 0.05:
                        fns[name]()  # untimed: wakes the thread pool after the pause
                    samples[name] += time_calls(fns[name], per_round[name])
            for name in ENGINES:
                if name in samples:
                    t = summarize(name, op, batch, samples[name])
                    timings.append(t)
                    print(f"{op:10s} b{batch:<5d} {name:20s} p50 {t.p50_ms:9.3f} ms  ({t.repeats} calls)", flush=True)
    return timings


def library_overhead(g: Any, rounds: int, block: int) -> dict[str, Any]:
    """`Model.decode` / `Model.encode` against a bare `session.run` on the same session, batch 1."""
    out: dict[str, Any] = {}
    z = g.sample_latents(1, seed=0)  # (1, D)
    x = g.decode(z)  # (1, C, H, W)
    dec, enc = g.session_for("decoder", 1), g.session_for("encoder", 1)  # what batch 1 runs on
    cases = {
        "decode": (lambda: g.decode(z), lambda: dec.run(["x"], {"z": z})),
        "encode": (lambda: g.encode(x), lambda: enc.run(["mu", "logvar"], {"x": x})),
    }
    for name, (lib, bare) in cases.items():
        warm_up(lib, 50), warm_up(bare, 50)
        a: list[float] = []
        b: list[float] = []
        for _ in range(rounds):  # alternate blocks, so both see the same machine
            a += time_calls(lib, block)
            b += time_calls(bare, block)
        lib_us, bare_us = float(np.median(a) * 1e6), float(np.median(b) * 1e6)
        out[name] = {
            "library_p50_us": lib_us,
            "bare_session_run_p50_us": bare_us,
            "overhead": lib_us / bare_us - 1.0,
            "calls_each": len(a),
        }
    return out


def end_to_end(bundle: Path, default_bundle: bool, runs: int, tmp: Path) -> dict[str, Any]:
    """Wall time and peak RSS of `vaegen-infer sample --n 64` and of the PyTorch script, as processes."""
    import torch

    import vaegen_infer as vi
    from train.export import model_from_bundle

    exe = Path(sys.executable).with_name("vaegen-infer")
    if not exe.exists():
        return {"error": f"not available: no vaegen-infer console script next to {sys.executable}"}
    ckpt = tmp / "state.pt"
    config = vi.load(bundle, providers="cpu").manifest.training["model_config"]
    model = model_from_bundle(bundle)
    # A learned prior travels as its components, as in the bundle (Autoencoder.fix_prior).
    prior = None if model.fixed_components is None else list(model.fixed_components)
    torch.save({"config": config, "state_dict": model.state_dict(), "prior_components": prior}, ckpt)
    ours = [str(exe), "sample", "--n", "64", "--seed", "0", "-o", str(tmp / "ours.png")]
    if not default_bundle:
        ours += ["--model", str(bundle)]
    peer = [sys.executable, str(ROOT / "benchmarks" / "torch_sample.py"), "--checkpoint", str(ckpt)]
    peer += ["--n", "64", "--seed", "0", "-o", str(tmp / "torch.png")]
    # Two references: the imports any Python program doing this job pays (the floor), and the same
    # job through the library with no CLI (so the rest is the CLI's own cost: typer, pydantic).
    floor = [sys.executable, "-c", "import numpy, onnxruntime, PIL.Image"]
    library = [
        sys.executable,
        "-c",
        _LIBRARY_SAMPLE.format(out=tmp / "lib.png", bundle="" if default_bundle else bundle),
    ]
    commands = {OURS: ours, "torch-script": peer, "library-call": library, "import-floor": floor}
    # Bytecode as after `pip install` (which compiles every module): this environment sets
    # PYTHONDONTWRITEBYTECODE=1, and the editable checkout has no .pyc files, so without a cache
    # every run would compile vaegen_infer from source. The untimed first run fills the cache.
    # (A single run is a smoke test: no cache, no untimed run; the cache would recompile torch.)
    env = dict(os.environ)
    if runs > 1:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        for cmd in commands.values():  # once untimed: fills the bytecode cache and the page cache
            _run_process(cmd, env)
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            samples[name].append(_run_process(cmd, env))
    cached = "cached (PYTHONPYCACHEPREFIX), as after pip install" if runs > 1 else "as the environment has it"
    out: dict[str, Any] = {"runs": runs, "bytecode": cached}
    for name, cmd in commands.items():
        walls = [w for w, _ in samples[name]]
        rss = [m for _, m in samples[name]]
        if name == OURS:
            shown = ["vaegen-infer", *cmd[1:]]
        elif name == "torch-script":
            shown = ["python", "benchmarks/torch_sample.py", *cmd[2:]]
        else:
            shown = ["python", "-c", repr(cmd[2])]
        out[name] = {
            "command": " ".join(shown).replace(str(tmp), "$TMP"),
            "wall_s_median": float(np.median(walls)),
            "wall_s_all": [round(w, 3) for w in walls],
            "peak_rss_mb_median": float(np.median(rss)),
        }
    return out


def picture_path(bundle: Path, default_bundle: bool, runs: int, tmp: Path, n: int = 4096) -> dict[str, Any]:
    """Wall time of `vaegen-infer sample --n N -o grid.png` against `--format npy` (same seed), as
    processes, alternated, median of `runs`; and whether two PNG runs wrote the same bytes."""
    exe = Path(sys.executable).with_name("vaegen-infer")
    if not exe.exists():
        return {"error": f"not available: no vaegen-infer console script next to {sys.executable}"}
    base = [str(exe), "sample", "--n", str(n), "--seed", "0"] + ([] if default_bundle else ["--model", str(bundle)])
    commands = {
        "png": [*base, "-o", str(tmp / "grid.png")],
        "npy": [*base, "--format", "npy", "-o", str(tmp / "g.npy")],
    }
    env = dict(os.environ)
    for cmd in commands.values():
        _run_process(cmd, env)  # untimed: page cache, bytecode
    first = (tmp / "grid.png").read_bytes()
    walls: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            walls[name].append(_run_process(cmd, env)[0])
    out: dict[str, Any] = {
        name: {"command": " ".join(["vaegen-infer", *commands[name][1:]]).replace(str(tmp), "$TMP"),
               "wall_s_median": float(np.median(w)), "wall_s_all": [round(v, 3) for v in w]}
        for name, w in walls.items()
    }  # fmt: skip
    out["n"] = n
    out["png_over_npy"] = out["png"]["wall_s_median"] / out["npy"]["wall_s_median"]
    out["png_bytes_reproducible"] = (tmp / "grid.png").read_bytes() == first
    out["png_mb"] = round(len(first) / 1e6, 2)
    return out


_LIBRARY_SAMPLE = (
    "import vaegen_infer as vi; from vaegen_infer.images import make_grid, save_image; "
    "save_image('{out}', make_grid(vi.load('{bundle}' or 'mnist-vae').sample(64, seed=0), scale=2))"
)


# Runs one command and reports its own wall time and peak RSS. A tiny launcher process forks it:
# on Linux a child's ru_maxrss keeps the high-water mark of the memory it had before exec, which
# for a child forked straight from this benchmark (torch loaded, hundreds of MB) would be ours.
_LAUNCHER = """
import os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t
print(f"LAUNCHER {os.waitstatus_to_exitcode(status)} {wall} {usage.ru_maxrss}", flush=True)
"""


def _run_process(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds (fork to exit) and peak RSS in MB of one run of `cmd`."""
    launcher = [sys.executable, "-c", _LAUNCHER, *cmd]
    done = subprocess.run(launcher, capture_output=True, text=True, check=False, env=env)
    last = done.stdout.strip().splitlines()[-1].split() if done.stdout.strip() else []
    if len(last) != 4 or last[0] != "LAUNCHER" or last[1] != "0":
        raise SystemExit(f"error: {' '.join(cmd)} failed: {done.stderr.strip()[-300:]}")
    return float(last[2]), int(last[3]) / 1024.0  # ru_maxrss is in KiB on Linux


# -- analysis -----------------------------------------------------------------------------------


def p50(timings: Sequence[Timing], engine: str, op: str, batch: int) -> float | None:
    for t in timings:
        if (t.engine, t.operation, t.batch) == (engine, op, batch):
            return t.p50_ms
    return None


def ratios(timings: Sequence[Timing]) -> list[dict[str, Any]]:
    """ours / peer p50 for every cell both ran (below 1: ours is faster)."""
    rows = []
    for t in timings:
        if t.engine == OURS:
            continue
        mine = p50(timings, OURS, t.operation, t.batch)
        if mine is not None:
            rows.append(
                {"operation": t.operation, "batch": t.batch, "peer": t.engine, "ours_over_peer": mine / t.p50_ms}
            )
    return rows


def flop_rates(timings: Sequence[Timing], flops: dict[str, int], gemm_gflops: float) -> list[dict[str, Any]]:
    role = {"encode": "encoder", "decode": "decoder", "sample": "decoder"}
    rows = []
    for t in timings:
        if t.operation not in role:
            continue
        achieved = flops[role[t.operation]] * t.batch / (t.p50_ms / 1000.0) / 1e9
        rows.append({
            "engine": t.engine, "operation": t.operation, "batch": t.batch,
            "gflops": achieved, "fraction_of_gemm": achieved / gemm_gflops,
        })  # fmt: skip
    return rows


def goals(
    timings: Sequence[Timing], rates: Sequence[dict[str, Any]], overhead: dict[str, Any], e2e: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each goal of issue 6, measured: the value, the target, met or not, and by how much."""
    out: list[dict[str, Any]] = []

    def add(
        goal: str, value: float | None, target: float, higher_is_better: bool, unit: str, inclusive: bool = False
    ) -> None:
        if value is None:
            out.append({"goal": goal, "value": None, "target": target, "met": False, "note": "not measured"})
            return
        met = value >= target if higher_is_better else (value <= target if inclusive else value < target)
        # "by": how far from the target, as a factor (> 1 means missed by that factor)
        by = target / value if higher_is_better else value / target
        out.append({"goal": goal, "value": value, "target": target, "unit": unit, "met": met, "factor_to_target": by})

    def speedup(batch: int) -> float | None:
        mine = p50(timings, OURS, "decode", batch)
        eager = [v for v in (p50(timings, e, "decode", batch) for e in EAGER) if v is not None]
        return None if mine is None or not eager else min(eager) / mine

    def over(peers: Sequence[str], op: str, batch: int) -> float | None:
        """ours / the fastest of `peers` at one cell (<= 1: ours at or below it)."""
        mine = p50(timings, OURS, op, batch)
        theirs = [v for v in (p50(timings, e, op, batch) for e in peers) if v is not None]
        return None if mine is None or not theirs else mine / min(theirs)

    # issue 17
    for op in ("decode", "encode"):
        for b in sorted({t.batch for t in timings if t.operation == op}):
            add(f"{op} batch {b}: ours / raw ONNX Runtime <= 1", over(["onnxruntime-default"], op, b), 1.0, False,
                "x", inclusive=True)  # fmt: skip
            if any(t.engine in OPENVINO for t in timings):
                add(f"{op} batch {b}: ours / OpenVINO (faster hint) < 1", over(OPENVINO, op, b), 1.0, False, "x")
    for b in sorted({t.batch for t in timings if t.engine == INT8 and t.operation == "decode"}):
        mine, int8 = p50(timings, OURS, "decode", b), p50(timings, INT8, "decode", b)
        speed = None if mine is None or int8 is None else mine / int8
        if b == 512:
            add("int8 decode batch 512: float32 / int8 >= 1.5", speed, 1.5, True, "x")
    png = e2e.get("png_over_npy")
    n_png = (e2e.get("picture") or {}).get("n", 4096)
    add(f"sample --n {n_png}: -o grid.png / --format npy wall <= 1.3", png, 1.3, False, "x", inclusive=True)
    # issue 6
    add("batch-1 decode p50: PyTorch eager (faster config) / ours >= 5", speedup(1), 5.0, True, "x")
    for b in sorted({t.batch for t in timings if t.batch >= 512}):
        add(f"batch-{b} decode p50: PyTorch eager (faster config) / ours >= 2", speedup(b), 2.0, True, "x")
        frac = next((r["fraction_of_gemm"] for r in rates if (r["engine"], r["operation"], r["batch"]) ==
                     (OURS, "decode", b)), None)  # fmt: skip
        add(f"batch-{b} decode: ours at >= 80% of the GEMM rate", frac, 0.8, True, "fraction")
    add("library overhead over bare session.run, decode batch 1 < 10%",
        overhead.get("decode", {}).get("overhead"), 0.10, False, "fraction")  # fmt: skip
    mine = e2e.get(OURS, {})
    add("vaegen-infer sample --n 64: wall < 0.6 s (median)", mine.get("wall_s_median"), 0.6, False, "s")
    add("vaegen-infer sample --n 64: peak RSS < 200 MB", mine.get("peak_rss_mb_median"), 200.0, False, "MB")
    return out


# -- outputs ------------------------------------------------------------------------------------


def write_outputs(results: dict[str, Any], timings: Sequence[Timing], out: Path) -> None:
    from vaegen_infer.plots import line_chart

    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "latency.md").write_text(markdown(results, timings) + "\n")
    for op, name in (("decode", "latency.png"), ("encode", "latency-encode.png")):
        series = {}
        for engine in ENGINES:
            pts = sorted((t.batch, t.p50_ms) for t in timings if t.engine == engine and t.operation == op)
            if pts:
                series[engine] = ([b for b, _ in pts], [ms for _, ms in pts])
        if series:
            m = results["meta"]
            title = f"{op} p50 latency, {results['bundle']} ({m['cpu']}, {m['physical_cores']} cores)"
            line_chart(series, title, "batch size", "p50 ms (log)").save(out / name)


def _fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "fraction":
        return f"{value:.1%}"
    return f"{value:.3g} {unit}"


def markdown(results: dict[str, Any], timings: Sequence[Timing]) -> str:
    m = results["meta"]
    gemm = results["gemm"]
    flops = results["flops_per_item"]
    lines = [
        "# Latency: vaegen-infer against raw ONNX Runtime and PyTorch",
        "",
        f"Machine: {m['cpu']}, {m['physical_cores']} physical cores ({m['logical_cpus']} logical), "
        f"onnxruntime {m['onnxruntime']}, {results['torch'].get('torch', 'no torch')}, numpy {m['numpy']}. "
        f"Bundle `{results['bundle']}`. Command: `{results['command']}`. Measured {results['date']}.",
        "",
        f"GEMM rate (numpy float32 {gemm['n']}x{gemm['n']}: the highest median over a measurement at the start "
        f"and one at the end, each with numpy's default threads and with one thread): "
        f"**{gemm['gflops']:.1f} GFLOP/s**. FLOPs per image (benchmarks/flops.py): "
        f"encoder {flops['encoder'] / 1e6:.2f} M, decoder {flops['decoder'] / 1e6:.2f} M.",
        "",
        "Engines: " + "; ".join(f"**{k}**: {v}" for k, v in results["engines"].items()),
        "",
        "## Goals",
        "",
        "| goal | measured | target | met |",
        "| --- | ---: | ---: | --- |",
    ]
    for g in results["goals"]:
        if g["value"] is None:
            lines.append(f"| {g['goal']} | - | {g['target']} | no ({g['note']}) |")
            continue
        verdict = "**yes**" if g["met"] else f"no (off by {g['factor_to_target']:.2f}x)"
        lines.append(f"| {g['goal']} | {_fmt(g['value'], g['unit'])} | {_fmt(g['target'], g['unit'])} | {verdict} |")
    peers = [e for e in ENGINES[1:] if any(t.engine == e for t in timings)]
    for op in OPERATIONS:
        rows = sorted({t.batch for t in timings if t.operation == op})
        if not rows:
            continue
        head = ["batch", *[f"{e} p50 ms" for e in (OURS, *peers)], *[f"ours / {e}" for e in peers], "ours images/s"]
        lines += ["", f"## {op}", "", "| " + " | ".join(head) + " |", "| " + " | ".join("---:" for _ in head) + " |"]
        for b in rows:
            mine = p50(timings, OURS, op, b)
            cells = [str(b)]
            for e in (OURS, *peers):
                v = p50(timings, e, op, b)
                cells.append("-" if v is None else f"{v:.3f}")
            for e in peers:
                v = p50(timings, e, op, b)
                cells.append("-" if v is None or mine is None else f"{mine / v:.2f}")
            cells.append("-" if mine is None else f"{b / (mine / 1000):,.0f}")
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Achieved FLOP/s (p50) as a fraction of the GEMM rate", ""]
    rate_rows = [r for r in results["flop_rates"] if r["operation"] in ("encode", "decode")]
    engines_seen = [e for e in ENGINES if any(r["engine"] == e for r in rate_rows)]
    head = ["operation", "batch", *engines_seen]
    lines += ["| " + " | ".join(head) + " |", "| --- | " + " | ".join("---:" for _ in head[1:]) + " |"]
    for op in ("encode", "decode"):
        for b in sorted({r["batch"] for r in rate_rows if r["operation"] == op}):
            cells = [op, str(b)]
            for e in engines_seen:
                r = next((r for r in rate_rows if (r["engine"], r["operation"], r["batch"]) == (e, op, b)), None)
                cells.append("-" if r is None else f"{r['gflops']:.1f} GFLOP/s ({r['fraction_of_gemm']:.0%})")
            lines.append("| " + " | ".join(cells) + " |")
    ov = results["overhead"]
    lines += ["", "## Library overhead at batch 1 (same session, alternating blocks)", ""]
    lines += ["| call | vaegen-infer p50 us | bare session.run p50 us | overhead |", "| --- | ---: | ---: | ---: |"]
    for name, o in ov.items():
        lines.append(
            f"| {name} | {o['library_p50_us']:.1f} | {o['bare_session_run_p50_us']:.1f} | {o['overhead']:+.1%} |"
        )
    e2e = results["end_to_end"]
    lines += ["", f"## End to end: a process writing 64 samples to a PNG (median of {e2e.get('runs', 0)} runs)", ""]
    if "error" in e2e:
        lines.append(e2e["error"])
    else:
        lines += ["| command | wall s | peak RSS MB |", "| --- | ---: | ---: |"]
        for name in (OURS, "torch-script", "library-call", "import-floor"):
            if name in e2e:
                r = e2e[name]
                lines.append(f"| `{r['command']}` | {r['wall_s_median']:.3f} | {r['peak_rss_mb_median']:.0f} |")
    pic = e2e.get("picture")
    if pic and "error" not in pic:
        lines += ["", "## Picture path: samples as one PNG grid against an npy array (median of processes)", ""]
        lines += ["| command | wall s | all runs s |", "| --- | ---: | --- |"]
        for name in ("png", "npy"):
            r = pic[name]
            lines.append(f"| `{r['command']}` | {r['wall_s_median']:.3f} | {', '.join(map(str, r['wall_s_all']))} |")
        lines += ["", f"PNG / npy: **{pic['png_over_npy']:.2f}x**; PNG {pic['png_mb']} MB, "
                  f"byte-identical across runs: {pic['png_bytes_reproducible']}."]  # fmt: skip
    lines += ["", "## Every cell", "", markdown_table(timings)]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "exported" / "mnist-vae")
    parser.add_argument("--batches", default=",".join(map(str, DEFAULT_BATCHES)))
    parser.add_argument("--ops", default=",".join(OPERATIONS))
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timed calls per engine and cell")
    parser.add_argument("--min-repeats", type=int, default=6)
    parser.add_argument("--max-repeats", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="vaegen-infer threads (default: physical cores)")
    parser.add_argument("--gemm-size", type=int, default=2048)
    parser.add_argument("--overhead-rounds", type=int, default=100)
    parser.add_argument("--e2e-runs", type=int, default=7)
    parser.add_argument("--png-runs", type=int, default=3, help="runs of sample --n 4096 as PNG and as npy")
    parser.add_argument("--providers", default="cpu", help="vaegen-infer's providers: cpu or cuda (GPU check)")
    parser.add_argument("--quick", action="store_true", help="smoke test: batches 1,8, tiny budgets, no compile")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.budget, args.min_repeats, args.rounds = "1,8", 0.02, 2, 1
        args.gemm_size, args.overhead_rounds, args.e2e_runs = 256, 2, min(args.e2e_runs, 1)
        args.png_runs = min(args.png_runs, 1)
        args.engines = ",".join(e for e in args.engines.split(",") if e != "torch-compile")
    batches = [int(b) for b in args.batches.split(",")]
    operations = [o for o in args.ops.split(",") if o]
    wanted = [e for e in args.engines.split(",") if e]
    unknown = [e for e in [*wanted] if e not in ENGINES] + [o for o in operations if o not in OPERATIONS]
    if unknown or OURS not in wanted:
        parser.error(f"unknown engine/operation {unknown}; engines must include {OURS}: {ENGINES}, ops: {OPERATIONS}")

    bundle = args.bundle.resolve()
    command = "python benchmarks/latency.py" + (" " + " ".join(argv) if argv else " ".join(["", *sys.argv[1:]]))
    started = time.perf_counter()
    gemm_start = gemm_rate(args.gemm_size, 10)
    print(f"GEMM {gemm_limit(gemm_start):.1f} GFLOP/s (median, best thread setting)", flush=True)

    ours, g = ours_engine(bundle, args.threads, args.providers)
    engines = [ours]
    scratch = tempfile.TemporaryDirectory()
    if INT8 in wanted:
        engines.append(ours_engine(int8_bundle(bundle, Path(scratch.name)), args.threads, args.providers, "int8")[0])
    if "onnxruntime-default" in wanted:
        engines.append(ort_default_engine(bundle, args.providers))
    if any(e in wanted for e in OPENVINO):
        engines += [e for e in openvino_engines(bundle, args.threads) if e.name in wanted]

    def inputs(batch: int) -> tuple[np.ndarray, np.ndarray]:
        z = g.sample_latents(batch, seed=0)  # the z model_operations uses too
        return z, g.decode(z)

    torch_info: dict[str, Any] = {}
    if any(e in wanted for e in (*EAGER, "torch-compile")):
        t_engines, torch_info = torch_engines(bundle, batches, "torch-compile" in wanted, inputs)
        engines += [e for e in t_engines if e.name in wanted]

    timings = run_cells(
        engines, operations, batches, inputs, args.budget, args.min_repeats, args.max_repeats, args.rounds, args.warmup
    )
    overhead = library_overhead(g, args.overhead_rounds, 20)  # blocks of 20: load drifts hit both alike
    print(f"overhead: {json.dumps(overhead)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        default_bundle = bundle == (ROOT / "exported" / "mnist-vae").resolve()
        e2e = end_to_end(bundle, default_bundle, args.e2e_runs, Path(tmp)) if args.e2e_runs > 0 else {"runs": 0}
        if args.png_runs > 0:
            # --quick: just over the streamed-PNG threshold, so the smoke test stays short
            n_png = 1100 if args.quick else 4096
            e2e["picture"] = picture_path(bundle, default_bundle, args.png_runs, Path(tmp), n_png)
            e2e["png_over_npy"] = e2e["picture"].get("png_over_npy")
    scratch.cleanup()
    print(f"end to end: {json.dumps(e2e)}", flush=True)
    gemm_end = gemm_rate(args.gemm_size, 10)
    gemm = gemm_limit(gemm_start, gemm_end)
    flops = {role: flops_per_item(bundle / f"{role}.onnx") for role in ("encoder", "decoder")}
    rates = flop_rates(timings, flops, gemm)
    results = {
        "meta": {**machine_info(), "vaegen_infer_threads": g.threads()},
        "command": command.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "bundle": str(bundle.relative_to(ROOT)) if bundle.is_relative_to(ROOT) else str(bundle),
        "engines": {e.name: e.about for e in engines},
        "torch": torch_info,
        "gemm": {"n": args.gemm_size, "gflops": gemm, "start": gemm_start, "end": gemm_end},
        "flops_per_item": flops,
        "timings": [t.to_dict() for t in timings],
        "ratios": ratios(timings),
        "flop_rates": rates,
        "overhead": overhead,
        "end_to_end": e2e,
        "goals": goals(timings, rates, overhead, e2e),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_outputs(results, timings, args.out)
    print(markdown(results, timings).split("## encode")[0])
    print(f"wrote {args.out}/latency.{{json,md,png}} in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
