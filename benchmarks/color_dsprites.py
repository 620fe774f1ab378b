"""How well the shipped `color-dsprites` bundle works, measured from pixels on fresh images.

    python benchmarks/color_dsprites.py [--bundle color-dsprites] [--write] [--pictures]

On 2,000 Color-dSprites images generated with seeds not used in training (factor indices drawn
with --seed, colours with --colour-seed; training used the grid split of seed 0 and colour seed 0):

- attribute shifts: for each continuous factor direction (x, y, scale, orientation_cos,
  orientation_sin, red, green, blue) every image is reconstructed at amount 0 and at amount +1,
  and the property measured from pixels (centroid, area, the cosine and sine of twice an
  ellipse's angle, mean colour of the shape; see train/dsprites.py) is compared: the share of
  images where it moved the right way, and how far the other properties moved. orientation_cos
  and orientation_sin are measured on ellipses only, the shape their directions were fitted on
  (dsprites.FIT_ON_SHAPE).
- reconstruction: mean squared error per pixel (values in [0, 1]) and the test bound in bits per
  dimension (`Model.score`, discretised Gaussian, k importance samples, on the first --score-images);
- samples: 1,000 samples (seed 0), drawn as `vaegen-infer sample` draws them (from the bundle's
  fitted sampler where it has one) and from the prior alone (`from_prior`): the share that show one
  clean shape (one connected component, area within the data set's range); and, for the clean ones,
  how their measured x, y, area and colour are spread against the fresh images' (the 1-D
  Wasserstein distance in units of the fresh images' standard deviation; between two halves of the
  fresh images for scale) and which shape their nearest fresh image (pixel distance) shows.

Writes benchmarks/results/color_dsprites.json and .md; --write also puts the figures into the
bundle's model.json (`metrics`), --pictures writes the README's pictures into docs/img/.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import vaegen_infer as vi
from train import dsprites
from vaegen_infer import grids
from vaegen_infer.io import save_json, write_bytes
from vaegen_infer.likelihoods import bits_per_dim

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONTINUOUS = ("x", "y", "scale", "orientation_cos", "orientation_sin", "red", "green", "blue")
GOAL_SHARE = 0.95  # the goal: each shift moves its property the right way for 95% of images
GOAL_CENTROID_PX = 2.0  # and a colour shift moves the centroid by less than 2 pixels
# Properties with a ceiling: a cosine or sine already near 1 cannot grow by much, whatever the
# model does, so these also get the share among images at least ROOM below the ceiling.
CEILING = {"orientation_cos": 1.0, "orientation_sin": 1.0}
ROOM = 0.1


def fresh_images(n: int, seed: int, colour_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n Color-dSprites images (n, 3, 64, 64) float32 in [0, 1] and their grid indices."""
    idx = dsprites.sample_indices(n, seed)
    x = dsprites.render(idx, color=True, seed=colour_seed).astype(np.float32) / 255.0
    return x, idx


def grid_maximum(factor: str, shape: str) -> float:
    """The largest value a ceiling factor's column takes on the factor grid for `shape`: the
    orientation grid is 40 angles from 0 to 2 pi, ends included, so cos(2 x angle) reaches 1
    exactly (at 0 and 2 pi) and sin(2 x angle) at most 0.9992 (2 x angle = 92.3 degrees)."""
    return float(dsprites.orientation_column(factor, shape, dsprites.ORIENTATIONS).max())


