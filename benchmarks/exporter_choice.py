"""Dynamo or TorchScript? Export the same weights with both and measure what matters to users.

    python benchmarks/exporter_choice.py [--bundle exported/mnist-vae]

Writes benchmarks/results/exporter_choice.{json,md}: export time, graph size and node count,
largest |ORT - PyTorch| over batches 1, 7, 64, and ONNX Runtime latency (p50, interleaved runs
in one process so machine noise hits both alike).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _p50_ms(session, feeds: dict[str, np.ndarray], repeats: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(5):
        session.run(None, feeds)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def _torchscript_warnings() -> list[str]:
    """What torch says when asked for the TorchScript exporter (train/export.py silences it)."""
    import io

    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.onnx.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),), io.BytesIO(), dynamo=False)
    return sorted({str(w.message).split(". ")[0] for w in caught if "legacy" in str(w.message).lower()})


def verdict(results: dict[str, dict[str, float]], said: dict[str, list[str]]) -> list[str]:
    """Plain-language reading of the table: parity, latency ratios, and what each exporter warns."""
    a, b = list(results)  # in train.export.EXPORTERS order
    ratios = {k: results[a][k] / results[b][k] for k in results[a] if k.endswith("_p50_ms")}
    lo, hi = min(ratios.values()), max(ratios.values())
    out = [
        f"Largest |ORT - PyTorch|: {a} {results[a]['parity_max_abs_diff']:.2g}, "
        f"{b} {results[b]['parity_max_abs_diff']:.2g}.",
        f"Latency {a} / {b}: {lo:.2f}x to {hi:.2f}x over the four rows (below 1 favours {a}); on this shared",
        "2-core machine differences under about 1.3x do not repeat from run to run.",
    ]
    for e in results:
        if said.get(e):
            out.append(f'The {e} exporter warns: "{said[e][0]}".')
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "exported" / "mnist-vae")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort
    import torch

    from train.export import EXPORTERS, check_graphs, export_graphs, model_from_bundle
    from vaegen_infer.providers import ProviderRequest, session_options

    model = model_from_bundle(args.bundle)
    results: dict[str, dict[str, float]] = {}
    sessions = {}
    said = {"torchscript": _torchscript_warnings()}
    for exporter in EXPORTERS:
        started = time.perf_counter()
        graphs = export_graphs(model, exporter)
        seconds = time.perf_counter() - started
        parity = check_graphs(model, graphs)
        row = {"export_seconds": round(seconds, 2), "parity_max_abs_diff": max(parity.values())}
        for name, data in graphs.items():
            role = name.removesuffix(".onnx")
            row[f"{role}_bytes"] = len(data)
            row[f"{role}_nodes"] = len(onnx.load_from_string(data).graph.node)
            sessions[(exporter, role)] = ort.InferenceSession(
                data, sess_options=session_options(ProviderRequest("cpu")), providers=["CPUExecutionProvider"]
            )
        results[exporter] = row

    rng = np.random.default_rng(0)
    c, h, w = model.cfg.image_shape
    for batch in (1, 64):
        feeds = {
            "encoder": {"x": rng.random((batch, c, h, w), dtype=np.float32)},
            "decoder": {"z": rng.standard_normal((batch, model.cfg.latent_dim), dtype=np.float32)},
        }
        # Interleave: three rounds of each exporter, keep the best median per exporter.
        for role in ("encoder", "decoder"):
            best: dict[str, float] = {}
            for _ in range(3):
                for exporter in EXPORTERS:
                    ms = _p50_ms(sessions[(exporter, role)], feeds[role], args.repeats)
                    best[exporter] = min(best.get(exporter, float("inf")), ms)
            for exporter, ms in best.items():
                results[exporter][f"{role}_b{batch}_p50_ms"] = round(ms, 4)

    meta = {
        "bundle": str(args.bundle.relative_to(ROOT)) if args.bundle.is_relative_to(ROOT) else str(args.bundle),
        "torch": str(torch.__version__),
        "onnxruntime": ort.__version__,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "command": "python "
        + " ".join([Path(sys.argv[0]).as_posix().removeprefix(ROOT.as_posix() + "/"), *sys.argv[1:]]),
        "deprecation_warnings": said,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "exporter_choice.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    keys = list(next(iter(results.values())))
    lines = [
        "# Exporter choice: dynamo vs TorchScript",
        "",
        f"Same weights ({meta['bundle']}), torch {meta['torch']}, onnxruntime {meta['onnxruntime']}, "
        f"CPU provider. Command: `{meta['command']}`.",
        "",
        "| metric | " + " | ".join(EXPORTERS) + " |",
        "| --- | " + " | ".join("---" for _ in EXPORTERS) + " |",
    ]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{results[e][k]:.4g}" for e in EXPORTERS) + " |")
    lines += ["", *verdict(results, said)]
    (args.out / "exporter_choice.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
