"""Disentanglement metrics against ground-truth factors: MIG, the FactorVAE metric and DCI.

Each metric follows google-research/disentanglement_lib (evaluation/metrics/{mig,factor_vae,dci,
utils}.py and config/unsupervised_study_v1/metric_configs/*.gin), so figures compare with the
field's tables:

- MIG (Chen et al. 2018): 10,000 points, each code dimension discretised into 20 equal-width
  histogram bins, discrete mutual information with each factor; per factor the gap between the
  two most informative dimensions divided by the factor's entropy, averaged over factors.
- FactorVAE metric (Kim and Mnih 2018): variances of the codes over 10,000 points; dimensions
  with standard deviation < 0.05 are pruned; 10,000 training and 5,000 evaluation votes, each a
  batch of 64 points sharing one randomly chosen factor; the vote is the dimension of least
  normalised variance; a majority-vote classifier (dimension -> factor) is read off the training
  votes and its accuracy on the evaluation votes is the score.
- DCI (Eastwood and Williams 2018): one gradient-boosted tree classifier per factor (sklearn's
  defaults, as disentanglement_lib) on 10,000 training points, tested on 5,000; the absolute
  feature importances form the (D, K) importance matrix; disentanglement = importance-weighted
  1 - entropy (base K) of each row, completeness = the same over columns (base D),
  informativeness = the classifiers' mean accuracy (train and test).

Every metric draws from its own `numpy.random.default_rng(seed)` (disentanglement_lib:
`evaluation.random_seed = 0` per metric), so a figure is reproducible from its protocol, which is
returned beside the score: `{"score": ..., ..., "protocol": {...}}`.

The representation is the posterior mean (disentanglement_lib's "mean" representation). The
ground-truth data is anything with `factor_sizes`, `sample_factors(n, rng) -> (n, K) ints` and
`render(factors) -> images (n, C, H, W)` (optionally `factor_names`): a `FactorSource`.

How `python -m train evaluate` will call this (DSpritesFactors below adapts train/dsprites.py):

    model = vaegen_infer.load(bundle)                   # the exported graphs, not the torch model
    source = DSpritesFactors()                          # or DSpritesFactors(color=True)
    def representation(x): return model.encode(x)[0]    # (n, D) posterior means via encoder.onnx
    report = evaluate_all(source, representation, seed=0)
    # report["mig"|"factor_vae"|"dci"] = {"score": ..., "protocol": {...}}  -> model.json metrics
    mi = report["mig"]["mi_normalised"]                 # (D, K), I(z_j; v_k) / H(v_k)
    per_dim = vaegen_infer.factors.factor_table(mi, source.factor_names, DEFAULT_THRESHOLD)

The exporter writes `latent_factors = {"per_dim": per_dim, "factors": source.factor_names,
"protocol": report["mig"]["protocol"]}`; `vaegen_infer.factors.mi_heatmap(mi, names)` draws the
picture. Cost at the full protocol: MIG renders and encodes 10,000 images; DCI 15,000, then fits
100 boosted trees per class of each factor, 11,300 in all (the slow part: 7 to 13 minutes measured
on the busy machine); the FactorVAE metric 10,000 + 15,000 x 64 = 970,000 images (rendering runs at
about 13,000 images/s per core, so over a minute for rendering alone, plus the encoder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

Representation = Callable[[np.ndarray], np.ndarray]  # images (n, C, H, W) -> codes (n, D)

REFERENCE = "google-research/disentanglement_lib, config/unsupervised_study_v1/metric_configs"

# disentanglement_lib's unsupervised_study_v1 settings (mig.gin, factor_vae_metric.gin, dci.gin).
MIG_NUM_TRAIN = 10_000
MIG_NUM_BINS = 20
FVAE_BATCH = 64
FVAE_NUM_TRAIN = 10_000
FVAE_NUM_EVAL = 5_000
FVAE_NUM_VARIANCE = 10_000
FVAE_PRUNE = 0.05
DCI_NUM_TRAIN = 10_000
DCI_NUM_TEST = 5_000
# Colour channel bins of Color-dSprites' observed colour (latent_factors labels): coarse enough that
# the plug-in MI's upward bias, about (20 - 1)(16 - 1) / (2 n) nats, is 0.05 nats at the export's
# 3,000 points (2% of a channel's entropy, log 16 = 2.77 nats).
COLOUR_LEVELS = 16
# Images pushed through the representation per call: only the speed depends on it (the codes of
# a deterministic representation do not), disentanglement_lib uses 16 to 64.
REPRESENTATION_BATCH = 1024


class FactorSource(Protocol):
    """Ground-truth data: a factor sampler and a renderer (dSprites, or a toy set in tests)."""

    @property
    def factor_sizes(self) -> Sequence[int]: ...

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray: ...  # (n, K) ints

    def render(self, factors: np.ndarray) -> np.ndarray: ...  # (n, K) -> images (n, C, H, W)


def factor_names(source: FactorSource) -> list[str]:
    """The source's factor names, or factor0, factor1, ... when it has none."""
    names = getattr(source, "factor_names", None)
    sizes = list(source.factor_sizes)
    return list(names) if names is not None else [f"factor{k}" for k in range(len(sizes))]


