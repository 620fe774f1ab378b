"""Memory of the training data path: peak resident memory while iterating batches over a large
uint8 image cache, against the goal of at most 2 GB resident for 2.5 GB of data (issue 13).

    python benchmarks/data_memory.py                 # 200,000 64x64 RGB images (2.46 GB), ~1-2 minutes
    python benchmarks/data_memory.py --n 20000       # a quicker, smaller run

Steps, each iteration in a fresh child process so that its peak RSS (VmHWM) is its own:
1. Write a (N, 3, 64, 64) uint8 cache file (random pixels, in chunks, never all in memory).
2. One epoch of shuffled batches (--batch, default 128) through the path training uses:
   `train.sources.CacheArray` (positioned reads of each batch's rows from the file) inside a
   `Split` (train.sources._split: 90% / 10% with the fixed seed), each batch made float32 by
   `train.data.to_float`. For comparison, the same epoch over a plain `np.memmap`.
3. Decoding a folder of --folder-images 96x96 JPEG files into the cache (`folder:DIR`, resized to
   64x64), for its images/s and peak RSS.

Writes benchmarks/results/data_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "data_memory.json"
SHAPE = (3, 64, 64)


def _peak_rss_mb() -> float:
    """This process's peak resident set: VmHWM (Linux; ru_maxrss would also count the parent's
    peak, which Linux carries across exec), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def write_cache(path: Path, n: int, chunk: int = 4096) -> float:
    """Random uint8 images (N, 3, 64, 64), written chunk by chunk -> seconds taken."""
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    with open(path, "wb") as fh:
        for start in range(0, n, chunk):
            fh.write(rng.integers(0, 256, (min(chunk, n - start), *SHAPE), dtype=np.uint8).tobytes())
    return time.perf_counter() - t


def child_iterate(path: Path, n: int, mode: str, batch: int) -> dict[str, float]:
    """One shuffled epoch of float32 batches over the training split of the cache."""
    from train.data import DataOptions, to_float
    from train.sources import CacheArray, _split
    from vaegen_infer.preprocess import Preprocess

    base = CacheArray(path, (n, *SHAPE)) if mode == "cache" else np.memmap(path, np.uint8, "r", shape=(n, *SHAPE))
    split = _split(base, np.full(n, -1, np.int64), None, "bench", {}, {}, Preprocess(*SHAPE), DataOptions())
    rss_start = _peak_rss_mb()
    order = np.random.default_rng(1).permutation(len(split.x_train))
    t = time.perf_counter()
    total = 0.0
    for start in range(0, len(order), batch):
        x = to_float(split.x_train[order[start : start + batch]])  # (B, 3, 64, 64) float32
        total += float(x[:, :, 0, 0].sum())  # touch the batch, as a model would
    seconds = time.perf_counter() - t
    return {
        "mode": mode,
        "images": len(order),
        "batch": batch,
        "seconds": round(seconds, 2),
        "images_per_s": round(len(order) / seconds),
        "peak_rss_mb_before_epoch": round(rss_start, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "checksum": total,
    }


def child_folder(folder: Path, cache: Path) -> dict[str, float]:
    from train.data import DataOptions, load

    notes: list[str] = []
    t = time.perf_counter()
    split = load(f"folder:{folder}", DataOptions(image_size=64, cache_dir=cache), note=notes.append)
    seconds = time.perf_counter() - t
    n = len(split.x_train) + len(split.x_val)
    return {"images": n, "seconds": round(seconds, 2), "images_per_s": round(n / seconds),
            "peak_rss_mb": round(_peak_rss_mb(), 1), "notes": notes}  # fmt: skip


def make_folder(folder: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:96, 0:96]
    for i in range(n):
        base = np.stack([(xx * (i % 7 + 1)) % 256, (yy * (i % 5 + 1)) % 256, (xx + yy + i) % 256], -1)
        noisy = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"{i:06d}.jpg", quality=90)


def _run_child(args: list[str]) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="images in the cache (default 200,000: 2.46 GB)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--folder-images", type=int, default=2000)
    parser.add_argument("--child", choices=["iterate", "folder"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="cache", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.child == "iterate":
        print(json.dumps(child_iterate(a.path, a.n, a.mode, a.batch)))
        return
    if a.child == "folder":
        print(json.dumps(child_folder(a.path, a.cache)))
        return

    work = Path(tempfile.mkdtemp(prefix="vaegen-data-memory-"))
    try:
        cache = work / "cache.u8"
        write_seconds = write_cache(cache, a.n)
        gb = cache.stat().st_size / 1e9
        print(f"wrote {a.n:,} images, {gb:.2f} GB, in {write_seconds:.1f} s", flush=True)
        runs = []
        for mode in ("cache", "memmap"):
            r = _run_child(["--child", "iterate", "--path", str(cache), "--n", str(a.n), "--mode", mode,
                            "--batch", str(a.batch)])  # fmt: skip
            print(f"{mode}: peak RSS {r['peak_rss_mb']} MB, {r['images_per_s']:,} images/s", flush=True)
            runs.append(r)
        cache.unlink()
        make_folder(work / "folder", a.folder_images)
        folder = _run_child(["--child", "folder", "--path", str(work / "folder"), "--cache", str(work / "fc")])
        print(f"folder decode: {folder['images_per_s']:,} images/s, peak RSS {folder['peak_rss_mb']} MB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "command": "python benchmarks/data_memory.py" + ("" if a.n == 200_000 else f" --n {a.n}"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "data": {"images": a.n, "shape": list(SHAPE), "dtype": "uint8", "gigabytes": round(gb, 3)},
        "goal": "peak RSS <= 2,000 MB while iterating 2.5 GB of uint8 images",
        "iterate": runs,
        "meets_goal": bool(runs[0]["peak_rss_mb"] <= 2000),
        "folder_decode": folder,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
