"""Is orientation in a dSprites bundle's code, and can a straight line follow it?

    python benchmarks/orientation_probe.py [--bundle exported/color-dsprites] [--images 4000]

Two questions, each per shape, on freshly generated images (fit: factor seed 0; held out: factor
seed 2026, colour seed 7):
- does the model reconstruct the angle? The angle measured from pixels (train/dsprites.py's
  `orientation`, modulo the shape's symmetry) of each held-out image against its reconstruction's:
  the median absolute difference, beside the same figure for reconstructions paired at random
  (what "not reconstructed" reads);
- is the angle linearly readable from the code? Least squares from the posterior mean mu (D,)
  (with a constant) to the cosine and sine of k * angle (k = the shape's fold: square 4,
  ellipse 2, heart 1, so every pose of a symmetric shape has one value), fitted on the fit images
  and scored on the held-out ones (R^2); the same with every product mu_i mu_j added (quadratic).
  A linear `shift` direction can only move what a line through the code follows; R^2 near 0
  means none does;
- where to fit the bundle's `orientation_cos` and `orientation_sin` directions: fitted
  (`regression_direction`, as the exporter does) on the ellipses alone, or on every shape at its
  own fold, each decoded at amount +1 from the held-out ellipses: the share whose measured cosine
  (sine) of twice the angle grew;
- other ways to fit them (--variants), each fitted on the fit ellipses and scored the same way on
  1,000 other ellipses (factor seed 99, colour seed 5): the regression on the reconstructions'
  measured angle instead of the true one; the gradient of a least-squares read-out of the angle
  from mu, linear, or quadratic averaged over the fit codes (each scaled to the regression's
  length); the regression made orthogonal to the code's local tangents at the two ends of the
  value (the regression of mu on the other coordinate among fit ellipses beyond +-0.8), rescaled
  to the regression's component along itself; the regression doubled (which breaks the amount
  convention, amount 1 = one standard deviation); and a direction chosen through the decoder, as
  `python -m train export --turn-orientation` does: a (1+1) evolution strategy (seed 0,
  --search-steps steps) on 600 of the fit ellipses that keeps the regression's length and
  maximises the mean of tanh(change / 0.02) of the measured value at amount +1, a smooth stand-in
  for the share that grew, fitted on training-seed images and scored on the others.

Writes benchmarks/results/orientation_probe.json and .md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import vaegen_infer as vi
from benchmarks import write_results
from train import dsprites
from train.analysis import TURN_IMAGES, turn_through_decoder
from vaegen_infer.latent import regression_direction

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ANGLES = dsprites.ORIENTATIONS  # the factor's 40 values, radians


def shape_images(shape: int, n: int, seed: int, colour_seed: int, color: bool) -> tuple[np.ndarray, np.ndarray]:
    """n images of one shape (n, C, 64, 64) float32 in [0, 1] and their true angles (n,) radians."""
    idx = dsprites.sample_indices(4 * n, seed)
    idx = idx[np.unravel_index(idx, dsprites.GRID)[0] == shape][:n]
    x = dsprites.render(idx, color=color, seed=colour_seed).astype(np.float32) / 255.0
    return x, ANGLES[np.unravel_index(idx, dsprites.GRID)[2]]


def held_out_r2(fit_x: np.ndarray, fit_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """R^2 on the test rows of a least-squares fit (with a constant) on the fit rows."""
    a = np.c_[np.ones(len(fit_x)), fit_x]
    w, *_ = np.linalg.lstsq(a, fit_y, rcond=None)
    pred = np.c_[np.ones(len(test_x)), test_x] @ w
    return float(1.0 - np.mean((pred - test_y) ** 2) / np.var(test_y))


def quadratic(mu: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D + D(D+1)/2): mu and every product mu_i mu_j, i <= j."""
    i, j = np.triu_indices(mu.shape[1])
    return np.c_[mu, mu[:, i] * mu[:, j]]


