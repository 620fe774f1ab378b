"""Where the time of `sample --n N -o grid.png` goes, and what each PNG setting costs.

    python benchmarks/png_path.py [--n 4096] [--repeats 3] [--out benchmarks/results]

In one process, on the shipped mnist-vae's samples (seed 0, N tiles, scale 2): the decode, the
grid (tiles pasted into one uint8 canvas), Pillow's PNG encoder at compress_level 0, 1, 3, 6 (its
default) and 9 with optimize=False, and optimize=True; the band writer (vaegen_infer.png, filter
None) at levels 1 and 6, alone and overlapped with decoding (grids.sample_png, the CLI's path above
1,024 images). Median of `--repeats` runs each, interleaved; sizes in MB. Writes png_path.{json,md}.
"""

from __future__ import annotations

import argparse
import io
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaegen_infer.bench import machine_info  # noqa: E402
from vaegen_infer.io import save_json, write_bytes  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    import vaegen_infer as vi
    from vaegen_infer import grids
    from vaegen_infer.png import StreamedPNG

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/png_path.py", *(sys.argv[1:] if argv is None else argv)])

    g = vi.load("mnist-vae", providers="cpu")
    g.sample(64, seed=0)
    grid = grids.sample_grid(g, args.n, 0)
    picture = grid.image()
    canvas = np.asarray(picture)
    if canvas.ndim == 2:
        canvas = canvas[..., None]

    def pillow(level: int, optimize: bool = False) -> Callable[[], bytes]:
        def run() -> bytes:
            buf = io.BytesIO()
            picture.save(buf, format="PNG", compress_level=level, optimize=optimize)
            return buf.getvalue()

        return run

    def bands(level: int) -> Callable[[], bytes]:
        def run() -> bytes:
            buf = io.BytesIO()
            w = StreamedPNG(buf, canvas.shape[1], canvas.shape[0], canvas.shape[2], level)
            step = 512
            for lo in range(0, canvas.shape[0], step):
                w.add(canvas[lo : lo + step])
            w.close()
            return buf.getvalue()

        return run

    def overlapped(level: int) -> Callable[[], bytes]:
        def run() -> bytes:
            buf = io.BytesIO()
            grids.sample_png(g, args.n, 0, buf, compress_level=level)
            return buf.getvalue()

        return run

    cases: dict[str, Callable[[], Any]] = {
        "decode (g.sample)": lambda: g.sample(args.n, seed=0),
        "grid (sample_grid + Grid.image)": lambda: grids.sample_grid(g, args.n, 0).image(),
        **{f"Pillow compress_level {lv}": pillow(lv) for lv in (0, 1, 3, 6, 9)},
        "Pillow optimize=True": pillow(6, optimize=True),
        "band writer level 1": bands(1),
        "band writer level 6": bands(6),
        "decode + grid + band writer level 1, overlapped (sample_png)": overlapped(1),
        "decode + grid + band writer level 6, overlapped (sample_png)": overlapped(6),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    sizes: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            t = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t)
            if isinstance(out, bytes):
                sizes[name] = len(out) / 1e6
    rows = [
        {"step": k, "median_s": float(np.median(v)), "all_s": [round(x, 3) for x in v], "mb": sizes.get(k)}
        for k, v in times.items()
    ]
    m = machine_info()
    results = {"meta": {**m, "command": command, "n": args.n, "picture": list(picture.size)}, "rows": rows}
    lines = [
        f"# The picture path: {args.n:,} samples as one PNG grid ({picture.size[0]} x {picture.size[1]} px)",
        "",
        f"Command: `{command}`. {m['cpu']}, {m['physical_cores']} physical cores, load average "
        f"{m['load_average']} at the start; median of {args.repeats} interleaved runs.",
        "",
        "| step | median s | runs s | MB |",
        "| --- | ---: | --- | ---: |",
    ]
    for r in rows:
        mb = "-" if r["mb"] is None else f"{r['mb']:.2f}"
        lines.append(f"| {r['step']} | {r['median_s']:.3f} | {', '.join(map(str, r['all_s']))} | {mb} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    save_json(args.out / "png_path.json", results)
    write_bytes(args.out / "png_path.md", lambda fh: fh.write(text.encode()))
    print(text)


if __name__ == "__main__":
    main()
