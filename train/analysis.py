"""What the exporter measures on data and stores in model.json: built-in attribute directions and
per-dimension KL. Computed with the PyTorch model on the run's own training/validation split."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from train import dsprites
from train.data import Split, to_float
from train.fit import kl_per_dim
from train.models import Autoencoder
from vaegen_infer.latent import regression_direction
from vaegen_infer.manifest import Attribute

# Directions and statistics are means over images: 20,000 training images (a seeded subset of a
# larger set) pin each mean to ~1% of a standard deviation, and keep export minutes, not hours, on
# a 737,280-image generated set.
MAX_ANALYSIS_IMAGES = 20_000
ANALYSIS_SEED = 0


def analysis_rows(n: int, limit: int = MAX_ANALYSIS_IMAGES) -> np.ndarray:
    """All row indices when n <= limit, else a seeded sorted subset of `limit` of them."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(ANALYSIS_SEED).choice(n, size=limit, replace=False))


@torch.no_grad()
def posterior(
    model: Autoencoder, x: Any, batch: int = 1000, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """mu, logvar for images (N, C, H, W) (array-like, uint8 or float) -> (N, D) each; only `rows`
    of x when given."""
    model.eval()
    rows = np.arange(len(x)) if rows is None else rows
    mus, lvs = [], []
    for start in range(0, len(rows), batch):
        xb = to_float(x[rows[start : start + batch]])
        mu, lv = model.encode(torch.from_numpy(xb))
        mus.append(mu.numpy())
        lvs.append(lv.numpy())
    return np.concatenate(mus), np.concatenate(lvs)


@torch.no_grad()
def decoded_means(model: Autoencoder, z: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Codes (N, D) -> the decoder's images (N, C, H, W) float32 in [0, 1] (sigmoid of the
    logits), what the exported decoder graph returns."""
    model.eval()
    parts = [torch.sigmoid(model.decode(torch.from_numpy(z[s : s + batch].astype(np.float32)))).numpy()
             for s in range(0, len(z), batch)]  # fmt: skip
    return np.concatenate(parts)


TURN_IMAGES = 600  # codes a decoder-side direction search scores each candidate on
TURN_TAU = 0.02  # tanh(change / tau): a smooth stand-in for "moved the right way"; about the
# change of cos(2 x angle) that one degree of turn gives near the ends of the value
TURN_SEED = 0


def turn_through_decoder(decode: Callable[[np.ndarray], np.ndarray], codes: np.ndarray,
                         measure: Callable[[np.ndarray], np.ndarray], start: np.ndarray,
                         steps: int) -> np.ndarray:  # fmt: skip
    """A direction (D,) of `start`'s length whose decodes raise `measure` (images -> (n,) values)
    of `codes` (n, D) most often at amount +1: a (1+1) evolution strategy from `start` (seed
    TURN_SEED, a step of 0.15 of the length) that keeps a candidate only when it raises the mean of
    tanh(change / TURN_TAU). Used where a straight regression cannot follow a curved property
    (dSprites' orientation, `--turn-orientation`); the regression's length keeps the amount."""
    rng = np.random.default_rng(TURN_SEED)
    norm = float(np.linalg.norm(start))
    best = np.asarray(start, dtype=np.float32)
    if steps <= 0 or norm == 0.0:
        return best
    before = measure(decode(codes))  # (n,)

    def smooth_share(v: np.ndarray) -> float:
        change = measure(decode(codes + v[None, :])) - before
        return float(np.tanh(np.nan_to_num(change, nan=-1.0) / TURN_TAU).mean())

    best_score = smooth_share(best)
    for _ in range(steps):
        cand = best + (0.15 * norm / math.sqrt(len(best))) * rng.standard_normal(len(best)).astype(np.float32)
        cand *= norm / float(np.linalg.norm(cand))
        score = smooth_share(cand)
        if score > best_score:
            best, best_score = cand, score
    return best


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


def builtin_attributes(model: Autoencoder, data: Split, turn_steps: int = 0) -> dict[str, Attribute]:
    """The data's own attribute columns when it has them (see `column_attributes`); otherwise
    (MNIST) thickness, slant and width (regressions of the code on each property, within class so
    that a thicker 1 stays a 1), and one direction per class: class mean code minus overall mean."""
    if data.attribute_kinds:
        return column_attributes(model, data, turn_steps)
    rows = np.arange(len(data.x_train))  # MNIST-sized: every training image, as always
    mu, _ = posterior(model, data.x_train, rows=rows)
    x = np.concatenate([to_float(data.x_train[rows[i : i + 1000]]) for i in range(0, len(rows), 1000)])
    props = stroke_properties(x)
    y = data.y_train[rows]
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
        out[key] = Attribute(
            regression_direction(mu_w, props_w[key]), _DESCRIPTIONS[key], "builtin", "continuous",
            f"+1 standard deviation of {_MEASURES[key]} within a class",
        )  # fmt: skip
    out.update(class_directions(mu, y, data.labels or []))
    return out


_MEASURES = {"thickness": "mean intensity", "slant": "slant", "width": "width"}


def class_directions(
    mu: np.ndarray, y: np.ndarray, labels: list[str], skip: set[str] = frozenset()
) -> dict[str, Attribute]:
    """One direction per class: the class's mean code minus the overall mean code."""
    out: dict[str, Attribute] = {}
    overall = mu.mean(0)
    prefix = "digit" if labels and all(lab.isdigit() for lab in labels) else "class"
    for c, lab in enumerate(labels):
        sel = y == c
        if sel.any() and lab not in skip:
            v = (mu[sel].mean(0) - overall).astype(np.float32)
            desc = f"towards {lab}: amount 1 = from the average image to the average {lab}"
            out[f"{prefix}-{lab}"] = Attribute(v, desc, "builtin")
    return out


def column_attributes(model: Autoencoder, data: Split, turn_steps: int = 0) -> dict[str, Attribute]:
    """One direction per attribute column of the training split, on the posterior means mu.

    binary: mean(mu | attribute) - mean(mu | not attribute) (a value >= 0.5 counts as having it,
    so -1/1 and 0/1 columns both work); amount 1 = from the average image without it to the
    average image with it. continuous: `regression_direction` (as `thickness` is made), amount 1 =
    one standard deviation of the attribute. dSprites' `orientation_cos` and `orientation_sin`
    are fitted on one shape only (`dsprites.FIT_ON_SHAPE`: ellipses, whose doubled angle the code
    follows best along a straight line); with `turn_steps` > 0 each is then turned through the
    decoder (`turn_through_decoder`, on the first TURN_IMAGES of those codes, the measured value
    from pixels). Class directions are added for labels that are not already attribute columns."""
    rows = analysis_rows(len(data.x_train))
    mu, _ = posterior(model, data.x_train, rows=rows)
    out: dict[str, Attribute] = {}
    for name, kind in data.attribute_kinds.items():
        values = np.asarray(data.attributes_train[name], dtype=np.float64)[rows]
        codes = mu
        if kind == "binary":
            has = values >= 0.5
            if has.all() or not has.any():
                continue  # every image (or none) has it: no direction to measure
            v = (mu[has].mean(0) - mu[~has].mean(0)).astype(np.float32)
            desc = f"{name}: mean code with it minus mean code without it ({int(has.sum())} of {len(has)} images)"
            out[name] = Attribute(v, desc, "builtin", "binary", f"from the average image without {name} to one with it")
            continue
        note = ""
        shape = dsprites.FIT_ON_SHAPE.get(name) if data.factors else None
        if shape is not None and shape in data.attributes_train:
            on_shape = np.asarray(data.attributes_train[shape])[rows] >= 0.5
            codes, values = mu[on_shape], values[on_shape]
            note = f", fitted on {shape}s"
        if values.std() == 0:
            continue
        sd = float(values.std())
        desc = f"{name}: regression of the code on {name}{note}"
        v = regression_direction(codes, values)
        if shape is not None and turn_steps > 0:
            turn = codes[:TURN_IMAGES]  # (n, D)
            def measured(img: np.ndarray, s: str = shape, k: str = name) -> np.ndarray:
                # (n,) the column from the pixels' angle alone: the search decodes 600 images a step
                return dsprites.orientation_column(k, s, dsprites.orientation(img, s))

            v = turn_through_decoder(lambda z: decoded_means(model, z), turn, measured, v, turn_steps)
            desc += (f", then turned through the decoder ({turn_steps} steps of a (1+1) evolution strategy on "
                     f"{len(turn)} of them, the regression's length)")  # fmt: skip
        out[name] = Attribute(v, desc, "builtin", "continuous", f"+1 standard deviation of {name} ({sd:.4g}){note}")
    y = np.asarray(data.y_train)[rows]
    out.update(class_directions(mu, y, data.labels or [], skip=frozenset(data.attribute_kinds)))
    return out


def latent_statistics(model: Autoencoder, data: Split) -> dict[str, Any]:
    """Which dimensions the model uses, on the validation split: KL per dimension (VAE; nats, mean
    over images) and the variance of mu. Traversals order dimensions by them."""
    rows = analysis_rows(len(data.x_val))
    mu, logvar = posterior(model, data.x_val, rows=rows)
    stats: dict[str, Any] = {
        "mu_variance_per_dim": [round(float(v), 5) for v in mu.var(0)],
        "source": f"{data.source} validation split, {len(rows)} images",
    }
    if model.cfg.kind == "vae" and model.cfg.prior == "gaussian":  # per-dimension KL needs N(0, I)
        kl = kl_per_dim(torch.from_numpy(mu), torch.from_numpy(logvar)).mean(0).numpy()
        stats["kl_per_dim"] = [round(float(v), 5) for v in kl]
    return stats


# The fitted sampler (`python -m train export --sampler gmm:K`): ex-post density estimation.
SAMPLER_SEED = 0
SAMPLER_MAX_COMPONENTS = 1000


def parse_sampler(text: str) -> int:
    """`prior` -> 0 (sample from the prior), `gmm:K` -> K components; ValueError with the rule."""
    t = text.strip().lower()
    if t == "prior":
        return 0
    head, _, tail = t.partition(":")
    if head == "gmm" and tail.isdigit() and 1 <= int(tail) <= SAMPLER_MAX_COMPONENTS:
        return int(tail)
    raise ValueError(f"--sampler must be 'prior' or 'gmm:K' with K in 1..{SAMPLER_MAX_COMPONENTS}, got '{text}'")


def aggregate_codes(model: Autoencoder, x: Any, seed: int = SAMPLER_SEED) -> np.ndarray:
    """One code per image from its posterior, (N, D): mu + sigma * eps (a seeded eps), mu itself for
    a deterministic encoder. Pooled over images they are draws from the aggregate posterior q(z),
    the density a decoder has seen codes from."""
    rows = analysis_rows(len(x))
    mu, logvar = posterior(model, x, rows=rows)
    if model.cfg.posterior == "deterministic":
        return mu.astype(np.float64)
    eps = np.random.default_rng(seed).standard_normal(mu.shape)
    return mu.astype(np.float64) + np.exp(0.5 * logvar.astype(np.float64)) * eps


def fit_mixture(codes: np.ndarray, components: int) -> Any:
    """Codes (N, D) -> the runtime's GaussianMixturePrior with K = `components` diagonal Gaussians,
    fitted by EM (scikit-learn, k-means start, seed SAMPLER_SEED, 1e-6 added to each variance)."""
    from sklearn.mixture import GaussianMixture

    from vaegen_infer.priors import GaussianMixturePrior

    gm = GaussianMixture(components, covariance_type="diag", random_state=SAMPLER_SEED, reg_covar=1e-6)
    gm.fit(codes)
    # covariances_ (K, D): the diagonal variances
    return GaussianMixturePrior(
        codes.shape[1], gm.weights_.tolist(), gm.means_.tolist(), np.log(gm.covariances_).tolist()
    )


SAMPLER_CHECK_COMPONENTS = 10  # the mixture every export without --sampler compares with the prior
SAMPLER_CHECK_MARGIN = 1.0  # nats per held-out code by which it must win for the export to say so


def sampler_check(model: Autoencoder, data: Split, prior: Any) -> dict[str, Any] | None:
    """For an export without --sampler: does a SAMPLER_CHECK_COMPONENTS-component mixture fit the
    held-out codes better than the prior? -> the two mean log-densities (nats per code), or None
    where it cannot be told (no validation split, a prior without a density, too few images)."""
    if not prior.has_density or len(data.x_val) < 50 or len(data.x_train) < 20 * SAMPLER_CHECK_COMPONENTS:
        return None
    mixture = fit_mixture(aggregate_codes(model, data.x_train), SAMPLER_CHECK_COMPONENTS)
    n, under_mixture, under_prior = held_out_log_density(model, data, mixture, prior)
    return {
        "components": SAMPLER_CHECK_COMPONENTS,
        "validation_codes": n,
        "val_log_density_mixture": under_mixture,
        "val_log_density_prior": under_prior,
    }


def held_out_log_density(model: Autoencoder, data: Split, mixture: Any, prior: Any) -> tuple[int, float, float | None]:
    """The validation split's aggregate-posterior codes (eps seeded SAMPLER_SEED + 1) -> (how many,
    their mean log-density under `mixture`, under `prior` or None without a density), nats per code."""
    val = aggregate_codes(model, data.x_val, seed=SAMPLER_SEED + 1)  # (M, D)
    under_prior = round(float(prior.log_density(val).mean()), 3) if prior.has_density else None
    return len(val), round(float(mixture.log_density(val).mean()), 3), under_prior


def fit_sampler(model: Autoencoder, data: Split, components: int, prior: Any) -> tuple[Any, dict[str, Any]]:
    """A K-component diagonal Gaussian mixture fitted by EM (scikit-learn, k-means start, seed 0)
    to the training split's aggregate-posterior codes -> (the runtime's GaussianMixturePrior, a
    record for model.json's training.sampler). The record holds the mean log-density of the
    validation split's codes under the mixture and under the prior (nats per code): the mixture
    should give them more, else the prior fits the codes better and sampling from it is as good."""
    codes = aggregate_codes(model, data.x_train)  # (N, D)
    if components > len(codes) // 2:
        raise ValueError(
            f"--sampler gmm:{components} needs at least {2 * components} training images, have {len(codes)}"
        )
    sampler = fit_mixture(codes, components)
    record: dict[str, Any] = {
        "method": "ex-post density estimation (Ghosh et al. 2020): a diagonal Gaussian mixture fitted by EM "
        "(scikit-learn GaussianMixture, k-means start) to one draw mu + sigma * eps per training image",
        "components": components,
        "images": len(codes),
        "seed": SAMPLER_SEED,
    }
    if len(data.x_val):
        n, under_sampler, under_prior = held_out_log_density(model, data, sampler, prior)
        record["validation_codes"] = n
        record["val_log_density_sampler"] = under_sampler
        if under_prior is not None:
            record["val_log_density_prior"] = under_prior
    return sampler, record