def shift_effects(g: vi.Model, x: np.ndarray, shapes: np.ndarray,
                  true: dict[str, np.ndarray] | None = None) -> dict[str, Any]:  # fmt: skip
    """For each continuous direction: share moved the right way and the other properties' movement.
    `true`: the images' attribute table (dsprites.attributes), to count, for a factor with a
    ceiling, the images already at the largest value the grid gives."""
    out: dict[str, Any] = {}
    for factor in CONTINUOUS:
        if factor not in g.manifest.attributes:
            continue
        # measured on the shape the direction was fitted on (orientation: ellipses), else on all
        shape = dsprites.FIT_ON_SHAPE.get(factor)
        sel = np.arange(len(x)) if shape is None else np.flatnonzero(shapes == dsprites.SHAPES.index(shape))
        pair = g.shift(x[sel], factor, [0.0, 1.0])  # (n, 2, C, H, W): amount 0 and +1, both decoded
        before, after = dsprites.measure(pair[:, 0], shape), dsprites.measure(pair[:, 1], shape)
        right = dsprites.moved_right_way(before, after, factor, shape)
        others = {}
        for prop in ("x", "y", "area", "red", "green", "blue"):
            if prop == dsprites.PROPERTY_OF_FACTOR[factor]:
                continue
            change = np.abs(dsprites.property_change(before, after, prop))
            others[prop] = round(float(np.nanmean(change)), 4)
        centroid = np.hypot(after["x"] - before["x"], after["y"] - before["y"])
        extra: dict[str, Any] = {}
        if factor in CEILING:
            value = before[dsprites.PROPERTY_OF_FACTOR[factor]]  # (n,) the measured cos / sin before
            room = value <= CEILING[factor] - ROOM  # (n,) bool
            # where the misses are: at the two ends of the value a straight shift barely moves it
            top, bottom = value > CEILING[factor] - ROOM, value < -(CEILING[factor] - ROOM)
            middle = ~top & ~bottom
            extra = {"images_with_room": int(room.sum()),
                     "moved_right_way_with_room": round(float(right[room].mean()), 4),
                     "images_and_misses_by_value": {
                         f"above {CEILING[factor] - ROOM:g}": [int(top.sum()), int((~right[top]).sum())],
                         f"below -{CEILING[factor] - ROOM:g}": [int(bottom.sum()), int((~right[bottom]).sum())],
                         "between": [int(middle.sum()), int((~right[middle]).sum())]}}  # fmt: skip
            if true is not None and shape is not None:
                top_value = grid_maximum(factor, shape)
                at_top = np.abs(true[factor][sel] - top_value) < 1e-5  # (n,) bool, the true factor value
                extra["at_the_grid_maximum"] = {
                    "value": round(top_value, 5), "images": int(at_top.sum()), "missed": int((~right[at_top]).sum()),
                    "moved_right_way_elsewhere": round(float(right[~at_top].mean()), 4)}  # fmt: skip
        out[factor] = {
            "images": len(sel),
            "moved_right_way": round(float(right.mean()), 4),
            "mean_change": round(float(np.nanmean(
                dsprites.property_change(before, after, dsprites.PROPERTY_OF_FACTOR[factor], shape))), 4),
            "others_mean_abs_change": others,
            "centroid_shift_px": round(float(np.nanmean(centroid)), 3),
            **extra,
        }  # fmt: skip
    return out


def verdict(effects: dict[str, Any]) -> dict[str, Any]:
    shares = {f: e["moved_right_way"] for f, e in effects.items()}
    colour_px = {f: effects[f]["centroid_shift_px"] for f in ("red", "green", "blue") if f in effects}
    return {
        "goal": f"each of {', '.join(CONTINUOUS)} moves its property the right way for >= {GOAL_SHARE:.0%} of images; "
        f"colour shifts move the centroid < {GOAL_CENTROID_PX:g} px",
        "shares_met": {f: s >= GOAL_SHARE for f, s in shares.items()},
        "colour_centroid_met": {f: px < GOAL_CENTROID_PX for f, px in colour_px.items()},
        "met": all(s >= GOAL_SHARE for s in shares.values()) and all(px < GOAL_CENTROID_PX for px in colour_px.values())
        and len(shares) == len(CONTINUOUS),
    }


SAMPLE_PROPERTIES = ("x", "y", "area", "red", "green", "blue")


def sample_stats(samples: np.ndarray, real: np.ndarray, real_props: dict[str, np.ndarray],
                 real_shapes: np.ndarray) -> dict[str, Any]:  # fmt: skip
    """Clean share of `samples` (n, C, H, W), and for the clean ones: per property the 1-D
    Wasserstein distance to the `real` images' values (in real standard deviations) and the shares
    of each shape among their nearest real images (squared pixel distance)."""
    from scipy.stats import wasserstein_distance

    clean = dsprites.one_clean_shape(samples)
    out: dict[str, Any] = {"n": len(samples), "one_clean_shape": round(float(clean.mean()), 4)}
    good = samples[clean]
    if len(good) == 0:
        return out
    props = dsprites.measure(good)
    out["w1_in_real_sd"] = {
        k: round(float(wasserstein_distance(props[k], real_props[k]) / real_props[k].std()), 3)
        for k in SAMPLE_PROPERTIES
    }
    a, b = good.reshape(len(good), -1), real.reshape(len(real), -1)  # (m, P), (r, P)
    d2 = (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None, :]  # (m, r)
    nearest = real_shapes[d2.argmin(1)]
    out["nearest_real_shape_share"] = {
        name: round(float((nearest == k).mean()), 3) for k, name in enumerate(dsprites.SHAPES)
    }
    return out


def real_floor(real: np.ndarray) -> dict[str, float]:
    """The same Wasserstein distances between two halves of the fresh images: the figure a perfect
    sampler would get with this many images, its noise floor."""
    from scipy.stats import wasserstein_distance

    half = len(real) // 2
    p, q = dsprites.measure(real[:half]), dsprites.measure(real[half:])
    return {k: round(float(wasserstein_distance(p[k], q[k]) / q[k].std()), 3) for k in SAMPLE_PROPERTIES}