def encode(representation: Representation, images: np.ndarray, batch: int = REPRESENTATION_BATCH) -> np.ndarray:
    """Codes (n, D) float64 of images (n, ...), `batch` images per call of the representation."""
    out = [np.asarray(representation(images[i : i + batch]), dtype=np.float64) for i in range(0, len(images), batch)]
    codes = np.concatenate(out, axis=0)
    if codes.ndim != 2 or len(codes) != len(images):
        raise ValueError(f"the representation must map n images to (n, D) codes; got shape {codes.shape}")
    return codes


def sample_codes(
    source: FactorSource, representation: Representation, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n points of (codes (n, D), factors (n, K)): factors drawn from the source, rendered, encoded.
    Rendering goes in chunks so that no more than REPRESENTATION_BATCH images exist at once."""
    factors = np.asarray(source.sample_factors(n, rng), dtype=np.int64)  # (n, K)
    codes = [
        encode(representation, source.render(factors[i : i + REPRESENTATION_BATCH]))
        for i in range(0, n, REPRESENTATION_BATCH)
    ]
    return np.concatenate(codes, axis=0), factors


class DSpritesFactors:
    """train/dsprites.py as a FactorSource: the five factors of Matthey et al.'s grid (shape 3,
    scale 6, orientation 40, x 32, y 32) drawn uniformly, rendered as (n, C, 64, 64) float32 in
    [0, 1], what the encoder takes."""

    def __init__(self, color: bool = False, seed: int = 0, size: int | None = None) -> None:
        from train import dsprites

        self._ds = dsprites
        self.color = color
        self.seed = seed  # Color-dSprites' colour table
        self.size = size or dsprites.SIZE  # rendered side in pixels (a model trained at --image-size)
        self.factor_names = list(dsprites.FACTORS)
        self.factor_sizes = tuple(dsprites.GRID)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(0, s, n) for s in self.factor_sizes], axis=1)  # (n, 5)

    def _grid_rows(self, factors: np.ndarray) -> np.ndarray:
        """(n, 5) factor indices -> (n,) grid indices (the rows of the original file)."""
        return np.ravel_multi_index(tuple(np.asarray(factors, dtype=np.int64).T), self._ds.GRID)

    def render(self, factors: np.ndarray) -> np.ndarray:
        idx = self._grid_rows(factors)
        return self._ds.render(idx, color=self.color, seed=self.seed, size=self.size).astype(np.float32) / 255.0

    def observed(self, factors: np.ndarray) -> dict[str, np.ndarray]:
        """What else each point (n, 5) shows beyond the factors, for labelling latent dimensions
        only: Color-dSprites' colour, each channel (8-bit level 128..255, fixed by the grid index
        and the colour seed) in COLOUR_LEVELS equal bins, (n,) ints each; nothing for dSprites.
        disentanglement_lib's Color-dSprites treats colour as noise, not a factor, so the metrics
        keep the five factors; without these columns a dimension that holds colour would be
        labelled with whichever factor it shares a little information with (x or y)."""
        if not self.color:
            return {}
        rgb = self._ds.colours(self._grid_rows(factors), self.seed).astype(np.int64)  # (n, 3) in 128..255
        levels = (rgb - 128) * COLOUR_LEVELS // 128  # (n, 3) in 0..COLOUR_LEVELS - 1
        return {name: levels[:, k] for k, name in enumerate(("red", "green", "blue"))}


# --------------------------------------------------------------------------------------------
# Discrete mutual information (utils.py: _histogram_discretize, discrete_mutual_info, entropy)


def histogram_discretize(codes: np.ndarray, num_bins: int = MIG_NUM_BINS) -> np.ndarray:
    """Each column of codes (n, D) binned into `num_bins` equal-width bins over its own range,
    as disentanglement_lib's _histogram_discretize: labels 1..num_bins, (n, D) ints."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], num_bins)[1][:-1]  # left edges: the maximum lands in the last bin
        out[:, j] = np.digitize(codes[:, j], edges)
    return out


