"""Latent dimensions against ground-truth factors (dSprites-like data): the table a bundle carries in
`latent_factors.per_dim` and the standard heat map of their mutual information, drawn with Pillow.

The mutual information itself is measured at training time (train/disentangle.py, from the
encoder's means on generated data); here it is an array (D dimensions, K factors), usually
normalised by each factor's entropy so that 1 means "this dimension determines the factor".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .errors import InputError, UsageError, did_you_mean
from .images import load_font

NO_FACTOR = "-"
# The exporter's default threshold on normalised mutual information for labelling a dimension: ten
# times the plug-in estimator's bias for an unrelated dimension (about 0.01 for a 40-valued factor,
# 20 bins, 10,000 points: (20 - 1)(40 - 1) / (2 * 10,000) nats over H = log 40).
DEFAULT_THRESHOLD = 0.1


def _check_mi(mi: Any, names: Sequence[str]) -> np.ndarray:
    m = np.asarray(mi, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise InputError(f"mutual information must be a (latent dims, factors) array, got shape {m.shape}")
    if m.shape[1] != len(names):
        raise InputError(f"mutual information has {m.shape[1]} factor columns but {len(names)} factor names were given")
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise InputError("mutual information must be finite and non-negative")
    return m


def factor_table(mi: Any, names: Sequence[str], threshold: float) -> list[dict[str, Any]]:
    """For each latent dimension (row of mi (D, K)), the factor it shares most information with
    and that amount: [{"factor": name, "mi": float}, ...], with factor "-" when the largest value
    is below `threshold` (a dimension that captures no factor). The `latent_factors.per_dim` format."""
    m = _check_mi(mi, names)
    if not np.isfinite(threshold) or threshold < 0:
        raise UsageError(f"threshold must be a non-negative number, got {threshold}")
    best = np.argmax(m, axis=1)  # (D,) ties go to the first factor
    table = []
    for d, k in enumerate(best):
        value = float(m[d, k])
        table.append({"factor": names[k] if value >= threshold else NO_FACTOR, "mi": value})
    return table


def dim_for_factor(per_dim: Sequence[dict[str, Any]], factor: str) -> int:
    """The latent dimension labelled with `factor` that holds the most information about it
    (for `traverse --factor`); UsageError listing the factors the table has otherwise."""
    found = [(float(e["mi"]), d) for d, e in enumerate(per_dim) if e["factor"] == factor]
    if not found:
        valid = sorted({e["factor"] for e in per_dim if e["factor"] != NO_FACTOR})
        listed = ", ".join(valid) if valid else "none (no dimension captures a factor)"
        raise UsageError(
            f"no latent dimension captures factor '{factor}'{did_you_mean(factor, valid)}; "
            f"factors in this model: {listed}"
        )
    return max(found)[1]


# Sequential colour ramp (light yellow -> green -> dark blue, after ColorBrewer's YlGnBu), so the
# amount reads from lightness and stays readable in grey.
_RAMP = np.array(
    [(255, 255, 217), (237, 248, 177), (199, 233, 180), (127, 205, 187), (65, 182, 196),
     (29, 145, 192), (34, 94, 168), (37, 52, 148), (8, 29, 88)],
    dtype=np.float64,
)  # fmt: skip


def _colour(t: float) -> tuple[int, int, int]:
    """The ramp's colour at t in [0, 1], linearly interpolated."""
    x = min(max(t, 0.0), 1.0) * (len(_RAMP) - 1)
    i = min(int(x), len(_RAMP) - 2)
    c = _RAMP[i] + (x - i) * (_RAMP[i + 1] - _RAMP[i])
    r, g, b = np.rint(c).astype(int).tolist()
    return r, g, b


