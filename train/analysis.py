"""What the exporter measures on data and stores in model.json: built-in attribute directions and
per-dimension KL. Computed with the PyTorch model on the run's own training/validation split."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from train.data import Split
from train.fit import kl_per_dim
from train.models import Autoencoder
from vaegen_infer.latent import regression_direction
from vaegen_infer.manifest import Attribute


@torch.no_grad()
def posterior(model: Autoencoder, x: np.ndarray, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """mu, logvar for images (N, C, H, W) -> (N, D) each."""
    model.eval()
    mus, lvs = [], []
    for start in range(0, len(x), batch):
        mu, lv = model.encode(torch.from_numpy(x[start : start + batch]))
        mus.append(mu.numpy())
        lvs.append(lv.numpy())
    return np.concatenate(mus), np.concatenate(lvs)


def stroke_properties(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per image (N,): ink (mean intensity), slant (how far x moves right per pixel up, from the
    intensity-weighted second moments) and width (intensity-weighted std of x, pixels)."""
    _, _, h, w = x.shape
    img = x.mean(1).astype(np.float64)  # (N, H, W), grey
    mass = img.sum((1, 2)) + 1e-8
    cols = np.arange(w, dtype=np.float64)[None, None, :]
    rows_up = -np.arange(h, dtype=np.float64)[None, :, None]  # y grows upwards
    mx = (img * cols).sum((1, 2)) / mass
    my = (img * rows_up).sum((1, 2)) / mass
    dx = cols - mx[:, None, None]
    dy = rows_up - my[:, None, None]
    var_x = (img * dx**2).sum((1, 2)) / mass
    var_y = (img * dy**2).sum((1, 2)) / mass
    cov = (img * dx * dy).sum((1, 2)) / mass
    return {"thickness": img.mean((1, 2)), "slant": cov / (var_y + 1e-8), "width": np.sqrt(var_x)}


_DESCRIPTIONS = {
    "thickness": "stroke ink; amount 1 = +1 standard deviation of mean intensity within a class",
    "slant": "lean to the right; amount 1 = +1 standard deviation of slant within a class",
    "width": "horizontal spread; amount 1 = +1 standard deviation of width within a class",
}


def builtin_attributes(model: Autoencoder, data: Split) -> dict[str, Attribute]:
    """thickness, slant and width (regressions of the code on each property, within class so that
    a thicker 1 stays a 1), and one direction per class: class mean code minus overall mean."""
    mu, _ = posterior(model, data.x_train)
    props = stroke_properties(data.x_train)
    y = data.y_train
    # Remove class means so that a property's direction does not carry class identity with it.
    mu_w = mu.copy()
    props_w = {k: v.copy() for k, v in props.items()}
    for c in np.unique(y):
        sel = y == c
        mu_w[sel] -= mu[sel].mean(0)
        for k in props_w:
            props_w[k][sel] -= props[k][sel].mean()
    out: dict[str, Attribute] = {}
    for key in ("thickness", "slant", "width"):
        out[key] = Attribute(regression_direction(mu_w, props_w[key]), _DESCRIPTIONS[key], "builtin")
    overall = mu.mean(0)
    prefix = "digit" if all(lab.isdigit() for lab in data.labels) else "class"
    for c, lab in enumerate(data.labels):
        sel = y == c
        if sel.any():
            v = (mu[sel].mean(0) - overall).astype(np.float32)
            desc = f"towards {lab}: amount 1 = from the average image to the average {lab}"
            out[f"{prefix}-{lab}"] = Attribute(v, desc, "builtin")
    return out


def latent_statistics(model: Autoencoder, data: Split) -> dict[str, Any]:
    """Which dimensions the model uses, on the validation split: KL per dimension (VAE; nats, mean
    over images) and the variance of mu. Traversals order dimensions by them."""
    mu, logvar = posterior(model, data.x_val)
    stats: dict[str, Any] = {
        "mu_variance_per_dim": [round(float(v), 5) for v in mu.var(0)],
        "source": f"{data.source} validation split, {len(data.x_val)} images",
    }
    if model.cfg.kind == "vae" and model.cfg.prior == "gaussian":  # per-dimension KL needs N(0, I)
        kl = kl_per_dim(torch.from_numpy(mu), torch.from_numpy(logvar)).mean(0).numpy()
        stats["kl_per_dim"] = [round(float(v), 5) for v in kl]
    return stats