def discrete_mutual_info(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mutual information in nats between every column of a (n, D) and every column of b (n, K),
    both integer labels: (D, K). The plug-in estimate, as sklearn's mutual_info_score."""
    from sklearn.metrics import mutual_info_score

    return np.array([[mutual_info_score(b[:, k], a[:, j]) for k in range(b.shape[1])] for j in range(a.shape[1])])


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Entropy in nats of each column of factors (n, K): (K,)."""
    return np.array([discrete_mutual_info(factors[:, [k]], factors[:, [k]])[0, 0] for k in range(factors.shape[1])])


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = MIG_NUM_BINS) -> dict[str, Any]:
    """MIG of codes (n, D) against factors (n, K) (mig.py: _compute_mig). Needs D >= 2.
    Returns the score, the per-factor gaps, the (D, K) mutual information in nats and normalised
    by each factor's entropy (the heat map and the exporter's factor table read the latter)."""
    if codes.shape[1] < 2:
        raise ValueError("MIG needs at least two code dimensions (it is a gap between the best two)")
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)  # (D, K) nats
    entropy = discrete_entropy(factors)  # (K,)
    top2 = np.sort(mi, axis=0)[::-1][:2]  # (2, K)
    gaps = (top2[0] - top2[1]) / entropy  # (K,)
    return {
        "score": float(np.mean(gaps)),
        "per_factor": [float(g) for g in gaps],
        "mi": mi.tolist(),
        "mi_normalised": (mi / entropy[None, :]).tolist(),
        "factor_entropy": entropy.tolist(),
    }


def compute_mig(
    source: FactorSource,
    representation: Representation,
    seed: int = 0,
    num_train: int = MIG_NUM_TRAIN,
    num_bins: int = MIG_NUM_BINS,
) -> dict[str, Any]:
    """The Mutual Information Gap on `num_train` fresh points, with its protocol."""
    rng = np.random.default_rng(seed)
    codes, factors = sample_codes(source, representation, num_train, rng)
    return mig_of_sample(source, codes, factors, seed, num_bins)


def mig_of_sample(
    source: FactorSource, codes: np.ndarray, factors: np.ndarray, seed: int, num_bins: int = MIG_NUM_BINS
) -> dict[str, Any]:
    """compute_mig on points already drawn (codes (n, D), factors (n, K)) from `seed`'s generator."""
    num_train = len(codes)
    out = mig_from_codes(codes, factors, num_bins)
    out["factors"] = factor_names(source)
    out["protocol"] = {
        "metric": "MIG (Chen et al. 2018)",
        "reference": f"{REFERENCE}/mig.gin",
        "num_train": num_train,
        "discretizer": f"histogram, {num_bins} equal-width bins per code dimension",
        "num_bins": num_bins,
        "mi_estimator": "plug-in discrete mutual information (sklearn mutual_info_score), nats",
        "mi_normalised": "I(z_j; v_k) / H(v_k), the fraction of the factor's entropy (heat map, factor table)",
        "representation": "posterior mean",
        "seed": seed,
    }
    return out


# --------------------------------------------------------------------------------------------
# FactorVAE metric (factor_vae.py)