def mi_heatmap(
    mi: Any,
    factor_names: Sequence[str],
    dim_labels: Sequence[str] | None = None,
    title: str = "mutual information between latent dimensions and factors",
    value_label: str = "normalised mutual information I(z_j; v_k) / H(v_k)",
    vmax: float | None = None,
    cell: int = 64,
) -> Image.Image:
    """The heat map of mi (D, K): one row per latent dimension (labelled z0, z1, ... or
    `dim_labels`), one column per factor, each cell coloured by its value and printed with it, and
    a colour bar from 0 to `vmax` (default 1 when every value is at most 1, else the largest)."""
    m = _check_mi(mi, factor_names)
    d, k = m.shape
    labels = list(dim_labels) if dim_labels is not None else [f"z{j}" for j in range(d)]
    if len(labels) != d:
        raise InputError(f"{len(labels)} dimension labels for {d} latent dimensions")
    top_value = float(m.max())
    scale = vmax if vmax is not None else (1.0 if top_value <= 1.0 else top_value)
    if not np.isfinite(scale) or scale <= 0:
        raise UsageError(f"vmax must be a positive number, got {vmax}")
    row_h = max(24, cell // 2)  # cell height: rows are many, columns few
    font, small = load_font(max(11, row_h // 2)), load_font(max(10, row_h // 2 - 2))
    bold = load_font(max(12, row_h // 2 + 1))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(text: str, f: Any) -> int:
        box = measure.textbbox((0, 0), text, font=f)
        return int(box[2] - box[0])

    cw = max(cell, *(width(n, font) + 12 for n in factor_names))  # cell width fits the longest name
    axis_w = 22  # the rotated "latent dimension" caption
    label_w = max(width(t, font) for t in labels) + 10
    left = axis_w + label_w
    title_h, caption_h = 34, 20
    top = title_h + caption_h + row_h  # title, "factor", the factor names
    bar_w, bar_gap = 16, 18
    values_w = max(width(f"{v:.3g}", small) for v in (0.0, scale)) + 8
    right = bar_gap + bar_w + values_w + 10
    ink = (30, 30, 30)
    # The y-axis caption, written horizontally then rotated a quarter turn; with few rows the
    # rows grow so that the grid is as tall as the caption.
    caption = "latent dimension"
    strip = Image.new("RGB", (width(caption, font) + 8, axis_w), (255, 255, 255))
    ImageDraw.Draw(strip).text((4, axis_w // 2), caption, fill=ink, font=font, anchor="lm")
    strip = strip.rotate(90, expand=True)
    ch = max(row_h, -(-strip.height // d))
    w = max(left + k * cw + right, width(title, bold) + 20, width(value_label, small) + 20)
    h = top + d * ch + 30
    img = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(img)

    draw.text((w // 2, 8), title, fill=ink, font=bold, anchor="mt")
    draw.text((left + k * cw // 2, title_h + caption_h // 2), "factor", fill=ink, font=font, anchor="mm")
    for c, name in enumerate(factor_names):
        draw.text((left + c * cw + cw // 2, top - row_h // 2), name, fill=ink, font=font, anchor="mm")
    for r, text in enumerate(labels):
        draw.text((left - 6, top + r * ch + ch // 2), text, fill=ink, font=font, anchor="rm")
    img.paste(strip, (2, top + max(0, (d * ch - strip.height) // 2)))

    for r in range(d):
        for c in range(k):
            t = m[r, c] / scale
            x0, y0 = left + c * cw, top + r * ch
            draw.rectangle((x0, y0, x0 + cw - 1, y0 + ch - 1), fill=_colour(t), outline=(255, 255, 255))
            fg = (255, 255, 255) if t > 0.55 else ink  # light text on the dark end of the ramp
            draw.text((x0 + cw // 2, y0 + ch // 2), f"{m[r, c]:.2f}", fill=fg, font=small, anchor="mm")

    # Colour bar: vmax at the top, 0 at the bottom, with the quantity's name beneath.
    bx, by0, by1 = left + k * cw + bar_gap, top, top + d * ch - 1
    for y in range(by0, by1 + 1):
        draw.line((bx, y, bx + bar_w, y), fill=_colour(1.0 - (y - by0) / max(by1 - by0, 1)))
    draw.rectangle((bx, by0, bx + bar_w, by1), outline=(150, 150, 150))
    draw.text((bx + bar_w + 4, by0), f"{scale:.3g}", fill=ink, font=small, anchor="lt")
    draw.text((bx + bar_w + 4, by1), "0", fill=ink, font=small, anchor="lb")
    half = width(value_label, small) // 2 + 4  # centred under the grid, kept inside the picture
    x = min(max(left + k * cw // 2, half), w - half)
    draw.text((x, top + d * ch + 8), value_label, fill=ink, font=small, anchor="mt")
    return img
