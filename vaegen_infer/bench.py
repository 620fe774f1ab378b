"""Latency of the runtime alone: `vaegen-infer bench` is a thin layer over `bench_model`.

Method: each (operation, batch) cell is warmed up, then timed call by call with `perf_counter`;
the report gives p50 / p90 / p99 latency and images per second at the p50. Inputs are made before
timing starts (images are the model's own samples, codes are prior draws), so only the operation
is timed. The side-by-side comparison with raw ONNX Runtime and PyTorch lives in
`benchmarks/latency.py` and reuses `time_calls`, `summarize` and the writers below.
"""

from __future__ import annotations

import io
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError
from .io import write_bytes

OPERATIONS = ("encode", "decode", "sample", "sample-png")
DEFAULT_BATCHES = (1, 8, 64, 512, 4096)


@dataclass(frozen=True)
class Timing:
    """One cell: an engine running an operation at a batch size, `repeats` timed calls."""

    engine: str
    operation: str
    batch: int
    repeats: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    images_per_s: float  # batch / p50

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    """What a benchmark run measured, and where: written as JSON and as a Markdown table."""

    meta: dict[str, Any]
    timings: list[Timing] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta, "timings": [t.to_dict() for t in self.timings]}


def repeats_for(per_call_s: float, budget_s: float, min_repeats: int, max_repeats: int) -> int:
    """Timed calls for one cell: enough to fill `budget_s`, never fewer than `min_repeats`.

    Fixed counts would spend minutes on batch-4096 cells and leave batch-1 percentiles thin."""
    if per_call_s <= 0:
        return max_repeats
    return int(max(min_repeats, min(max_repeats, budget_s / per_call_s)))


def time_calls(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds taken by each of `repeats` calls of `fn`."""
    out: list[float] = []
    clock = time.perf_counter
    for _ in range(repeats):
        started = clock()
        fn()
        out.append(clock() - started)
    return out


def warm_up(fn: Callable[[], object], calls: int) -> float:
    """Run `fn` `calls` times (at least once) untimed; return the last call's seconds, a cost estimate."""
    last = 0.0
    for _ in range(max(1, calls)):
        started = time.perf_counter()
        fn()
        last = time.perf_counter() - started
    return last


def summarize(engine: str, operation: str, batch: int, seconds: Sequence[float]) -> Timing:
    if not seconds:
        raise UsageError("no timed calls to summarize")
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    return Timing(engine, operation, int(batch), len(ms), p50, p90, p99, batch / (p50 / 1000.0))


def encode_png(image: Any) -> bytes:
    """PNG bytes of a Pillow image: the sample -> PNG path without the disk's noise."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def model_operations(model: Any, batch: int, seed: int = 0) -> dict[str, Callable[[], object]]:
    """The four timed operations of a loaded `Model` at one batch size, inputs prepared now."""
    from .images import make_grid

    z = model.sample_latents(batch, seed=seed)  # (B, D)
    # A label-conditioned decoder (supervised AAE) decodes each code as a label: every label in turn.
    labels = np.arange(batch) % len(model.label_names()) if model.label_decoder else None
    label = 0 if model.label_decoder else None
    images = model.decode(z, labels)  # (B, C, H, W), realistic encoder inputs
    return {
        "encode": lambda: model.encode(images),
        "decode": lambda: model.decode(z, labels),
        "sample": lambda: model.sample(batch, seed=seed, label=label),
        "sample-png": lambda: encode_png(make_grid(model.sample(batch, seed=seed, label=label), scale=2)),
    }


def check_choices(operations: Sequence[str], batches: Sequence[int]) -> None:
    bad = [op for op in operations if op not in OPERATIONS]
    if bad or not operations:
        raise UsageError(f"unknown operation {', '.join(bad) or '(none)'}; choose from: {', '.join(OPERATIONS)}")
    if not batches or any(isinstance(b, bool) or int(b) < 1 for b in batches):
        raise UsageError(f"batch sizes must be integers >= 1, got {list(batches)}")


def machine_info() -> dict[str, Any]:
    """CPU model, core counts and library versions: the context every number needs."""
    import onnxruntime as ort

    from . import __version__
    from .providers import physical_cores

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass  # not Linux: platform.processor() is the best there is
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])  # other work on the machine
    except OSError:
        load = "unknown"
    return {
        "cpu": cpu,
        "load_average": load,
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "vaegen_infer": __version__,
        "platform": platform.platform(),
    }


def bench_model(
    model: Any,
    operations: Sequence[str] = OPERATIONS,
    batches: Sequence[int] = DEFAULT_BATCHES,
    warmup: int = 3,
    min_repeats: int = 5,
    max_repeats: int = 200,
    budget_s: float = 1.0,
    engine: str = "vaegen-infer",
    progress: Callable[[Timing], None] | None = None,
) -> Report:
    """Time `operations` of a loaded model at each batch size; `budget_s` caps each cell's timed calls."""
    check_choices(operations, batches)
    meta = machine_info()
    meta.update({
        "model": model.name,
        "provider": model.provider("decoder"),
        "threads": model.threads(),
        "cpu_parallel": model.request.parallel,
        "warmup": warmup,
        "budget_s_per_cell": budget_s,
        "repeats": [min_repeats, max_repeats],
    })  # fmt: skip
    report = Report(meta)
    for batch in batches:
        ops = model_operations(model, int(batch))
        for op in operations:
            per_call = warm_up(ops[op], warmup)
            n = repeats_for(per_call, budget_s, min_repeats, max_repeats)
            timing = summarize(engine, op, int(batch), time_calls(ops[op], n))
            report.timings.append(timing)
            if progress is not None:
                progress(timing)
    return report


def markdown_table(timings: Sequence[Timing]) -> str:
    lines = [
        "| engine | operation | batch | p50 ms | p90 ms | p99 ms | images/s | calls |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in timings:
        lines.append(
            f"| {t.engine} | {t.operation} | {t.batch} | {t.p50_ms:.3f} | {t.p90_ms:.3f} | {t.p99_ms:.3f} "
            f"| {t.images_per_s:,.0f} | {t.repeats} |"
        )
    return "\n".join(lines)


def write_report(report: Report, out_dir: str | os.PathLike[str], stem: str = "bench") -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.md` into `out_dir`; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report.to_dict(), indent=2) + "\n"
    json_path = write_bytes(out / f"{stem}.json", lambda fh: fh.write(text.encode("utf-8")))
    m = report.meta
    head = (
        f"# vaegen-infer bench: {m.get('model', '?')}\n\n"
        f"{m.get('cpu', '?')}, {m.get('physical_cores', '?')} physical cores; onnxruntime "
        f"{m.get('onnxruntime', '?')}, provider {m.get('provider', '?')}, {m.get('threads', '?')} threads.\n\n"
    )
    md = head + markdown_table(report.timings) + "\n"
    md_path = write_bytes(out / f"{stem}.md", lambda fh: fh.write(md.encode("utf-8")))
    return json_path, md_path