def _fvae_votes(
    source: FactorSource,
    representation: Representation,
    n_votes: int,
    batch_size: int,
    rng: np.random.Generator,
    scale: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """(K, D) vote counts: for each vote, a factor k is fixed over `batch_size` points and the vote
    goes to the active dimension whose variance, divided by its global variance, is least.
    Draws in factor_vae.py's order (factor index, then the batch); renders many votes per call."""
    k_total = len(source.factor_sizes)
    votes = np.zeros((k_total, len(scale)), dtype=np.int64)
    active_idx = np.flatnonzero(active)
    per_call = max(1, REPRESENTATION_BATCH // batch_size)
    done = 0
    while done < n_votes:
        m = min(per_call, n_votes - done)
        fixed, batches = [], []
        for _ in range(m):
            k = int(rng.integers(k_total))
            f = np.asarray(source.sample_factors(batch_size, rng), dtype=np.int64)  # (B, K)
            f[:, k] = f[0, k]
            fixed.append(k)
            batches.append(f)
        codes = encode(representation, source.render(np.concatenate(batches)))  # (m * B, D)
        local = codes.reshape(m, batch_size, -1).var(axis=1, ddof=1)  # (m, D)
        ratio = local[:, active_idx] / scale[active_idx]  # (m, A)
        for k, d in zip(fixed, active_idx[np.argmin(ratio, axis=1)]):
            votes[k, d] += 1
        done += m
    return votes


def compute_factor_vae(
    source: FactorSource,
    representation: Representation,
    seed: int = 0,
    batch_size: int = FVAE_BATCH,
    num_train: int = FVAE_NUM_TRAIN,
    num_eval: int = FVAE_NUM_EVAL,
    num_variance_estimate: int = FVAE_NUM_VARIANCE,
    prune_threshold: float = FVAE_PRUNE,
) -> dict[str, Any]:
    """The FactorVAE disentanglement metric (evaluation accuracy of the majority-vote classifier),
    with the training accuracy and the number of active dimensions, and its protocol."""
    rng = np.random.default_rng(seed)
    codes, _ = sample_codes(source, representation, num_variance_estimate, rng)
    global_var = codes.var(axis=0, ddof=1)  # (D,)
    active = np.sqrt(global_var) >= prune_threshold  # dimensions not collapsed to the prior
    protocol = {
        "metric": "FactorVAE metric (Kim and Mnih 2018)",
        "reference": f"{REFERENCE}/factor_vae_metric.gin",
        "batch_size": batch_size,
        "num_train": num_train,
        "num_eval": num_eval,
        "num_variance_estimate": num_variance_estimate,
        "prune_dims_threshold": prune_threshold,
        "classifier": "majority vote, dimension -> factor",
        "representation": "posterior mean",
        "seed": seed,
    }
    if not active.any():
        return {"score": 0.0, "train_accuracy": 0.0, "num_active_dims": 0, "protocol": protocol}
    train_votes = _fvae_votes(source, representation, num_train, batch_size, rng, global_var, active)
    classifier = np.argmax(train_votes, axis=0)  # (D,) factor predicted for each voting dimension
    cols = np.arange(train_votes.shape[1])
    train_acc = train_votes[classifier, cols].sum() / train_votes.sum()
    eval_votes = _fvae_votes(source, representation, num_eval, batch_size, rng, global_var, active)
    eval_acc = eval_votes[classifier, cols].sum() / eval_votes.sum()
    return {
        "score": float(eval_acc),
        "train_accuracy": float(train_acc),
        "num_active_dims": int(active.sum()),
        "protocol": protocol,
    }


# --------------------------------------------------------------------------------------------
# DCI (dci.py)


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """scipy.stats.entropy(p + 1e-11, base) along `axis` (p normalised there), as dci.py."""
    p = p + 1e-11
    p = p / p.sum(axis=axis, keepdims=True)
    return -(p * np.log(p)).sum(axis=axis) / np.log(base)


def dci_scores(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of an importance matrix (D codes, K factors)."""
    d, k = importance.shape
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    per_code = 1.0 - _entropy(importance, base=k, axis=1)  # (D,)
    per_factor = 1.0 - _entropy(importance, base=d, axis=0)  # (K,)
    disentanglement = float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))
    completeness = float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))
    return disentanglement, completeness


def dci_from_codes(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    seed: int = 0,
) -> dict[str, Any]:
    """DCI from codes (n, D) and factors (n, K): one gradient-boosted classifier per factor with
    sklearn's defaults (100 trees of depth 3), as dci.py's compute_importance_gbt.

    The cost grows with the number of classes, 100 trees per class and factor: dSprites' 113
    classes at 10,000 points took 410 and 775 s on this busy 2-core machine (threads over the
    factors gave no gain there). Random forests (100 trees, min_samples_leaf=5) were measured as
    a faster stand-in and rejected: on the same dSprites-sized codes they gave disentanglement
    0.47 and 0.36 (all features per split) or 0.35 and 0.21 (sqrt) where gradient boosting gives
    0.64 and 0.47 (`python benchmarks/dci_importance_models.py`, results/dci_importance_models.jsonl)."""
    from sklearn.ensemble import GradientBoostingClassifier

    d, k = codes_train.shape[1], factors_train.shape[1]
    importance = np.zeros((d, k))
    train_acc, test_acc = [], []
    for j in range(k):
        clf = GradientBoostingClassifier(random_state=seed).fit(codes_train, factors_train[:, j])
        importance[:, j] = np.abs(clf.feature_importances_)
        train_acc.append(float(np.mean(clf.predict(codes_train) == factors_train[:, j])))
        test_acc.append(float(np.mean(clf.predict(codes_test) == factors_test[:, j])))
    disentanglement, completeness = dci_scores(importance)
    return {
        "score": disentanglement,
        "disentanglement": disentanglement,
        "completeness": completeness,
        "informativeness_train": float(np.mean(train_acc)),
        "informativeness_test": float(np.mean(test_acc)),
        "importance": importance.tolist(),
    }


def compute_dci(
    source: FactorSource,
    representation: Representation,
    seed: int = 0,
    num_train: int = DCI_NUM_TRAIN,
    num_test: int = DCI_NUM_TEST,
) -> dict[str, Any]:
    """DCI disentanglement (the score), completeness and informativeness, with the protocol."""
    rng = np.random.default_rng(seed)
    codes_train, factors_train = sample_codes(source, representation, num_train, rng)
    codes_test, factors_test = sample_codes(source, representation, num_test, rng)
    out = dci_from_codes(codes_train, factors_train, codes_test, factors_test, seed)
    out["protocol"] = {
        "metric": "DCI disentanglement (Eastwood and Williams 2018)",
        "reference": f"{REFERENCE}/dci.gin",
        "num_train": num_train,
        "num_test": num_test,
        "importance_model": "sklearn GradientBoostingClassifier per factor, default settings (disentanglement_lib)",
        "informativeness": "mean classification accuracy over factors",
        "representation": "posterior mean",
        "seed": seed,
    }
    return out


def evaluate_all(source: FactorSource, representation: Representation, seed: int = 0) -> dict[str, dict[str, Any]]:
    """MIG, the FactorVAE metric and DCI at disentanglement_lib's settings, each with its protocol."""
    return {
        "mig": compute_mig(source, representation, seed),
        "factor_vae": compute_factor_vae(source, representation, seed),
        "dci": compute_dci(source, representation, seed),
    }


# --------------------------------------------------------------------------------------------
# Protocols used by the product: the exporter's factor table and `python -m train evaluate`

FACTOR_DATA = ("dsprites", "color-dsprites")  # train.data sources with ground-truth factors
# The exporter measures the factor table on fewer points than MIG's 10,000 to keep export quick
# (a few seconds); the plug-in MI's bias for an unrelated dimension is then about 0.03 for the
# 40-valued orientation ((20 - 1)(40 - 1) / (2 * 3,000) nats over log 40), still below the
# table's threshold (vaegen_infer.factors.DEFAULT_THRESHOLD, 0.1).
EXPORT_MIG_POINTS = 3_000
# `evaluate --quick`: every metric on a fifth to a tenth of its points (about a minute, DCI most of it).
QUICK = {"mig": 2_000, "fvae_train": 1_000, "fvae_eval": 500, "fvae_variance": 2_000, "dci_train": 1_000,
         "dci_test": 500}  # fmt: skip
FULL = {"mig": MIG_NUM_TRAIN, "fvae_train": FVAE_NUM_TRAIN, "fvae_eval": FVAE_NUM_EVAL,
        "fvae_variance": FVAE_NUM_VARIANCE, "dci_train": DCI_NUM_TRAIN, "dci_test": DCI_NUM_TEST}  # fmt: skip


def source_for(data: str, data_seed: int = 0, size: int | None = None) -> DSpritesFactors:
    """The FactorSource of a training data name (dsprites, color-dsprites); ValueError otherwise."""
    if data not in FACTOR_DATA:
        raise ValueError(
            f"data '{data}' has no ground-truth factors; factor metrics need one of {', '.join(FACTOR_DATA)}"
        )
    return DSpritesFactors(color=data == "color-dsprites", seed=data_seed, size=size)


def latent_factors(
    source: FactorSource, representation: Representation, threshold: float, num_train: int = EXPORT_MIG_POINTS,
    seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """The manifest's `latent_factors`: per dimension the factor it shares most information with
    (normalised MI of MIG's estimator on `num_train` points), the factor names, the full (D, K)
    normalised matrix (`mi`, for the heat map) and the protocol."""
    from vaegen_infer.factors import factor_table

    codes, factors = sample_codes(source, representation, num_train, np.random.default_rng(seed))
    mig = mig_of_sample(source, codes, factors, seed)  # the same points and figure as compute_mig(seed)
    names = factor_names(source)
    protocol = {**mig["protocol"], "threshold": threshold, "mig_at_this_protocol": mig["score"]}
    protocol["metric"] = "normalised mutual information of MIG's estimator (Chen et al. 2018), export protocol"
    if num_train != MIG_NUM_TRAIN:
        protocol["note"] = f"{num_train:,} points, not MIG's {MIG_NUM_TRAIN:,}: `python -m train evaluate` measures MIG"
    mi_normalised = np.asarray(mig["mi_normalised"])  # (D, K)
    observed = getattr(source, "observed", None)
    extra = observed(factors) if observed is not None else {}
    if extra:  # more columns for the labels and the heat map; MIG above stays the factors' own
        columns = np.stack(list(extra.values()), axis=1)  # (n, E) ints
        mi_extra = discrete_mutual_info(histogram_discretize(codes, MIG_NUM_BINS), columns)  # (D, E) nats
        mi_normalised = np.concatenate([mi_normalised, mi_extra / discrete_entropy(columns)[None, :]], axis=1)
        names = names + list(extra)
        protocol["observed"] = (
            f"{', '.join(extra)}: observed on the same points, not factors of the metrics (MIG above is over "
            f"{', '.join(factor_names(source))}); colour channels in {COLOUR_LEVELS} equal bins"
        )
    mi = [[round(float(v), 4) for v in row] for row in mi_normalised]  # (D, K + E)
    return {"per_dim": factor_table(mi, names, threshold), "factors": names, "mi": mi, "protocol": protocol}


# The learning curve of a training run on factor data: MIG on a fixed set of fresh points after each
# epoch (train/fit.py records it as `mig_curve` in the history). 2,000 points, as `evaluate --quick`'s
# MIG: a few seconds per epoch; an estimate for the curve's shape, not the table's figure.
CURVE_POINTS = 2_000
CURVE_DATA_SEED = 2_027  # the colour table of Color-dSprites, apart from the training data's (seed 0)


class MigProbe:
    """MIG of a model's posterior means on CURVE_POINTS fixed fresh points, for learning curves.
    Renders the points once (uint8, (n, C, S, S)); `__call__(encode_mu)` encodes them and scores."""

    def __init__(self, data: str, size: int, points: int = CURVE_POINTS, seed: int = 0) -> None:
        source = source_for(data, CURVE_DATA_SEED, size=size)
        rng = np.random.default_rng(seed)
        self.factors = np.asarray(source.sample_factors(points, rng), dtype=np.int64)  # (n, K)
        self.images = np.concatenate([
            np.round(source.render(self.factors[i : i + REPRESENTATION_BATCH]) * 255).astype(np.uint8)
            for i in range(0, points, REPRESENTATION_BATCH)
        ])  # fmt: skip

    def __call__(self, representation: Representation) -> float:
        codes = encode(representation, self.images.astype(np.float32) / 255.0)
        return float(mig_from_codes(codes, self.factors)["score"])


def evaluate_sizes(
    source: FactorSource, representation: Representation, sizes: dict[str, int], seed: int = 0
) -> dict[str, dict[str, Any]]:
    """MIG, the FactorVAE metric and DCI with the numbers of points in `sizes` (FULL, QUICK or
    smaller, keys as FULL), each with its protocol; the (D, K) matrices are left out (the
    manifest's `latent_factors` holds MIG's)."""
    mig = compute_mig(source, representation, seed, num_train=sizes["mig"])
    fvae = compute_factor_vae(
        source, representation, seed, num_train=sizes["fvae_train"], num_eval=sizes["fvae_eval"],
        num_variance_estimate=sizes["fvae_variance"],
    )  # fmt: skip
    dci = compute_dci(source, representation, seed, num_train=sizes["dci_train"], num_test=sizes["dci_test"])
    return {
        "mig": {k: mig[k] for k in ("score", "per_factor", "factors", "protocol")},
        "factor_vae": fvae,
        "dci": {k: v for k, v in dci.items() if k != "importance"},
    }
