"""Can the decoder paint a colour onto a shape? Issue 13's grey Color-dSprites reconstructions, isolated.

Each variant trains a small deterministic autoencoder (train.models, conv, 32x32 Color-dSprites,
squared error through the straight-through sigmoid of train/fit.py) for a fixed number of steps.
The decoder is also given each image's true colour (3 numbers, beside the code, as
the supervised AAE's decoder gets its label), so the encoder is out of the question: what is left is
whether the decoder turns a colour into coloured pixels. Measured on 1,000 fresh images (factor seed
5): the correlation, across images, of the reconstruction's mean colour inside the shape with the
input's, for brightness (the mean of the channels) and for hue (each channel minus that mean).

    python benchmarks/colour_painting.py            # both variants, 3-4 minutes each on one core
    python benchmarks/colour_painting.py --only film-oracle --steps 1000

Results: benchmarks/results/colour_painting.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from train import dsprites
from train.config import ModelConfig
from train.dsprites import render, sample_indices
from train.fit import squared_error
from train.models import Autoencoder
from vaegen_infer.io import save_json, write_bytes

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = 32


@dataclass(frozen=True)
class Variant:
    film: bool  # the decoder's FiLM layers (train/models.py)
    what: str


VARIANTS = {
    "plain-oracle": Variant(False, "plain decoder, given the true colour"),
    "film-oracle": Variant(True, "FiLM decoder, given the true colour"),
}
LATENT_DIM = 10


def images(indices: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(render(indices, color=True, size=SIZE).astype(np.float32) / 255.0)  # (B, 3, S, S)


def true_colour(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) -> (B, 3): each channel's maximum, the sprite's colour, centred on U[0.5, 1]'s mean."""
    return x.amax(dim=(2, 3)) - 0.75


def measure(model: Autoencoder, x: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        mu, _ = model.encode(x)
        recon = torch.sigmoid(model.decode(mu, true_colour(x)))
    # (B, 3) mean colour inside the input's shape, for the input and for its reconstruction
    mask = dsprites.shape_mask(x.numpy())[:, None]  # (B, 1, S, S)
    ci = dsprites.mean_colour(x.numpy())
    cr = (recon.numpy() * mask).sum(axis=(2, 3)) / mask.sum(axis=(2, 3))
    hi, hr = ci - ci.mean(1, keepdims=True), cr - cr.mean(1, keepdims=True)
    hue = [float(np.corrcoef(hi[:, c], hr[:, c])[0, 1]) for c in range(3)]
    return {
        "mse": float(((recon - x) ** 2).mean()),
        "brightness_r": float(np.corrcoef(ci.mean(1), cr.mean(1))[0, 1]),
        "hue_r_red": hue[0],
        "hue_r_green": hue[1],
        "hue_r_blue": hue[2],
    }


def run(name: str, steps: int, seed: int) -> dict[str, object]:
    v = VARIANTS[name]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = ModelConfig(
        kind="aae", image_shape=(3, SIZE, SIZE), latent_dim=LATENT_DIM, channels=(32, 32, 64), hidden=256,
        posterior="deterministic", likelihood="gaussian", decoder_labels=3, film=v.film,
    )  # fmt: skip
    model = Autoencoder(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    pool = sample_indices(200_000, seed)
    test = images(sample_indices(1000, 5))
    start = time.perf_counter()
    curve = []
    for step in range(1, steps + 1):
        x = images(pool[rng.integers(0, len(pool), 64)])
        mu, _ = model.encode(x)
        logits = model.decode(mu, true_colour(x))
        loss = squared_error(logits, x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 1000 == 0 or step == steps:
            curve.append({"step": step, **measure(model, test)})
            print(name, json.dumps(curve[-1]), flush=True)
    return {"what": v.what, "steps": steps, "seconds": round(time.perf_counter() - start, 1), "curve": curve}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="variants to run (default: all)")
    ap.add_argument("--steps", type=int, default=5000, help="batches of 64 per variant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = RESULTS / "colour_painting.json"
    mine = {name: run(name, args.steps, args.seed) for name in args.only or list(VARIANTS)}
    # read the file only now, so that runs of different variants side by side keep each other's rows
    results = json.loads(path.read_text())["variants"] if path.exists() else {}
    results = {name: mine.get(name, results.get(name)) for name in VARIANTS if name in mine or name in results}
    save_json(path, {"command": "python benchmarks/colour_painting.py", "size": SIZE, "variants": results})
    lines = [
        "| variant | steps | MSE | brightness r | hue r (red / green / blue) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        last = r["curve"][-1]
        hue = " / ".join(f"{last[k]:.2f}" for k in ("hue_r_red", "hue_r_green", "hue_r_blue"))
        lines.append(f"| {name}: {r['what']} | {r['steps']} | {last['mse']:.5f} | {last['brightness_r']:.2f} | {hue} |")
    text = "\n".join(lines) + "\n"
    write_bytes(RESULTS / "colour_painting.md", lambda fh: fh.write(text.encode("utf-8")))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
