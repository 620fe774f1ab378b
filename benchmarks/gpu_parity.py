"""CUDA against CPU for every bundle given: plain, TF32, CUDA graphs, I/O binding, fp16 variant.

    python benchmarks/gpu_parity.py --out parity.json BUNDLE...            # on a GPU machine
    python benchmarks/gpu_parity.py --device cpu --out parity.json BUNDLE  # the same logic on a CPU

Run by benchmarks/gpu_check.sh. For each bundle the reference is the CPU provider at float32:
decode of 256 prior draws (seed 0) and encode of those images. Each check loads the bundle again
with its settings and reports the largest absolute difference and whether it is within its
tolerance: float32 on CUDA with TF32 off must match to float32 rounding, TF32 and fp16 within
their precision. `--device cpu` runs every check on the CPU provider instead (its differences are
then 0 or, for fp16, the CPU proxy): a test of this script's logic where there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS = 256
# (name, load settings, tolerance on max |check - CPU float32|)
CHECKS: tuple[tuple[str, dict[str, Any], float], ...] = (
    ("cuda-float32", {}, 1e-4),
    ("cuda-tf32", {"tf32": True}, 2e-2),
    ("cuda-graph", {"cuda_graph": True}, 1e-4),
    ("cuda-fp16", {"precision": "fp16"}, 3e-2),
)


def check_bundle(bundle: Path, device: str) -> dict[str, Any]:
    import vaegen_infer as vi

    ref = vi.load(bundle, providers="cpu")
    z = ref.sample_latents(ROWS, seed=0)  # (ROWS, D)
    x_ref = ref.decode(z)  # (ROWS, C, H, W)
    mu_ref, _ = ref.encode(x_ref)
    out: dict[str, Any] = {"bundle": str(bundle), "rows": ROWS, "checks": {}}
    for name, settings, tol in CHECKS:
        if settings.get("precision") == "fp16" and "fp16" not in ref.manifest.variants:
            out["checks"][name] = {"skipped": "the bundle has no fp16 variant (python -m train variants B --fp16)"}
            continue
        opts = dict(settings)
        if device == "cpu":  # the logic without a GPU: CUDA-only settings are dropped
            opts.pop("tf32", None), opts.pop("cuda_graph", None)
        started = time.perf_counter()
        g = vi.load(bundle, providers=device, **opts)
        x = g.decode(z)
        if settings.get("cuda_graph"):
            x = g.decode(z)  # the second call replays the captured graph
        mu, _ = g.encode(x_ref)
        diff = max(float(np.abs(x - x_ref).max()), float(np.abs(mu - mu_ref).max()))
        out["checks"][name] = {
            "provider": g.provider("decoder"), "precision": g.precision, "max_abs_diff": diff, "tolerance": tol,
            "ok": bool(diff <= tol), "seconds": round(time.perf_counter() - started, 3),
        }  # fmt: skip
    if device == "cuda":
        out["checks"]["io-binding"] = io_binding_check(bundle, z, x_ref)
    return out


def io_binding_check(bundle: Path, z: np.ndarray, x_ref: np.ndarray) -> dict[str, Any]:
    """decode_on_device: codes uploaded once, images left on the GPU, then copied back to compare."""
    import onnxruntime as ort

    import vaegen_infer as vi

    g = vi.load(bundle, providers="cuda")
    on_gpu = ort.OrtValue.ortvalue_from_numpy(z, "cuda", 0)
    images = g.decode_on_device(on_gpu)
    diff = float(np.abs(images.numpy() - x_ref).max())
    return {"device": images.device_name(), "max_abs_diff": diff, "tolerance": 1e-4, "ok": bool(diff <= 1e-4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    results = [check_bundle(b, args.device) for b in args.bundles]
    bad = [
        f"{Path(r['bundle']).name}:{name}" for r in results for name, c in r["checks"].items() if c.get("ok") is False
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device, "results": results, "failed": bad}, indent=2) + "\n")
    for r in results:
        for name, c in r["checks"].items():
            shown = c.get("skipped") or f"max |diff| {c['max_abs_diff']:.2e} (tolerance {c['tolerance']:g})"
            print(f"{Path(r['bundle']).name:22s} {name:14s} {shown}")
    if bad:
        print(f"error: outside tolerance: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
