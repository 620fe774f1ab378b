"""Latent priors, implemented once in numpy.

The runtime samples from these to generate, and `train/` draws the AAE's positive samples from the
very same code, so training and inference cannot drift. Each prior is rebuilt from the `prior`
entry of a manifest (`name` + `params`) through `make_prior`, which lists the valid names on error.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from .errors import BundleError, UsageError
from .likelihoods import LOG_2PI as _LOG_2PI
from .manifest import PriorSpec


def _logsumexp(a: np.ndarray) -> np.ndarray:
    """log sum_k exp(a[:, k]), (M, K) -> (M,), without overflow (scipy is not a runtime dependency)."""
    top = a.max(1, keepdims=True)
    return top[:, 0] + np.log(np.exp(a - top).sum(1))


class Prior:
    """Base class. `n_regions` is the number of per-label regions (0 when sampling by label is impossible)."""

    name: ClassVar[str]
    n_regions: int = 0
    has_density: bool = False  # True where log_density has a closed form

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def params(self) -> dict[str, Any]:
        raise NotImplementedError

    def region_of(self, z: np.ndarray) -> np.ndarray:
        """The per-label region each code (N, D) falls in, (N,); only for priors with regions."""
        raise UsageError(f"the '{self.name}' prior has no per-label regions")

    def spec(self) -> PriorSpec:
        return PriorSpec(self.name, self.params())

    def describe(self) -> str:
        """One line for people: the name and its parameters."""
        return f"{self.name} {self.params()}"

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

    def mean(self) -> np.ndarray:
        """Mean code, (D,): where traversals without an image hold the other dimensions."""
        return np.zeros(self.dim, dtype=np.float32)

    def log_density(self, z: np.ndarray) -> np.ndarray:
        """log p(z) in nats for codes (..., D) -> (...), float64; only priors with a closed-form
        density have one (the VAE's importance-sampled likelihood needs it)."""
        raise UsageError(f"the '{self.name}' prior has no closed-form density")


class GaussianPrior(Prior):
    """N(0, scale^2 I): the VAE's prior."""

    name = "gaussian"
    has_density = True

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

    def log_density(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return -0.5 * (_LOG_2PI + 2 * np.log(self.scale) + (z / self.scale) ** 2).sum(-1)


class GaussianMixturePrior(Prior):
    """A weighted mixture of K diagonal Gaussians given in full: `weights` (K,), `means` (K, D) and
    `logvars` (K, D). A VAE trained with a VampPrior (Tomczak & Welling 2018, a mixture of the
    encoder's posteriors at K learned pseudo-inputs) exports its prior as this, so the runtime needs
    neither the pseudo-inputs nor the encoder to sample. Without parameters: one N(0, I) component.
    Components are not tied to labels, so there is no sampling by label."""

    name = "gaussian-mixture"
    has_density = True

    def __init__(
        self,
        dim: int,
        weights: list[float] | None = None,
        means: list[list[float]] | None = None,
        logvars: list[list[float]] | None = None,
    ) -> None:
        super().__init__(dim)
        w = np.asarray([1.0] if weights is None else weights, dtype=np.float64)
        k = len(w)
        mu = np.zeros((k, dim)) if means is None else np.asarray(means, dtype=np.float64)
        lv = np.zeros((k, dim)) if logvars is None else np.asarray(logvars, dtype=np.float64)
        if w.ndim != 1 or k == 0 or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise BundleError("gaussian-mixture prior: 'weights' must be a non-empty list of non-negative numbers")
        for key, arr in (("means", mu), ("logvars", lv)):
            if arr.shape != (k, dim) or not np.isfinite(arr).all():
                raise BundleError(
                    f"gaussian-mixture prior: '{key}' must be {k} rows of {dim} finite numbers, got shape {arr.shape}"
                )
        self.weights, self.means, self.logvars = w / w.sum(), mu, lv
        self._std = np.exp(0.5 * lv)  # (K, D)
        # The component CDF, built once as Generator.choice(p=...) builds it on every call (with its
        # checks of p: ~10 us of a 40 us batch-1 draw); searchsorted on it picks the same components.
        cdf = self.weights.cumsum()
        self._cdf = cdf / cdf[-1]  # (K,)

    def params(self) -> dict[str, Any]:
        return {
            "weights": [float(v) for v in self.weights],
            "means": self.means.tolist(),
            "logvars": self.logvars.tolist(),
        }

    def describe(self) -> str:
        # the parameters are K x D numbers: say what they amount to instead
        return f"{self.name}, {len(self.weights)} diagonal Gaussian components, std per dimension " + (
            f"{self.std().min():.2f}-{self.std().max():.2f}"
        )

    def _draw(self, n: int, rng: np.random.Generator, labels: np.ndarray | None) -> np.ndarray:
        # Components and noise come from two child streams, each read row by row, so the first m of
        # n draws are the m draws: sample(64) begins sample(1000), as it does for a Gaussian prior.
        pick, noise = (np.random.default_rng(s) for s in rng.integers(0, 2**63, size=2))
        comp = self._cdf.searchsorted(pick.random(n), side="right")  # (n,) as pick.choice(K, n, p=weights)
        return self.means[comp] + self._std[comp] * noise.standard_normal((n, self.dim))

    def mean(self) -> np.ndarray:
        return (self.weights @ self.means).astype(np.float32)

    def std(self) -> np.ndarray:
        # law of total variance: E[Var(z | k)] + Var(E[z | k])
        m = self.weights @ self.means
        second = self.weights @ (np.exp(self.logvars) + self.means**2)
        return np.sqrt(np.maximum(second - m**2, 0.0)).astype(np.float32)

    def log_density(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        flat = z.reshape(-1, self.dim)  # (M, D)
        inv = np.exp(-self.logvars)  # (K, D)
        # |z - m_k|^2 / var_k expanded into three products, so no (M, K, D) array is formed
        quad = (flat**2) @ inv.T - 2 * flat @ (self.means * inv).T + ((self.means**2) * inv).sum(1)  # (M, K)
        log_comp = -0.5 * (self.dim * _LOG_2PI + self.logvars.sum(1) + quad) + np.log(self.weights)
        out = _logsumexp(log_comp)
        return out.reshape(z.shape[:-1])


class MixturePrior(Prior):
    """K Gaussians, one per class. In 2-D: the AAE paper's arrangement, K elongated Gaussians rotated
    around a circle (component k: centre at `radius` along angle 2 pi k / K, std `radial_std` along
    the radius and `tangential_std` across it). For D > 2 the same pattern repeats on each pair of
    dimensions (2i, 2i + 1), so class k owns one petal in every plane; an odd last dimension is
    N(0, radial_std^2). Components have equal weight."""

    name = "mog"
    has_density = True

    def __init__(
        self, dim: int, k: int = 10, radius: float = 4.0, radial_std: float = 1.0, tangential_std: float = 0.25
    ) -> None:
        super().__init__(dim)
        if dim < 2:
            raise BundleError(f"mog prior needs a latent of at least 2 dimensions, got {dim}")
        if k < 2 or radius <= 0 or radial_std <= 0 or tangential_std <= 0:
            raise BundleError("mog prior: need k >= 2 and positive radius, radial_std, tangential_std")
        self.k, self.radius = int(k), float(radius)
        self.radial_std, self.tangential_std = float(radial_std), float(tangential_std)
        self.n_regions = self.k
        angles = 2 * np.pi * np.arange(self.k) / self.k
        self._cos, self._sin = np.cos(angles), np.sin(angles)  # (K,)

    def params(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "radius": self.radius,
            "radial_std": self.radial_std,
            "tangential_std": self.tangential_std,
        }

    def _draw(self, n: int, rng: np.random.Generator, labels: np.ndarray | None) -> np.ndarray:
        comp = rng.integers(0, self.k, n) if labels is None else labels
        pairs = self.dim // 2
        # (n, pairs) radial and tangential offsets, rotated into each component's direction
        r = self.radius + rng.standard_normal((n, pairs)) * self.radial_std
        t = rng.standard_normal((n, pairs)) * self.tangential_std
        c, s = self._cos[comp][:, None], self._sin[comp][:, None]
        z = np.empty((n, self.dim))
        z[:, 0 : 2 * pairs : 2] = r * c - t * s
        z[:, 1 : 2 * pairs : 2] = r * s + t * c
        if self.dim % 2:
            z[:, -1] = rng.standard_normal(n) * self.radial_std
        return z

    def component_log_density(self, z: Any) -> Any:
        """log N(z | component k) for each code and component, (N, K), up to a shared constant.

        Also takes a torch tensor and returns one, differentiable: the conditional AAE's region loss
        (train/aae.py) uses this formula rather than a copy of it. This module never imports torch."""
        if hasattr(z, "new_tensor"):  # a torch tensor: keep its type, device and autograd graph
            cos, sin = z.new_tensor(self._cos), z.new_tensor(self._sin)
        else:
            z = np.asarray(z, dtype=np.float64)
            cos, sin = self._cos, self._sin
        pairs = self.dim // 2
        x, y = z[:, 0 : 2 * pairs : 2, None], z[:, 1 : 2 * pairs : 2, None]  # (N, pairs, 1)
        radial = x * cos + y * sin - self.radius  # (N, pairs, K)
        tangential = -x * sin + y * cos
        return -0.5 * ((radial / self.radial_std) ** 2 + (tangential / self.tangential_std) ** 2).sum(1)

    def log_density(self, z: np.ndarray) -> np.ndarray:
        """log p(z) of the whole mixture (every class, equal weights), nats: (..., D) -> (...).

        Each pair of dimensions is a 2-D Gaussian in the component's rotated frame, whose normaliser
        is 2 pi radial_std tangential_std (a rotation keeps volume); the odd last dimension is
        N(0, radial_std^2) for every component."""
        z = np.asarray(z, dtype=np.float64)
        flat = z.reshape(-1, self.dim)  # (M, D)
        comp = self.component_log_density(flat)  # (M, K), without the normalisers
        out = _logsumexp(comp) - math.log(self.k)  # log (1/K) sum_k
        out -= (self.dim // 2) * math.log(2 * math.pi * self.radial_std * self.tangential_std)
        if self.dim % 2:
            out -= 0.5 * (_LOG_2PI + 2 * math.log(self.radial_std) + (flat[:, -1] / self.radial_std) ** 2)
        return out.reshape(z.shape[:-1])

    def region_of(self, z: np.ndarray) -> np.ndarray:
        """The most likely component of each code, (N,)."""
        return np.argmax(self.component_log_density(z), axis=1)


class SwissRollPrior(Prior):
    """2-D swiss roll: u ~ U(0, 1), radius = `scale` sqrt(u), angle = `turns` * 2 pi sqrt(u); class k
    owns the arc segment u in [k / K, (k + 1) / K). `noise` adds isotropic Gaussian jitter.

    Its density (noise > 0) is the jitter's Gaussian averaged along the roll,
    p(z) = int_0^1 N(z; c(u), noise^2 I) du = int_0^1 2 t N(z; c(t^2), noise^2 I) dt (t = sqrt(u),
    smooth in t), summed at DENSITY_POINTS midpoints in t: at the default parameters neighbouring
    points lie at most 0.0062 apart along the roll, an eighth of the 0.05 jitter. Against adaptive
    quadrature it agrees to 4e-6 nats at the roll's ends (the midpoint sum's boundary error) and far
    closer elsewhere."""

    name = "swissroll"
    DENSITY_POINTS = 8192

    def __init__(self, dim: int, k: int = 10, scale: float = 4.0, turns: float = 2.0, noise: float = 0.05) -> None:
        super().__init__(dim)
        if dim != 2:
            raise BundleError(f"swissroll prior is 2-D, the latent has {dim} dimensions")
        if k < 1 or scale <= 0 or turns <= 0 or noise < 0:
            raise BundleError("swissroll prior: need k >= 1, scale > 0, turns > 0, noise >= 0")
        self.k, self.scale, self.turns, self.noise = int(k), float(scale), float(turns), float(noise)
        self.n_regions = self.k
        self.has_density = self.noise > 0  # without jitter the roll is a curve: no density in the plane
        self._curve_u = (np.arange(20_000) + 0.5) / 20_000
        self._curve = self._point(self._curve_u)  # (20000, 2) dense points for region lookups
        t = (np.arange(self.DENSITY_POINTS) + 0.5) / self.DENSITY_POINTS  # midpoints in t = sqrt(u)
        self._density_points = self._point(t**2)  # (Q, 2)
        self._density_sq = (self._density_points**2).sum(1)  # (Q,) |c_q|^2, for |z - c_q|^2 per block
        self._density_log_weights = np.log(2 * t / self.DENSITY_POINTS)  # (Q,): du = 2 t dt

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "scale": self.scale, "turns": self.turns, "noise": self.noise}

    def _point(self, u: np.ndarray) -> np.ndarray:
        root = np.sqrt(u)
        angle = self.turns * 2 * np.pi * root
        return np.stack([self.scale * root * np.cos(angle), self.scale * root * np.sin(angle)], axis=-1)

    def _draw(self, n: int, rng: np.random.Generator, labels: np.ndarray | None) -> np.ndarray:
        u = rng.random(n)
        if labels is not None:
            u = (labels + u) / self.k
        return self._point(u) + rng.standard_normal((n, 2)) * self.noise

    def log_density(self, z: np.ndarray) -> np.ndarray:
        if not self.has_density:
            raise UsageError("the 'swissroll' prior with noise 0 has no density in the plane (it is a curve)")
        z = np.asarray(z, dtype=np.float64)
        flat = z.reshape(-1, 2)  # (M, 2)
        var = self.noise**2
        out = np.empty(len(flat))
        for start in range(0, len(flat), 256):  # (256, Q) blocks bound the memory
            part = flat[start : start + 256]
            sq = (part**2).sum(1)[:, None] - 2 * part @ self._density_points.T + self._density_sq[None, :]  # (m, Q)
            terms = self._density_log_weights[None, :] - 0.5 * sq / var
            out[start : start + 256] = _logsumexp(terms) - math.log(2 * math.pi * var)
        return out.reshape(z.shape[:-1])

    def region_of(self, z: np.ndarray) -> np.ndarray:
        """The class whose arc segment holds the nearest point of the roll, (N,)."""
        z = np.asarray(z, dtype=np.float64)
        out = np.empty(len(z), dtype=np.int64)
        for start in range(0, len(z), 512):  # (512, 20000) distance blocks bound the memory
            part = z[start : start + 512]
            d = ((part[:, None, :] - self._curve[None, :, :]) ** 2).sum(-1)
            out[start : start + 512] = np.minimum((self._curve_u[d.argmin(1)] * self.k).astype(np.int64), self.k - 1)
        return out


class UniformPrior(Prior):
    """U(-half_width, half_width)^D. No per-class regions."""

    name = "uniform"

    def __init__(self, dim: int, half_width: float = 2.0) -> None:
        super().__init__(dim)
        if not half_width > 0:
            raise BundleError(f"uniform prior: 'half_width' must be > 0, got {half_width}")
        self.half_width = float(half_width)

    def params(self) -> dict[str, Any]:
        return {"half_width": self.half_width}

    def _draw(self, n: int, rng: np.random.Generator, labels: np.ndarray | None) -> np.ndarray:
        return rng.uniform(-self.half_width, self.half_width, (n, self.dim))

    def std(self) -> np.ndarray:
        return np.full(self.dim, self.half_width / np.sqrt(3.0), dtype=np.float32)

    def ppf(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        if np.any((q <= 0) | (q >= 1)):
            raise UsageError("quantiles must lie strictly between 0 and 1")
        col = -self.half_width + 2 * self.half_width * q
        return np.repeat(col[:, None], self.dim, axis=1).astype(np.float32)


# The registry: one literal dict, no registration by import side effect.
PRIORS: dict[str, type[Prior]] = {
    "gaussian": GaussianPrior,
    "gaussian-mixture": GaussianMixturePrior,
    "mog": MixturePrior,
    "swissroll": SwissRollPrior,
    "uniform": UniformPrior,
}


def make_prior(spec: PriorSpec, dim: int) -> Prior:
    """Build the prior a manifest names; unknown names or parameters fail with what is valid."""
    cls = PRIORS.get(spec.name)
    if cls is None:
        raise BundleError(f"unknown prior '{spec.name}'; this vaegen-infer knows: {', '.join(PRIORS)}")
    try:
        return cls(dim, **spec.params)
    except (TypeError, ValueError) as exc:  # a missing/unknown parameter, or one that is not a number
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