def where_to_fit(g: vi.Model, fit: dict[str, tuple[np.ndarray, np.ndarray]], mu_e: np.ndarray,
                 before: np.ndarray) -> dict[str, dict[str, float]]:  # fmt: skip
    """Share of held-out ellipses whose measured cos (sin) of 2 x angle grew at amount +1, for the
    direction fitted on ellipses alone and on every shape at its own fold. `fit`: shape -> (codes
    (n, D), angles (n,)) of the fit images; `mu_e` (m, D): the held-out ellipses' codes; `before`
    (m,): their reconstructions' measured angles (amount 0)."""
    out: dict[str, dict[str, float]] = {}
    for fn_name, fn in (("cos", np.cos), ("sin", np.sin)):
        column = {name: fn(dsprites.FOLD[name] * angle) for name, (_, angle) in fit.items()}
        directions = {
            "ellipses": regression_direction(fit["ellipse"][0], column["ellipse"]),
            "every shape": regression_direction(np.concatenate([mu for mu, _ in fit.values()]),
                                                np.concatenate(list(column.values()))),
        }  # fmt: skip
        out[f"orientation_{fn_name}"] = {}
        for where, v in directions.items():
            after = dsprites.orientation(g.decode(mu_e + v[None, :]), "ellipse")
            grew = fn(2 * after) > fn(2 * before)
            out[f"orientation_{fn_name}"][where] = round(float(grew.mean()), 4)
    return out


