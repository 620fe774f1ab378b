"""The PyTorch equivalent of `vaegen-infer sample --n 64`, for the end-to-end comparison.

    python benchmarks/torch_sample.py --checkpoint state.pt --n 64 -o samples.png

What a PyTorch user of this model would run: import torch, rebuild the network from its config,
load a `weights_only` checkpoint, draw z from the model's prior (N(0, I), or a learned prior's
stored mixture components), decode, and write the same 8x8 PNG grid
(2x nearest-neighbour upscale, 2-pixel gaps). `benchmarks/latency.py` writes the checkpoint from
the bundle's own weights (`train.export.model_from_bundle`), so both sides run the same model.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True, help="{'config': dict, 'state_dict': ...}")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=Path("samples-torch.png"))
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from train.config import ModelConfig
    from train.models import Autoencoder

    ckpt = torch.load(args.checkpoint, weights_only=True)
    model = Autoencoder(ModelConfig.from_dict(ckpt["config"]))
    if ckpt.get("prior_components") is not None:
        model.fix_prior(*ckpt["prior_components"])  # (K, D) means and log-variances
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    gen = torch.Generator().manual_seed(args.seed)
    with torch.inference_mode():
        z = model.sample_prior(args.n, gen)  # (n, D)
        x = torch.sigmoid(model.decode(z))  # (n, C, H, W) in [0, 1]
    tiles = (x.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)  # (n, H, W, C)
    tiles = tiles.repeat(2, axis=1).repeat(2, axis=2)
    n, h, w, c = tiles.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pad = 2
    canvas = np.full((pad + rows * (h + pad), pad + cols * (w + pad), c), 64, np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = tiles[i]
    Image.fromarray(canvas[..., 0] if c == 1 else canvas).save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
