"""Model quality, measured through the exported ONNX graphs (what users run), in numpy.

VAE: the importance-sampled bound on test log-likelihood (IWAE, Burda et al. 2015) with k samples
per image, on the MNIST test set binarised once with a fixed seed, plus the ELBO, its terms and the
active units. AAE: a Parzen-window log-likelihood with the window chosen on validation data, and
how well the codes follow the prior. Both: sample quality judged by the digit classifier in
train/classifier.py (class balance, confidence, Frechet distance on its features).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from tqdm import tqdm

import vaegen_infer
from vaegen_infer.datasets import binarize
from vaegen_infer.errors import UsageError
from vaegen_infer.priors import _LOG_2PI as LOG_2PI  # one copy of log(2 pi), the runtime's
from vaegen_infer.priors import GaussianPrior

BINARIZE_SEED = 0  # the test set is binarised once, with this seed, for every model


def protocol(k: int, n_images: int, subset: str) -> dict[str, Any]:
    return {
        "estimator": "IWAE bound, log mean_j p(x, z_j) / q(z_j | x), z_j ~ q(z | x)",
        "k": k,
        "images": n_images,
        "subset": subset,
        "binarisation": f"stochastic, pixel = 1 with probability = intensity, numpy seed {BINARIZE_SEED}",
        "units": "nats per image, lower is better",
        "through": "exported ONNX graphs (onnxruntime, CPU)",
    }


def _log_bernoulli(x: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log p(x | logits) summed over pixels: x (..., P), logits (..., P) -> (...). Stable form
    x * l - softplus(l), so saturated probabilities never take log(0)."""
    return (x * logits - np.logaddexp(0.0, logits)).sum(-1)


LEVELS = 256  # 8-bit data: pixel k in 0..255 is the value k / 255


def log_discretised_gaussian(x: np.ndarray, mean: np.ndarray, log_sigma: float, levels: int = LEVELS) -> np.ndarray:
    """log P(x) summed over pixels for 8-bit images under N(mean, sigma^2) discretised to `levels`
    bins: x (..., P) in {0, 1/255, ..., 1}, mean (..., P) -> (...), nats.

    Pixel x gets the Gaussian mass of [x - 1/510, x + 1/510] (one of 256 levels of [0, 1]); the
    first and last bins extend to -inf and +inf, so the 256 probabilities sum to 1 (as in
    PixelCNN++, Salimans et al. 2017). log(Phi(b) - Phi(a)) is taken on the side of the
    distribution where both ends are <= 0, from log Phi, so thin bins in the tails do not round
    to log(0)."""
    from scipy.special import log_ndtr

    half = 0.5 / (levels - 1)
    inv = math.exp(-log_sigma)
    upper = np.where(x > 1.0 - half, np.inf, (x + half - mean) * inv)
    lower = np.where(x < half, -np.inf, (x - half - mean) * inv)
    flip = lower > 0  # both ends in the right tail: Phi(u) - Phi(l) = Phi(-l) - Phi(-u)
    a = np.where(flip, -upper, lower)
    b = np.where(flip, -lower, upper)
    lb, la = log_ndtr(b), log_ndtr(a)
    with np.errstate(divide="ignore"):
        return (lb + np.log1p(-np.exp(la - lb))).sum(-1)


def bits_per_dim(log_likelihood: np.ndarray, dims: int) -> np.ndarray:
    """Nats per image -> bits per dimension: -log p(x) / (dims * ln 2)."""
    return -log_likelihood / (dims * math.log(2))


# Decoded values per run: 8,192 rows of 784 pixels, what the MNIST protocol always used.
ELEMENTS_PER_RUN = 8192 * 784


