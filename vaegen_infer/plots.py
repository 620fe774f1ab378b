"""Pictures drawn with Pillow alone: the 2-D latent map (codes coloured by class over the prior's
density) and a simple line chart used by the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .images import load_font
from .priors import Prior

# Ten well-separated colours (Tableau 10), then greys for any further classes.
PALETTE = [
    (78, 121, 167), (242, 142, 43), (225, 87, 89), (118, 183, 178), (89, 161, 79),
    (237, 201, 72), (176, 122, 161), (255, 157, 167), (156, 117, 95), (186, 176, 172),
]  # fmt: skip


def _colour(i: int) -> tuple[int, int, int]:
    return PALETTE[i] if i < len(PALETTE) else (128, 128, 128)


def _smooth(a: np.ndarray, passes: int = 2) -> np.ndarray:
    """A few 3x3 box blurs: a cheap Gaussian-like smoothing of a 2-D histogram."""
    for _ in range(passes):
        p = np.pad(a, 1, mode="edge")
        a = sum(p[i : i + a.shape[0], j : j + a.shape[1]] for i in range(3) for j in range(3)) / 9.0
    return a


def latent_map(
    codes: np.ndarray,
    labels: np.ndarray | None,
    prior: Prior,
    label_names: Sequence[str] | None = None,
    dims: tuple[int, int] = (0, 1),
    title: str = "",
    size: int = 640,
    seed: int = 0,
) -> Image.Image:
    """Scatter codes (N, D) on dims (a, b), coloured by label (N,), over a shaded density of the
    prior estimated from 200,000 of its samples. Returns an RGB image with a legend on the right."""
    a, b = dims
    pts = np.asarray(codes, dtype=np.float64)[:, [a, b]]  # (N, 2)
    ref = prior.sample(200_000, np.random.default_rng(seed))[:, [a, b]].astype(np.float64)
    both = np.concatenate([ref, pts])
    lo, hi = np.percentile(both, 0.2, axis=0), np.percentile(both, 99.8, axis=0)
    span = float(max(hi - lo)) * 1.1
    centre = (lo + hi) / 2
    lo, hi = centre - span / 2, centre + span / 2  # square window, equal scale on both axes

    margin, legend_w, top = 40, 120, 30
    width, height = margin + size + legend_w, top + size + margin
    img = Image.new("RGB", (width, height), (255, 255, 255))

    # Background: prior density as blue-grey shading (log scale so the tails stay visible).
    bins = 160
    hist, _, _ = np.histogram2d(ref[:, 0], ref[:, 1], bins=bins, range=[[lo[0], hi[0]], [lo[1], hi[1]]])
    dens = np.log1p(_smooth(hist.T[::-1]))  # rows: top = high z_b
    dens = dens / max(dens.max(), 1e-12)
    shade = (255 - dens[..., None] * np.array([95, 80, 40])).clip(0, 255).astype(np.uint8)  # (bins, bins, 3)
    bg = Image.fromarray(shade, "RGB").resize((size, size), Image.Resampling.BILINEAR)
    img.paste(bg, (margin, top))

    draw = ImageDraw.Draw(img)
    font = load_font(12)

    def to_px(p: np.ndarray) -> np.ndarray:
        x = margin + (p[:, 0] - lo[0]) / (hi[0] - lo[0]) * size
        y = top + (hi[1] - p[:, 1]) / (hi[1] - lo[1]) * size
        return np.stack([x, y], axis=1)

    px = to_px(pts)
    order = np.random.default_rng(seed).permutation(len(px))  # no class painted entirely on top
    for i in order:
        x, y = px[i]
        c = _colour(int(labels[i])) if labels is not None else (40, 40, 40)
        draw.ellipse((x - 1.6, y - 1.6, x + 1.6, y + 1.6), fill=c)

    # Frame, ticks and axis names.
    draw.rectangle((margin, top, margin + size, top + size), outline=(80, 80, 80))
    for t in np.linspace(0, 1, 5):
        vx = lo[0] + t * (hi[0] - lo[0])
        vy = lo[1] + t * (hi[1] - lo[1])
        x = margin + t * size
        y = top + (1 - t) * size
        draw.line((x, top + size, x, top + size + 4), fill=(80, 80, 80))
        draw.text((x, top + size + 6), f"{vx:.1f}", fill=(60, 60, 60), font=font, anchor="mt")
        draw.line((margin - 4, y, margin, y), fill=(80, 80, 80))
        draw.text((margin - 6, y), f"{vy:.1f}", fill=(60, 60, 60), font=font, anchor="rm")
    draw.text((margin + size // 2, height - 4), f"z{a}", fill=(0, 0, 0), font=font, anchor="mb")
    draw.text((4, top - 6), f"z{b}", fill=(0, 0, 0), font=font, anchor="lb")
    if title:
        draw.text((margin + size // 2, 8), title, fill=(0, 0, 0), font=font, anchor="mt")

    # Legend.
    if labels is not None:
        names = list(label_names) if label_names is not None else [str(i) for i in range(int(labels.max()) + 1)]
        for i, name in enumerate(names):
            y = top + 10 + i * 20
            x = margin + size + 16
            draw.ellipse((x, y - 5, x + 10, y + 5), fill=_colour(i))
            draw.text((x + 16, y), name, fill=(0, 0, 0), font=font, anchor="lm")
    return img


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values, 1, 2 or 5 times a power of ten apart, whose first is at or
    below `lo` and last at or above `hi` (the axis then runs from the first to the last)."""
    span = hi - lo if hi > lo else (abs(hi) or 1.0)
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9) * step
    n = max(1, math.ceil((hi - first) / step - 1e-9))
    return [round(first + i * step, 12) for i in range(n + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values for a log axis spanning [lo, hi] (values, not logs): 1-2-5 per decade, or only
    the powers of ten when that would give more than 8."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for mantissas in ((1, 2, 5), (1,)):
        ticks = [m * 10.0**d for d in decades for m in mantissas if lo <= m * 10.0**d <= hi]
        if len(ticks) <= 8:
            break
    return ticks


def _label(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}"


def line_chart(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = True,
    log_y: bool = True,
    size: tuple[int, int] = (720, 440),
) -> Image.Image:
    """One line per series name -> (xs, ys), on log axes by default, with a legend. A log x axis is
    labelled at each x given (batch sizes, client counts); linear axes at round values, and a linear
    y axis of non-negative values starts at 0."""
    width, height = size
    left, right, top, bottom = 70, 170, 34, 50
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = load_font(12)
    all_x = np.concatenate([np.asarray(xs, float) for xs, _ in series.values()])
    all_y = np.concatenate([np.asarray(ys, float) for _, ys in series.values()])
    fx = np.log10 if log_x else (lambda v: np.asarray(v, float))
    fy = np.log10 if log_y else (lambda v: np.asarray(v, float))
    if log_x:
        x_ticks = sorted(set(all_x.tolist()))
        x0, x1 = float(fx(all_x.min())), float(fx(all_x.max()))
    else:
        x_ticks = nice_ticks(float(all_x.min()), float(all_x.max()))
        x0, x1 = x_ticks[0], x_ticks[-1]
    if x1 == x0:
        x1 = x0 + 1
    if log_y:
        y0, y1 = float(fy(all_y.min())), float(fy(all_y.max()))
        pad = (y1 - y0) * 0.08 or 0.5
        y0, y1 = y0 - pad, y1 + pad
        y_ticks = _log_ticks(10**y0, 10**y1)
    else:
        low = 0.0 if all_y.min() >= 0 else float(all_y.min())
        y_ticks = nice_ticks(low, float(all_y.max()))
        y0, y1 = y_ticks[0], y_ticks[-1]
    pw, ph = width - left - right, height - top - bottom

    def px(x: float, y: float) -> tuple[float, float]:
        return (left + (float(fx(x)) - x0) / (x1 - x0) * pw, top + (1 - (float(fy(y)) - y0) / (y1 - y0)) * ph)

    draw.rectangle((left, top, left + pw, top + ph), outline=(80, 80, 80))
    for xv in x_ticks:
        x, _ = px(xv, 10**y0 if log_y else y0)
        draw.line((x, top + ph, x, top + ph + 4), fill=(80, 80, 80))
        draw.text((x, top + ph + 6), _label(xv), fill=(60, 60, 60), font=font, anchor="mt")
    for yv in y_ticks:
        _, y = px(x_ticks[0], yv)
        draw.line((left - 4, y, left, y), fill=(80, 80, 80))
        draw.line((left, y, left + pw, y), fill=(235, 235, 235))
        draw.text((left - 6, y), _label(yv), fill=(60, 60, 60), font=font, anchor="rm")
    for i, (name, (xs, ys)) in enumerate(series.items()):
        pts = [px(x, y) for x, y in zip(xs, ys)]
        draw.line(pts, fill=_colour(i), width=2)
        for x, y in pts:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=_colour(i))
        ly = top + 10 + i * 20
        draw.line((left + pw + 12, ly, left + pw + 32, ly), fill=_colour(i), width=3)
        draw.text((left + pw + 38, ly), name, fill=(0, 0, 0), font=font, anchor="lm")
    draw.text((left + pw // 2, 10), title, fill=(0, 0, 0), font=font, anchor="mt")
    draw.text((left + pw // 2, height - 6), x_label, fill=(0, 0, 0), font=font, anchor="mb")
    draw.text((6, top - 8), y_label, fill=(0, 0, 0), font=font, anchor="lb")
    return img