def pictures(g: vi.Model, x: np.ndarray, shapes: np.ndarray, out: Path) -> list[Path]:
    """The README's pictures: samples, reconstructions, one shift row per factor, a traversal."""
    written = [out / "color-dsprites-samples.png", out / "color-dsprites-reconstruct.png",
               out / "color-dsprites-shifts.png", out / "color-dsprites-traverse.png"]  # fmt: skip
    write_bytes(written[0], lambda fh: fh.write(grids.sample_grid(g, 36, seed=0).png(scale=1)))
    if g.manifest.sampler is not None:  # beside it, what the prior alone gives
        written.append(out / "color-dsprites-samples-prior.png")
        write_bytes(written[-1], lambda fh: fh.write(grids.sample_grid(g, 36, seed=0, from_prior=True).png(scale=1)))
    write_bytes(written[1], lambda fh: fh.write(grids.reconstruct_grid(g, x[:16], cols=8).png(scale=1)))
    amounts = [-2.0, -1.0, 0.0, 1.0, 2.0]
    names = [f for f in CONTINUOUS if f in g.manifest.attributes]
    # each row shifts a heart, or the first image of the shape its direction was fitted on
    first = {name: int(np.flatnonzero(shapes == k)[0]) for k, name in enumerate(dsprites.SHAPES)}
    source = [first[dsprites.FIT_ON_SHAPE.get(f, "heart")] for f in names]
    rows = np.stack([g.shift(x[i : i + 1], f, amounts)[0] for i, f in zip(source, names)])  # (F, A, C, H, W)
    shifts = grids.Grid(rows, row_labels=names, col_labels=[grids.signed(a) for a in amounts])
    write_bytes(written[2], lambda fh: fh.write(shifts.png(scale=2)))
    write_bytes(written[3], lambda fh: fh.write(grids.traverse_grid(g, x[first["heart"]], dims=range(g.latent_dim),
                                                                     span=2.5, steps=9).png(scale=1)))  # fmt: skip
    return written


