"""Sample images from a vaegen-infer bundle with onnxruntime and numpy alone (no vaegen_infer).

    python examples/sample_onnxruntime.py exported/mnist-vae --n 64 --seed 0 -o samples.png
    python examples/sample_onnxruntime.py exported/mnist-aae --n 16 --label 3 -o threes.npy

It follows docs/bundle-format.md: read model.json, check the decoder's sha256, draw z from the
prior with the same numpy Generator calls in the same order as `vaegen_infer.load(...).sample(n,
seed=...)`, decode with ONNX Runtime, and write the images as .npy (N, C, H, W) float32 in [0, 1]
or as a .png grid (needs Pillow). The codes, and so the images, match vaegen_infer's for the same
seed (up to ONNX Runtime's float32 rounding across batch sizes).

Priors supported: all five of format version 1: gaussian, gaussian-mixture (the VampPrior export),
mog (with --label on conditional bundles), swissroll (with --label) and uniform.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

# Codes per prior draw: vaegen_infer draws n codes in blocks of this many rows from one Generator,
# so that the codes depend on the seed alone (docs/bundle-format.md, "Sampling").
DRAW_CHUNK = 65_536


def draw(prior: dict, dim: int, m: int, rng: np.random.Generator, label: int | None) -> np.ndarray:
    """One block of m codes (m, dim) float32 from the prior named in model.json."""
    name, p = prior["name"], prior.get("params") or {}
    labels = None if label is None else np.full(m, label, dtype=np.int64)
    if name == "gaussian":
        return rng.standard_normal((m, dim), dtype=np.float32) * np.float32(p.get("scale", 1.0))
    if labels is not None and name not in ("mog", "swissroll"):
        raise SystemExit(f"the '{name}' prior has no per-label regions: drop --label")
    if name == "gaussian-mixture":
        w = np.asarray(p.get("weights", [1.0]), dtype=np.float64)
        means = np.asarray(p.get("means", np.zeros((len(w), dim))), dtype=np.float64)  # (K, D)
        std = np.exp(0.5 * np.asarray(p.get("logvars", np.zeros((len(w), dim))), dtype=np.float64))  # (K, D)
        cdf = (w / w.sum()).cumsum()
        cdf /= cdf[-1]
        # two child generators, one for the components and one for the noise
        pick, noise = (np.random.default_rng(s) for s in rng.integers(0, 2**63, size=2))
        comp = cdf.searchsorted(pick.random(m), side="right")  # (m,)
        z = means[comp] + std[comp] * noise.standard_normal((m, dim))
    elif name == "mog":
        k, radius = int(p.get("k", 10)), float(p.get("radius", 4.0))
        radial, tangential = float(p.get("radial_std", 1.0)), float(p.get("tangential_std", 0.25))
        comp = rng.integers(0, k, m) if labels is None else labels
        pairs = dim // 2
        r = radius + rng.standard_normal((m, pairs)) * radial  # (m, pairs) along the radius
        t = rng.standard_normal((m, pairs)) * tangential  # (m, pairs) across it
        angle = 2 * np.pi * np.arange(k) / k
        c, s = np.cos(angle)[comp][:, None], np.sin(angle)[comp][:, None]
        z = np.empty((m, dim))
        z[:, 0 : 2 * pairs : 2] = r * c - t * s
        z[:, 1 : 2 * pairs : 2] = r * s + t * c
        if dim % 2:
            z[:, -1] = rng.standard_normal(m) * radial
    elif name == "swissroll":
        k, scale = int(p.get("k", 10)), float(p.get("scale", 4.0))
        turns, jitter = float(p.get("turns", 2.0)), float(p.get("noise", 0.05))
        u = rng.random(m)
        if labels is not None:
            u = (labels + u) / k  # class k owns the arc u in [k / K, (k + 1) / K)
        root = np.sqrt(u)
        angle = turns * 2 * np.pi * root
        z = np.stack([scale * root * np.cos(angle), scale * root * np.sin(angle)], axis=-1)
        z = z + rng.standard_normal((m, 2)) * jitter
    elif name == "uniform":
        half = float(p.get("half_width", 2.0))
        z = rng.uniform(-half, half, (m, dim))
    else:
        raise SystemExit(f"prior '{name}' is not supported by this example")
    return z.astype(np.float32)


def sample_latents(manifest: dict, n: int, seed: int | None, label: int | None = None) -> np.ndarray:
    """n codes (n, D), drawn in DRAW_CHUNK blocks from one Generator seeded with `seed`."""
    rng = np.random.default_rng(seed)
    dim = manifest["latent_dim"]
    blocks = [draw(manifest["prior"], dim, min(DRAW_CHUNK, n - s), rng, label) for s in range(0, n, DRAW_CHUNK)]
    return np.concatenate(blocks)


def label_index(manifest: dict, label: str) -> int:
    labels = manifest.get("labels") or []
    if not (manifest.get("conditional") or manifest.get("label_input")) or not labels:
        raise SystemExit(f"model '{manifest['name']}' is not label-conditioned: drop --label")
    if label in labels:
        return labels.index(label)
    if label.isdigit() and int(label) < len(labels):
        return int(label)
    raise SystemExit(f"unknown label {label!r}; valid labels: {', '.join(labels)}")


def decode(bundle: Path, manifest: dict, z: np.ndarray, chunk: int = 4096, label: int | None = None) -> np.ndarray:
    """Codes (N, D) -> images (N, C, H, W) float32 in [0, 1], the decoder's output 'x'. A decoder with
    a `label_input` (supervised AAE) is also fed the label one-hot (N, K) under that name."""
    spec = manifest["graphs"]["decoder"]
    data = (bundle / spec["file"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != spec["sha256"]:
        raise SystemExit(f"{bundle / spec['file']}: sha256 does not match model.json")
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    label_input = manifest.get("label_input")
    if label_input and label is None:
        raise SystemExit(f"model '{manifest['name']}' decodes every code as a label: give --label")
    out = []
    for s in range(0, len(z), chunk):
        feeds = {"z": z[s : s + chunk]}
        if label_input:
            one_hot = np.eye(len(manifest["labels"]), dtype=np.float32)[[label]]  # (1, K)
            feeds[label_input] = np.repeat(one_hot, len(feeds["z"]), axis=0)  # (m, K)
        out.append(session.run(["x"], feeds)[0])
    return np.concatenate(out)


def write_png(images: np.ndarray, path: Path) -> None:
    from PIL import Image  # optional: only the .png output needs Pillow

    n, c, h, w = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    pixels = np.clip(np.rint(images * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)  # (N, H, W, C)
    for i, tile in enumerate(pixels):
        r, q = divmod(i, cols)
        grid[r * h : (r + 1) * h, q * w : (q + 1) * w] = tile
    Image.fromarray(grid[:, :, 0] if c == 1 else grid).save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path, help="a bundle directory (model.json, decoder.onnx)")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--label", default=None, help="class name or index, for conditional bundles")
    ap.add_argument("-o", "--out", type=Path, default=Path("samples.png"), help=".png (grid) or .npy")
    args = ap.parse_args(argv)

    manifest = json.loads((args.bundle / "model.json").read_text(encoding="utf-8"))
    if manifest.get("format") != "vaegen-bundle" or manifest.get("format_version") != 1:
        raise SystemExit("this example reads vaegen-bundle format_version 1 only")
    label = None if args.label is None else label_index(manifest, args.label)
    prior_label = label if manifest.get("conditional") else None  # a label-free prior ignores it
    images = decode(args.bundle, manifest, sample_latents(manifest, args.n, args.seed, prior_label), label=label)
    if args.out.suffix == ".npy":
        np.save(args.out, images)
    elif args.out.suffix == ".png":
        write_png(images, args.out)
    else:
        raise SystemExit("--out must end in .png or .npy")
    print(f"{args.out}: {len(images)} images {images.shape[1:]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
