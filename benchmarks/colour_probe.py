"""Does a Color-dSprites model carry the sprite's colour? (issue 13's open question)

For a training run (checkpoint.pt) or nothing else: encode 3,000 freshly generated Color-dSprites
images (factor seed 11, colour seed 3, neither used in training), fit a linear map from the posterior
mean z to each channel's hue (the channel minus the mean of the three) and to the brightness (the
mean of the three) on 2,000 of them, and report R^2 on the other 1,000; then report how the
reconstructions' mean sprite colour correlates with the input's, per channel, for hue and brightness.
A model that encodes colour scores near 1; one that paints every sprite the average colour near 0.

    python benchmarks/colour_probe.py runs/cds [runs/other ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def probe(run: Path, n: int = 3000, n_fit: int = 2000) -> dict[str, float]:
    """R^2 of hue/brightness from z on held-out images and the reconstructions' colour correlations."""
    import torch

    from train import dsprites as ds
    from train.fit import load_checkpoint

    model, _ = load_checkpoint(run)
    model.eval()
    c, size, _ = model.cfg.image_shape
    if c != 3:
        raise SystemExit(f"{run}: a {c}-channel model has no colour to probe")
    idx = ds.sample_indices(n, 11)
    x = ds.render(idx, color=True, seed=3, size=size).astype(np.float32) / 255.0  # (n, 3, S, S)
    with torch.no_grad():
        mu, _ = model.encode(torch.from_numpy(x))
        recon = torch.sigmoid(model.decode(mu)).numpy()  # (n, 3, S, S) means in [0, 1]
    z = mu.numpy()
    colour = ds.colours(idx, 3).astype(np.float64) / 255.0  # (n, 3) the true sprite colours
    mask = ds.render(idx, size=size)[:, 0] > 0  # (n, S, S)
    painted = np.stack([(recon[:, k] * mask).sum((1, 2)) / mask.sum((1, 2)) for k in range(3)], 1)  # (n, 3)
    design = np.c_[z, np.ones(n)]

    def r2(target: np.ndarray) -> float:
        w = np.linalg.lstsq(design[:n_fit], target[:n_fit], rcond=None)[0]
        rest = target[n_fit:]
        return float(1.0 - ((design[n_fit:] @ w - rest) ** 2).mean() / rest.var())

    out: dict[str, float] = {"brightness_r2_from_z": r2(colour.mean(1))}
    for k, name in enumerate(("red", "green", "blue")):
        hue, painted_hue = colour[:, k] - colour.mean(1), painted[:, k] - painted.mean(1)
        out[f"{name}_hue_r2_from_z"] = r2(hue)
        out[f"{name}_hue_corr_recon"] = float(np.corrcoef(hue, painted_hue)[0, 1])
    out["brightness_corr_recon"] = float(np.corrcoef(colour.mean(1), painted.mean(1))[0, 1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="training run directories (with checkpoint.pt)")
    for run in ap.parse_args().runs:
        print(run, " ".join(f"{k}={v:.3f}" for k, v in probe(run).items()))


if __name__ == "__main__":
    main()