def markdown(report: dict[str, Any]) -> str:
    m = report["meta"]
    lines = [
        f"# color-dsprites measured ({m['date']}, {m['machine']})",
        "",
        f"`{m['command']}`; {m['images']:,} fresh images (factor seed {m['seed']}, colour seed {m['colour_seed']}).",
        "",
        "| shift +1 along | images | moved the right way | mean change | centroid moved (px) "
        "| other properties (mean abs change) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f, e in report["shifts"].items():
        others = ", ".join(f"{k} {v:g}" for k, v in e["others_mean_abs_change"].items())
        lines.append(f"| {f} | {e['images']} | {e['moved_right_way']:.1%} | {e['mean_change']:+.3g} | "
                     f"{e['centroid_shift_px']:.2f} | {others} |")  # fmt: skip
    for f, e in report["shifts"].items():
        if "moved_right_way_with_room" in e:
            lines += ["", f"{f}: {e['moved_right_way_with_room']:.1%} of the {e['images_with_room']} images whose "
                      f"measured {f} was at most {CEILING[f] - ROOM:g} before the shift (room to grow)."]  # fmt: skip
            by_value = "; ".join(f"{where}: {n} images, {miss} missed"
                                 for where, (n, miss) in e["images_and_misses_by_value"].items())  # fmt: skip
            lines.append(f"By the measured value before the shift: {by_value}.")
            if "at_the_grid_maximum" in e:
                t = e["at_the_grid_maximum"]
                lines.append(f"At the largest value the factor grid gives ({t['value']:g}, true factor): {t['images']} "
                             f"images, {t['missed']} missed; the other {e['images'] - t['images']}: "
                             f"{t['moved_right_way_elsewhere']:.1%} moved the right way.")  # fmt: skip
    r = report["reconstruction"]
    lines += [
        "",
        f"Reconstruction MSE per pixel {r['mse_per_pixel']:.5f}; test bound {r['bits_per_dim']:.3f} bits/dim "
        f"(k={r['k']}, {r['images']} images).",
        "",
        "| samples (1,000, seed 0) | one clean shape | spread against fresh images: x / y / area / red / green / "
        "blue (Wasserstein, in sd) | nearest fresh image a square / ellipse / heart |",
        "| --- | --- | --- | --- |",
    ]  # fmt: skip
    for name, e in report["samples"].items():
        w1 = " / ".join(f"{e['w1_in_real_sd'][k]:.3f}" for k in SAMPLE_PROPERTIES) if "w1_in_real_sd" in e else "-"
        near = " / ".join(f"{v:.1%}" for v in e["nearest_real_shape_share"].values()) if "w1_in_real_sd" in e else "-"
        lines.append(f"| {name} | {e['one_clean_shape']:.1%} | {w1} | {near} |")
    floor = report["real_halves_w1_in_sd"]
    halves = " / ".join(f"{floor[k]:.3f}" for k in SAMPLE_PROPERTIES)
    lines += [
        f"| two halves of the fresh images (the floor) | - | {halves} | 33.3% each in the data |",
        "",
        f"Goal ({report['verdict']['goal']}): {'met' if report['verdict']['met'] else 'missed'}.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="color-dsprites", help="bundle name or directory")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2026, help="factor indices of the fresh images")
    parser.add_argument("--colour-seed", type=int, default=7, help="their colours (training used 0)")
    parser.add_argument("--score-images", type=int, default=500)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--write", action="store_true", help="put the figures into the bundle's model.json")
    parser.add_argument("--pictures", action="store_true", help="write the README pictures into docs/img/")
    args = parser.parse_args(argv)
    started = time.time()
    given = sys.argv[1:] if argv is None else argv
    g = vi.load(args.bundle, providers="cpu")
    x, idx = fresh_images(args.images, args.seed, args.colour_seed)
    shapes = dsprites.factors_of(idx).shape
    effects = shift_effects(g, x, shapes, dsprites.attributes(idx, color=True, seed=args.colour_seed))
    rec = g.reconstruct(x)
    ll = g.score(x[: args.score_images], k=args.k, seed=0)
    real_props = dsprites.measure(x)
    sources = {"as `sample` draws them (the bundle's sampler)": False} if g.manifest.sampler is not None else {}
    sources["from the prior, N(0, I)"] = True
    samples = {name: sample_stats(g.sample(1000, seed=0, from_prior=p), x, real_props, shapes)
               for name, p in sources.items()}  # fmt: skip
    # what the decoder can paint at best: reconstructions of 1,000 of the fresh images
    samples["reconstructions of 1,000 fresh images (the model's ceiling)"] = sample_stats(
        rec[:1000], x, real_props, shapes
    )
    report = {
        "meta": {
            "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            "command": " ".join(["python benchmarks/color_dsprites.py", *given]),
            "bundle": g.name if g.bundle.origin == "shipped" else str(args.bundle),
            "images": args.images, "seed": args.seed, "colour_seed": args.colour_seed,
        },
        "shifts": effects,
        "reconstruction": {
            "mse_per_pixel": round(float(((rec - x) ** 2).mean()), 6),
            "bits_per_dim": round(float(bits_per_dim(ll, int(np.prod(g.image_shape))).mean()), 4),
            "k": args.k, "images": len(ll),
        },
        "samples": samples,
        "real_halves_w1_in_sd": real_floor(x),
    }  # fmt: skip
    report["verdict"] = verdict(effects)
    report["meta"]["seconds"] = round(time.time() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_json(RESULTS / "color_dsprites.json", report)
    md = markdown(report)
    write_bytes(RESULTS / "color_dsprites.md", lambda fh: fh.write(md.encode()))
    print(md)
    if args.write:
        path = g.bundle.path / "model.json"
        data = json.loads(path.read_text())
        data["metrics"] = {
            **data.get("metrics", {}),
            "shift_moved_right_way": {f: e["moved_right_way"] for f, e in effects.items()},
            "colour_shift_centroid_px": {f: effects[f]["centroid_shift_px"] for f in ("red", "green", "blue")
                                         if f in effects},
            "reconstruction_mse": report["reconstruction"]["mse_per_pixel"],
            "test_bits_per_dim": report["reconstruction"]["bits_per_dim"],
            "samples_one_clean_shape": next(iter(samples.values()))["one_clean_shape"],
            "samples_from_prior_one_clean_shape": samples["from the prior, N(0, I)"]["one_clean_shape"],
            "protocol": f"{args.images:,} fresh Color-dSprites images (factor seed {args.seed}, colour seed "
            f"{args.colour_seed}); shifts of +1 measured from pixels (orientation on ellipses); bits/dim: discretised "
            f"Gaussian, k={args.k}, first {len(ll)} images; samples: 1,000, seed 0, as `sample` draws them "
            "(and from the prior); benchmarks/color_dsprites.py",
        }  # fmt: skip
        save_json(path, data)
        print(f"wrote the figures into {path}")
    if args.pictures:
        for p in pictures(g, x, shapes, ROOT / "docs" / "img"):
            print(f"wrote {p}")
    if not math.isfinite(report["reconstruction"]["bits_per_dim"]):
        raise SystemExit("error: the bound is not finite")


if __name__ == "__main__":
    main()