def probe(g: vi.Model, n: int) -> dict[str, Any]:
    color = g.manifest.image.channels == 3
    out: dict[str, Any] = {}
    fit: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # shape -> (codes (n, D), angles (n,))
    for s, name in enumerate(dsprites.SHAPES):
        fold = dsprites.FOLD[name]
        period = 2.0 * math.pi / fold
        x, angle = shape_images(s, n, 0, 0, color)
        xe, angle_e = shape_images(s, n // 4, 2026, 7, color)
        mu, _ = g.encode(x)
        mu_e, _ = g.encode(xe)
        fit[name] = (mu, angle)
        seen = dsprites.orientation(xe, name)
        rec = dsprites.orientation(g.decode(mu_e), name)
        if name == "ellipse":
            ellipses = (mu_e, rec)  # for where_to_fit: held-out codes and their amount-0 angles
        err = np.abs(dsprites.angle_change(seen, rec, period))
        shuffled = np.abs(dsprites.angle_change(seen, np.random.default_rng(0).permutation(rec), period))
        r2: dict[str, float] = {}
        for fn_name, fn in (("cos", np.cos), ("sin", np.sin)):
            y, y_e = fn(fold * angle), fn(fold * angle_e)
            r2[f"{fn_name}_linear"] = round(held_out_r2(mu, y, mu_e, y_e), 3)
            r2[f"{fn_name}_quadratic"] = round(held_out_r2(quadratic(mu), y, quadratic(mu_e), y_e), 3)
        out[name] = {
            "fit_images": len(x), "held_out_images": len(xe), "fold": fold,
            "reconstructed_angle_median_error_deg": round(math.degrees(float(np.median(err))), 2),
            "random_pairing_median_error_deg": round(math.degrees(float(np.median(shuffled))), 2),
            "held_out_r2": r2,
        }  # fmt: skip
    return {"shapes": out, "fitted_on": where_to_fit(g, fit, *ellipses)}


def decoder_search(g: vi.Model, mu: np.ndarray, fn: Any, start: np.ndarray, steps: int) -> np.ndarray:
    """A direction (D,) of `start`'s length whose decodes raise fn(2 x angle) of the fit codes `mu`
    (n, D) most often: the exporter's `--turn-orientation` search (train.analysis), through the
    bundle's decoder graph."""
    return turn_through_decoder(g.decode, mu, lambda img: fn(2 * dsprites.orientation(img, "ellipse")), start, steps)


def direction_variants(g: vi.Model, n: int, search_steps: int) -> dict[str, dict[str, float]]:
    """Share of 1,000 held-out ellipses (seeds 99 / 5) whose measured cos (sin) of 2 x angle grew
    at amount +1, for each way of fitting the direction on n fit ellipses (seed 0)."""
    ellipse = dsprites.SHAPES.index("ellipse")
    x, angle = shape_images(ellipse, n, 0, 0, g.manifest.image.channels == 3)
    mu, _ = g.encode(x)  # (n, D)
    seen = dsprites.orientation(g.decode(mu), "ellipse")  # the reconstructions' measured angles
    xv, _ = shape_images(ellipse, 1000, 99, 5, g.manifest.image.channels == 3)
    mv, _ = g.encode(xv)
    before = dsprites.orientation(g.decode(mv), "ellipse")
    dim = mu.shape[1]
    i, j = np.triu_indices(dim)

    def readout(features: np.ndarray, y: np.ndarray) -> np.ndarray:
        a = np.c_[np.ones(len(features)), features]
        return np.linalg.lstsq(a, y, rcond=None)[0][1:]

    def quadratic_gradient(w: np.ndarray) -> np.ndarray:  # mean over the fit codes of d(read-out)/d mu
        q = np.zeros((dim, dim))
        q[i, j] = w[dim:]
        return w[:dim] + (mu @ (q + q.T)).mean(0)

    out: dict[str, dict[str, float]] = {}
    for fn_name, fn, other in (("cos", np.cos, np.sin), ("sin", np.sin, np.cos)):
        y, y_other = fn(2 * angle), other(2 * angle)
        v = regression_direction(mu, y)
        norm = float(np.linalg.norm(v))
        top, bottom = y > 0.8, y < -0.8
        tangents = [regression_direction(mu[end], y_other[end]) for end in (top, bottom)]  # the loop's, at each end
        basis, _ = np.linalg.qr(np.stack(tangents, 1))  # (D, 2)
        w = v - basis @ (basis.T @ v)
        variants = {
            "regression on the true angle (the exporter's default)": v,
            "regression on the reconstructions' measured angle": regression_direction(mu, fn(2 * seen)),
            "linear read-out gradient": readout(mu, y),
            "quadratic read-out, mean gradient": quadratic_gradient(readout(quadratic(mu), y)),
            "orthogonal to the tangents at the ends": w * (v @ v) / (w @ v),
            "regression x 2 (breaks the amount convention)": 2 * v,
        }
        if search_steps:
            name = f"chosen through the decoder ({search_steps} search steps on {TURN_IMAGES} fit ellipses; shipped)"
            variants[name] = decoder_search(g, mu[:TURN_IMAGES], fn, v, search_steps)
        for name, d in variants.items():
            if "gradient" in name:
                d = d * norm / np.linalg.norm(d)
            after = dsprites.orientation(g.decode(mv + d[None, :].astype(np.float32)), "ellipse")
            grew = fn(2 * after) > fn(2 * before)  # (1000,) bool
            out.setdefault(name, {})[f"orientation_{fn_name}"] = round(float(grew.mean()), 4)
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Command: `{report['command']}`, {report['started_utc']} UTC. Bundle `{report['bundle']}`.",
        "",
        "| shape (fold) | images fit / held out | reconstructed angle: median error | at random | "
        "R^2 cos, sin (linear) | R^2 cos, sin (quadratic) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["probe"]["shapes"].items():
        q = r["held_out_r2"]
        lines.append(
            f"| {name} ({r['fold']}) | {r['fit_images']:,} / {r['held_out_images']:,} | "
            f"{r['reconstructed_angle_median_error_deg']:.1f} deg | {r['random_pairing_median_error_deg']:.1f} deg | "
            f"{q['cos_linear']:.3f}, {q['sin_linear']:.3f} | {q['cos_quadratic']:.3f}, {q['sin_quadratic']:.3f} |"
        )
    lines += ["", "R^2 of the cosine and sine of fold x angle from the code mu, fitted on the fit images, scored on "
              "the held-out ones; angles measured from pixels modulo the shape's symmetry.", "",
              "Held-out ellipses moved the right way at amount +1, by where the direction was fitted:", "",
              "| direction | fitted on ellipses | fitted on every shape (own fold) |", "|---|---:|---:|"]  # fmt: skip
    for name, r in report["probe"]["fitted_on"].items():
        lines.append(f"| {name} | {r['ellipses']:.1%} | {r['every shape']:.1%} |")
    if "variants" in report:
        lines += ["", "Other ways to fit the directions (fit: ellipses of seed 0; scored on 1,000 ellipses of seeds "
                  "99 / 5), moved the right way at amount +1:", "",
                  "| fitted as | orientation_cos | orientation_sin |", "|---|---:|---:|"]  # fmt: skip
        for name, r in report["variants"].items():
            lines.append(f"| {name} | {r['orientation_cos']:.1%} | {r['orientation_sin']:.1%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="color-dsprites", help="Bundle name or path (a dSprites model).")
    ap.add_argument("--images", type=int, default=4000, help="Fit images per shape (a quarter as many held out).")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-variants", dest="variants", action="store_false", help="Skip the other ways to fit.")
    ap.add_argument("--search-steps", type=int, default=300,
                    help="Steps of the decoder-side direction search among the variants (0 skips it).")
    args = ap.parse_args()
    if args.images < 100:
        sys.exit("--images must be at least 100: the quadratic fit has 153 columns for a 16-D code")
    g = vi.load(args.bundle)
    report = {
        "command": " ".join(["python benchmarks/orientation_probe.py", *sys.argv[1:]]),
        "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "bundle": args.bundle,
        "probe": probe(g, args.images),
    }
    if args.variants:
        report["variants"] = direction_variants(g, args.images, args.search_steps)
    write_results(args.out, "orientation_probe", report, markdown(report))


if __name__ == "__main__":
    main()
