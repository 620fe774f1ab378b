"""Latent priors, implemented once in numpy.

The runtime samples from these to generate, and `train/` draws the AAE's positive samples from the
very same code, so training and inference cannot drift. Each prior is rebuilt from the `prior`
entry of a manifest (`name` + `params`) through `make_prior`, which lists the valid names on error.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .errors import BundleError, UsageError
from .manifest import PriorSpec


class Prior:
    """Base class. `n_regions` is the number of per-label regions (0 when sampling by label is impossible)."""

    name: ClassVar[str]
    n_regions: int = 0

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def params(self) -> dict[str, Any]:
        raise NotImplementedError

    def spec(self) -> PriorSpec:
        return PriorSpec(self.name, self.params())

    def _draw(self, n: int, rng: np.random.Generator, labels: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator, labels: np.ndarray | None = None) -> np.ndarray:
        """Draw `n` codes, (n, D) float32; `labels` (n,) ints pick each code's region."""
        if labels is not None:
            if self.n_regions == 0:
                raise UsageError(f"the '{self.name}' prior has no per-label regions, so it cannot sample by label")
            labels = np.asarray(labels)
            if labels.shape != (n,):
                raise UsageError(f"labels must have shape ({n},), got {labels.shape}")
            if labels.size and (labels.min() < 0 or labels.max() >= self.n_regions):
                raise UsageError(f"labels must lie in 0..{self.n_regions - 1}")
        return self._draw(n, rng, labels).astype(np.float32, copy=False)

    def ppf(self, q: np.ndarray) -> np.ndarray:
        """Marginal quantiles per dimension, (len(q), D), for manifold grids; q in (0, 1).

        Default: empirical quantiles of 100,000 draws with a fixed seed (exact ones where known)."""
        q = np.asarray(q, dtype=np.float64)
        if np.any((q <= 0) | (q >= 1)):
            raise UsageError("quantiles must lie strictly between 0 and 1")
        draws = self.sample(100_000, np.random.default_rng(0))
        return np.quantile(draws, q, axis=0).astype(np.float32)

    def std(self) -> np.ndarray:
        """Marginal standard deviation per dimension, (D,): the unit of latent traversals."""
        return self.sample(100_000, np.random.default_rng(0)).std(0).astype(np.float32)


class GaussianPrior(Prior):
    """N(0, scale^2 I): the VAE's prior."""

    name = "gaussian"

    def __init__(self, dim: int, scale: float = 1.0) -> None:
        super().__init__(dim)
        if not scale > 0:
            raise BundleError(f"gaussian prior: 'scale' must be > 0, got {scale}")
        self.scale = float(scale)

    def params(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def _draw(self, n: int, rng: np.random.Generator, labels: np.ndarray | None) -> np.ndarray:
        return rng.standard_normal((n, self.dim), dtype=np.float32) * np.float32(self.scale)

    def std(self) -> np.ndarray:
        return np.full(self.dim, self.scale, dtype=np.float32)

    def ppf(self, q: np.ndarray) -> np.ndarray:
        col = self.scale * _normal_ppf(np.asarray(q, dtype=np.float64))  # (len(q),)
        return np.repeat(col[:, None], self.dim, axis=1).astype(np.float32)


# The registry: one literal dict, no registration by import side effect.
PRIORS: dict[str, type[Prior]] = {
    "gaussian": GaussianPrior,
}


def make_prior(spec: PriorSpec, dim: int) -> Prior:
    """Build the prior a manifest names; unknown names or parameters fail with what is valid."""
    cls = PRIORS.get(spec.name)
    if cls is None:
        raise BundleError(f"unknown prior '{spec.name}'; this vaegen-infer knows: {', '.join(PRIORS)}")
    try:
        return cls(dim, **spec.params)
    except TypeError as exc:
        raise BundleError(f"bad parameters {sorted(spec.params)} for prior '{spec.name}': {exc}") from exc


def _normal_ppf(q: np.ndarray) -> np.ndarray:
    """Inverse standard-normal CDF (Acklam's rational approximation, |error| < 1.2e-9), no scipy."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    q = np.asarray(q, dtype=np.float64)
    if np.any((q <= 0) | (q >= 1)):
        raise UsageError("quantiles must lie strictly between 0 and 1")
    out = np.empty_like(q)
    lo, hi = q < 0.02425, q > 1 - 0.02425
    mid = ~(lo | hi)
    r = q[mid] - 0.5
    s = r * r
    out[mid] = (
        (((((a[0] * s + a[1]) * s + a[2]) * s + a[3]) * s + a[4]) * s + a[5])
        * r
        / (((((b[0] * s + b[1]) * s + b[2]) * s + b[3]) * s + b[4]) * s + 1)
    )
    for mask, sign in ((lo, 1.0), (hi, -1.0)):
        t = np.sqrt(-2 * np.log(np.where(sign > 0, q[mask], 1 - q[mask])))
        out[mask] = (
            sign
            * (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5])
            / ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1)
        )
    return out