def iwae(
    g: vaegen_infer.Model, x: np.ndarray, k: int = 1000, seed: int = 0, rows_per_run: int = 8192, quiet: bool = False
) -> dict[str, Any]:
    """Per-image IWAE log-likelihood bounds and one-sample ELBO terms, nats, for images (N, C, H, W):
    binary images under a Bernoulli decoder, 8-bit images (values k / 255) under a Gaussian one
    with the discretised likelihood (`log_discretised_gaussian`, the bundle's log_sigma).

    Each image's k codes are decoded in runs of about `rows_per_run` rows (fewer for large images),
    (images * k, D) -> logits.
    """
    prior = g.prior
    if not prior.has_density:
        raise UsageError(f"the IWAE bound needs a prior with a density; {g.name} has '{prior.name}'")
    # N(0, scale^2 I) has a closed-form KL; any other prior gets the one-sample estimate below.
    scale = float(prior.params()["scale"]) if isinstance(prior, GaussianPrior) else None
    mu, logvar = g.encode(x)  # (N, D) each
    n, d = mu.shape
    flat = x.reshape(n, -1).astype(np.float64)  # (N, P)
    pixels = flat.shape[1]
    image = g.manifest.image
    if image.likelihood == "gaussian":
        from scipy.special import expit  # sigmoid without overflow at logits of -100

        log_sigma = image.log_sigma

        def log_px_of(target: np.ndarray, logits: np.ndarray) -> np.ndarray:
            return log_discretised_gaussian(target, expit(logits), log_sigma)
    else:
        log_px_of = _log_bernoulli
    rng = np.random.default_rng(seed)
    per_run = max(1, min(rows_per_run // k, ELEMENTS_PER_RUN // (k * pixels)))
    ll = np.empty(n)
    rec = np.empty(n)
    kl = np.empty(n)
    bar = tqdm(total=n, desc=f"IWAE k={k}", unit="img", disable=quiet, dynamic_ncols=True)
    for start in range(0, n, per_run):
        sl = slice(start, min(n, start + per_run))
        b = sl.stop - sl.start
        m, lv = mu[sl].astype(np.float64), logvar[sl].astype(np.float64)
        eps = rng.standard_normal((b, k, d))
        z = m[:, None] + np.exp(0.5 * lv)[:, None] * eps  # (b, k, D)
        logits = g.decode_logits(z.reshape(b * k, d).astype(np.float32)).reshape(b, k, -1)
        log_px = log_px_of(flat[sl][:, None, :], logits.astype(np.float64))  # (b, k)
        log_pz = prior.log_density(z)  # (b, k)
        log_qz = log_normal_at_draw(eps, lv[:, None])  # (b, k)
        log_w = log_px + log_pz - log_qz  # (b, k)
        top = log_w.max(1)
        ll[sl] = top + np.log(np.exp(log_w - top[:, None]).mean(1))
        rec[sl] = -log_px[:, 0]
        if scale is not None:
            kl[sl] = 0.5 * ((np.exp(lv) + m**2) / scale**2 - 1 - lv + 2 * math.log(scale)).sum(1)
        else:
            kl[sl] = log_qz[:, 0] - log_pz[:, 0]
        bar.update(b)
    bar.close()
    return {"log_likelihood": ll, "rec": rec, "kl": kl, "mu": mu}


def log_normal_at_draw(eps: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """numpy twin of train.models.log_normal_at_draw (this module runs without torch):
    log N(z; mu, diag exp(logvar)) at z = mu + exp(logvar / 2) * eps, (..., D) -> (...)."""
    return -0.5 * (LOG_2PI + logvar + eps**2).sum(-1)


def active_units(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Burda et al.: dimensions whose posterior mean varies across inputs, Var_x(E[z | x]) > 0.01."""
    return int((mu.var(0) > threshold).sum())


def vae_metrics(
    g: vaegen_infer.Model, x_test: np.ndarray, k: int, n_images: int, seed: int = 0, quiet: bool = False
) -> dict[str, Any]:
    x_bin = binarize(x_test, BINARIZE_SEED)[:n_images]
    started = time.time()
    out = iwae(g, x_bin, k=k, seed=seed, quiet=quiet)
    subset = "all 10,000 test images" if n_images >= len(x_test) else f"first {n_images:,} test images"
    elbo = -(out["rec"] + out["kl"])
    return {
        "test_nll": round(float(-out["log_likelihood"].mean()), 2),
        "test_nll_sem": round(float(out["log_likelihood"].std() / math.sqrt(len(x_bin))), 2),
        "test_elbo": round(float(elbo.mean()), 2),
        "test_rec": round(float(out["rec"].mean()), 2),
        "test_kl": round(float(out["kl"].mean()), 2),
        "active_units": active_units(out["mu"]),
        "protocol": protocol(k, len(x_bin), subset),
        "seconds": round(time.time() - started, 1),
    }


def protocol_8bit(k: int, n_images: int, subset: str, log_sigma: float) -> dict[str, Any]:
    return {
        "estimator": "IWAE bound, log mean_j p(x, z_j) / q(z_j | x), z_j ~ q(z | x)",
        "k": k,
        "images": n_images,
        "subset": subset,
        "likelihood": f"Gaussian, shared sigma exp({log_sigma:.4f}), discretised to 256 levels (bins of 1/255, "
        "outer bins open)",
        "units": "bits per dimension (nats / (C H W ln 2)), lower is better",
        "through": "exported ONNX graphs (onnxruntime, CPU)",
    }


def vae_metrics_8bit(
    g: vaegen_infer.Model, x_test: np.ndarray, k: int, subset: str, seed: int = 0, quiet: bool = False
) -> dict[str, Any]:
    """Test NLL in bits/dim (IWAE bound with the discretised Gaussian), the ELBO's terms in bits/dim,
    the mean squared error of the mean reconstruction, and the active units. x_test: (N, C, H, W)
    float32 with values k / 255."""
    started = time.time()
    out = iwae(g, x_test, k=k, seed=seed, quiet=quiet)
    dims = int(np.prod(x_test.shape[1:]))
    bpd = bits_per_dim(out["log_likelihood"], dims)
    recon = g.decode(out["mu"])
    return {
        "test_bpd": round(float(bpd.mean()), 4),
        "test_bpd_sem": round(float(bpd.std() / math.sqrt(len(bpd))), 4),
        "test_elbo_bpd": round(float(bits_per_dim(-(out["rec"] + out["kl"]), dims).mean()), 4),
        "test_rec_bpd": round(float((out["rec"] / (dims * math.log(2))).mean()), 4),
        "test_kl_nats": round(float(out["kl"].mean()), 2),
        "test_mse": round(float(((recon - x_test) ** 2).mean()), 6),
        "active_units": active_units(out["mu"]),
        "protocol": protocol_8bit(k, len(x_test), subset, g.manifest.image.log_sigma),
        "seconds": round(time.time() - started, 1),
    }


def _classifier() -> Any:
    from train import classifier  # numpy + onnxruntime at measuring time; torch only to retrain it

    return classifier


def sample_metrics(g: vaegen_infer.Model, x_test: np.ndarray, n: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Unconditional samples judged by the digit classifier: confidence, class balance, and the
    Frechet distance to the test images in the classifier's feature space."""
    clf_mod = _classifier()
    clf = clf_mod.load_classifier()
    samples = g.sample(n, seed=seed)
    quality = clf_mod.sample_quality(samples, classifier=clf)
    _, f_samples = clf.predict(samples)
    _, f_test = clf.predict(x_test[:n])
    out = {
        "samples": n,
        "confidence": round(float(quality["confidence"]), 4),
        "class_share": [round(float(v), 4) for v in quality["class_share"]],
        "class_kl_from_uniform": round(float(quality["kl_from_uniform_nats"]), 4),
        "frechet_distance": round(float(clf_mod.frechet_distance(f_samples, f_test)), 2),
        "protocol": f"{n:,} samples (seed {seed}) vs the first {min(n, len(x_test)):,} test images; "
        "features and probabilities of train/assets/digit-classifier.onnx",
    }
    if g.manifest.conditional and g.manifest.labels:
        out.update(by_label_metrics(g, clf_mod, clf, max(1, n // len(g.manifest.labels)), seed))
    return out


def by_label_metrics(g: vaegen_infer.Model, clf_mod: Any, clf: Any, per: int, seed: int) -> dict[str, Any]:
    """Share of per-label samples the classifier recognises as the label asked for, overall and per
    label; drawn with the library's one per-label rule (label i: seed + i, `Model.sample_per_label`)."""
    rows = g.sample_per_label(per, seed)  # (L, per, C, H, W)
    imgs = rows.reshape(-1, *rows.shape[2:])
    want = np.repeat(np.arange(len(rows)), per)
    q = clf_mod.sample_quality(imgs, requested_labels=want, classifier=clf)
    probs, _ = clf.predict(imgs)
    hits = (probs.argmax(1) == want).reshape(len(rows), per)
    return {
        "by_label_recognised": round(float(q["requested_share"]), 4),
        "by_label_recognised_per_label": [round(float(h.mean()), 3) for h in hits],
        "by_label_protocol": f"{per:,} samples per label, label i drawn with seed {seed} + i",
    }


def _sq_distances(x: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between images (N, ...) and samples (S, ...) -> (N, S)."""
    s = samples.reshape(len(samples), -1).astype(np.float64)
    xb = x.reshape(len(x), -1).astype(np.float64)
    return np.maximum((xb**2).sum(1)[:, None] + (s**2).sum(1)[None, :] - 2 * xb @ s.T, 0.0)


def _parzen_from_distances(dist: np.ndarray, sigma: float, d: int) -> np.ndarray:
    """log (1/S) sum_s N(x | sample_s, sigma^2 I) from squared distances (N, S) -> (N,)."""
    a = -dist / (2 * sigma**2)
    top = a.max(1)
    return top + np.log(np.exp(a - top[:, None]).mean(1)) - d / 2 * math.log(2 * math.pi * sigma**2)


def parzen_log_likelihood(samples: np.ndarray, x: np.ndarray, sigma: float, batch: int = 500) -> np.ndarray:
    """Gaussian Parzen window estimate of log p(x) for each image x under the samples, (N,)."""
    d = int(np.prod(samples.shape[1:]))
    return np.concatenate(
        [_parzen_from_distances(_sq_distances(x[i : i + batch], samples), sigma, d) for i in range(0, len(x), batch)]
    )


PARZEN_SIGMAS = np.geomspace(0.05, 0.5, 19)  # candidate window widths, grey levels in [0, 1]


def parzen_sigma(samples: np.ndarray, x_choose: np.ndarray) -> float:
    """The window width in PARZEN_SIGMAS that maximises the mean Parzen log-likelihood of x_choose."""
    dist = _sq_distances(x_choose, samples)  # (N, S), reused for every candidate width
    d = int(np.prod(samples.shape[1:]))
    return float(PARZEN_SIGMAS[int(np.argmax([_parzen_from_distances(dist, s, d).mean() for s in PARZEN_SIGMAS]))])


def aae_metrics(
    g: vaegen_infer.Model, x_test: np.ndarray, y_test: np.ndarray, x_val: np.ndarray, seed: int = 0
) -> dict[str, Any]:
    """Parzen log-likelihood (window chosen on validation), share of codes in their own label's
    region, and a two-sample statistic (MMD) between test codes and prior samples."""
    samples = g.sample(10_000, seed=seed)
    sigmas = PARZEN_SIGMAS
    best = parzen_sigma(samples, x_val)
    test_ll = parzen_log_likelihood(samples, x_test, best)
    mu, _ = g.encode(x_test)
    out: dict[str, Any] = {
        "parzen_log_likelihood": round(float(test_ll.mean()), 1),
        "parzen_sem": round(float(test_ll.std() / math.sqrt(len(test_ll))), 1),
        "parzen_sigma": round(best, 4),
        "parzen_protocol": f"10,000 samples (seed {seed}); sigma from {len(sigmas)} values in [0.05, 0.5] "
        f"maximising validation log-likelihood ({len(x_val)} images); all {len(x_test):,} test images, grey levels",
    }
    if g.prior.n_regions:
        region = g.prior.region_of(mu)
        out["codes_in_own_region"] = round(float((region == y_test).mean()), 4)
    rng = np.random.default_rng(seed)
    labels = y_test if g.manifest.conditional else None
    ref = g.prior.sample(len(mu), rng, labels)
    ref2 = g.prior.sample(len(mu), rng, labels)
    out["mmd2_codes_vs_prior"] = round(mmd2(mu[:2000], ref[:2000]), 5)
    out["mmd2_prior_vs_prior"] = round(mmd2(ref2[:2000], ref[:2000]), 5)
    out["mmd_protocol"] = (
        "unbiased MMD^2, Gaussian kernel with the median-distance bandwidth, 2,000 test codes vs 2,000 "
        "prior draws" + (" with the same labels" if labels is not None else "") + "; prior vs prior is the noise floor"
    )
    return out


def mmd2(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased squared maximum mean discrepancy with a Gaussian kernel, median-heuristic bandwidth."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    both = np.concatenate([a, b])
    sq = (both**2).sum(1)
    dist = sq[:, None] + sq[None, :] - 2 * both @ both.T
    bandwidth = np.median(dist[np.triu_indices(len(both), 1)])
    kern = np.exp(-dist / bandwidth)
    n, m = len(a), len(b)
    kaa, kbb, kab = kern[:n, :n], kern[n:, n:], kern[:n, n:]
    return float(
        (kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1)) - 2 * kab.mean()
    )
