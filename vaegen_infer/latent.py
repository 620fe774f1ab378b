"""Latent-space arithmetic in numpy: interpolation paths, traversal grids and attribute directions.

Everything here works on codes (N, D) and knows nothing about sessions or files, so it is easy to
test on its own (tests/test_latent.py checks the known answers and properties).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import InputError, UsageError

METHODS = ("lerp", "slerp")


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Straight line: (1 - t) a + t b for each t; a, b (D,), t (T,) -> (T, D)."""
    t = np.asarray(t, dtype=np.float64)[:, None]
    out = (1.0 - t) * a[None, :].astype(np.float64) + t * b[None, :].astype(np.float64)
    out[t[:, 0] == 0.0] = a  # endpoints exactly, not up to rounding
    out[t[:, 0] == 1.0] = b
    return out.astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (White 2016): follows the great circle between the directions of a
    and b while the norm moves linearly between |a| and |b|, so the path avoids the low-probability
    centre of a Gaussian prior. a, b (D,), t (T,) -> (T, D). Falls back to lerp when a and b
    point the same way or one is zero, where the circle is undefined."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    t = np.asarray(t, dtype=np.float64)
    if na < 1e-12 or nb < 1e-12:
        return lerp(a, b, t)
    ua, ub = a64 / na, b64 / nb
    cos = float(np.clip(ua @ ub, -1.0, 1.0))
    omega = np.arccos(cos)
    if omega < 1e-6:  # same direction: the great circle degenerates to the line
        return lerp(a, b, t)
    if np.pi - omega < 1e-6 and len(ua) > 1:
        # Opposite directions: every great circle through a reaches b; take the one through the
        # axis least aligned with a, so the path keeps the norm instead of crossing zero.
        axis = np.zeros_like(ua)
        axis[np.argmin(np.abs(ua))] = 1.0
        perp = axis - (axis @ ua) * ua
        perp /= np.linalg.norm(perp)
        direction = np.cos(t * np.pi)[:, None] * ua + np.sin(t * np.pi)[:, None] * perp
    elif np.pi - omega < 1e-6:
        return lerp(a, b, t)  # 1-D: there is no circle, only the line
    else:
        # unit direction along the great circle, times a norm moving linearly from |a| to |b|
        so = np.sin(omega)
        direction = (np.sin((1 - t) * omega)[:, None] * ua + np.sin(t * omega)[:, None] * ub) / so
    out = direction * ((1 - t) * na + t * nb)[:, None]
    out[t == 0.0] = a64
    out[t == 1.0] = b64
    return out.astype(np.float32)


def path(anchors: np.ndarray, steps: int, method: str = "slerp") -> np.ndarray:
    """Codes along a path through K anchors (K, D): `steps` points per segment including both
    ends, shared anchors not repeated -> ((K - 1) * (steps - 1) + 1, D)."""
    if method not in METHODS:
        raise UsageError(f"unknown interpolation method '{method}'; choose {' or '.join(METHODS)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise UsageError(f"steps must be at least 2 (both ends included), got {steps!r}")
    anchors = np.asarray(anchors, dtype=np.float32)
    if anchors.ndim != 2 or anchors.shape[0] < 2:
        raise UsageError(f"interpolation needs at least two anchors (K, D), got shape {anchors.shape}")
    fn = slerp if method == "slerp" else lerp
    t = np.linspace(0.0, 1.0, steps)
    pieces = [fn(anchors[i], anchors[i + 1], t if i == 0 else t[1:]) for i in range(len(anchors) - 1)]
    return np.concatenate(pieces, axis=0)


def traversal(
    base: np.ndarray, dims: Sequence[int], values: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """Codes for a traversal grid: row r sets dimension d = dims[r] to mean[d] + values * std[d]
    (values in prior standard deviations about the prior's mean, which a learned mixture prior moves
    off 0), all other dimensions held at `base` (D,). Returns (len(dims), len(values), D)."""
    base = np.asarray(base, dtype=np.float32)
    out = np.repeat(np.repeat(base[None, None, :], len(dims), 0), len(values), 1)
    for r, d in enumerate(dims):
        out[r, :, d] = mean[d] + np.asarray(values, dtype=np.float32) * std[d]
    return out


def parse_dims(text: str, dim: int) -> list[int]:
    """'0-7', '3', '0,2,5' or '0-3,8' -> sorted-as-given list of indices, each < dim."""
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise UsageError(f"bad dimension range '{part}': use forms like 0-7, 3 or 0,2,5") from None
        if a > b:
            raise UsageError(f"bad dimension range '{part}': the start is after the end")
        out.extend(range(a, b + 1))
    if not out:
        raise UsageError("no dimensions given: use forms like 0-7, 3 or 0,2,5")
    bad = [d for d in out if d < 0 or d >= dim]
    if bad:
        raise UsageError(f"dimension {bad[0]} is out of range: this model's latent has dimensions 0-{dim - 1}")
    return list(dict.fromkeys(out))


def parse_amounts(text: str) -> list[float]:
    """'-2,-1,0,1,2' -> floats (finite, at least one)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"bad amounts '{text}': give comma-separated numbers such as -2,-1,0,1,2") from None
    if not values or not all(np.isfinite(values)):
        raise UsageError(f"bad amounts '{text}': give comma-separated finite numbers such as -2,-1,0,1,2")
    return values


def direction(with_codes: np.ndarray, without_codes: np.ndarray) -> np.ndarray:
    """The attribute vector v = mean(z | with) - mean(z | without), (D,). Amount 1 moves a code
    by the whole difference between the two groups' average codes."""
    for name, codes in (("with", with_codes), ("without", without_codes)):
        if codes.ndim != 2 or len(codes) == 0:
            raise InputError(f"no '{name}' examples to compute an attribute direction from")
    v = with_codes.mean(0) - without_codes.mean(0)
    if not np.isfinite(v).all() or float(np.linalg.norm(v)) == 0.0:
        raise InputError("the two groups encode to the same average code: the direction is undefined")
    return v.astype(np.float32)


def regression_direction(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For a measured property a (N,): v = cov(z, a) / std(a), (D,). Amount 1 is the average change
    of the code per one standard deviation of the property across the examples."""
    a = np.asarray(values, dtype=np.float64)
    sd = a.std()
    if sd == 0 or not np.isfinite(sd):
        raise InputError("the property does not vary across the examples: the direction is undefined")
    a = (a - a.mean()) / sd
    z = codes.astype(np.float64) - codes.mean(0)
    return (z * a[:, None]).mean(0).astype(np.float32)
