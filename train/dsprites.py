"""dSprites and Color-dSprites, rendered on the fly from their factors (numpy only), and
measurements of the same properties from pixels.

The factor grid is the one of Matthey et al. (2017), `dsprites_ndarray_co1sh3sc6or40x32y32_64x64`:
shape 3 (square, ellipse, heart) x scale 6 (linspace(0.5, 1)) x orientation 40 (linspace(0, 2 pi),
both ends included, as in the original, so orientations 0 and 39 draw the same image) x position x
32 x position y 32 (linspace(0, 1)) = 737,280 combinations, indexed in the original's order
(position y varies fastest, then x, orientation, scale, shape). Rendering runs at about 13,000
64x64 images/s on one core (`render(sample_indices(5000, 0), color=True)`). Color-dSprites follows
disentanglement_lib (`data/ground_truth/dsprites.py`, `ColorDSprites`): the binary sprite
multiplied by one RGB colour per image, each channel uniform in [0.5, 1], on black.

How this rendering may differ from the original file (which is not on hand here):
- The shapes are drawn from formulas, one sample at each pixel centre (no anti-aliasing, binary):
  square |u|, |v| <= 1; ellipse (u / 1.4)^2 + (v / 0.75)^2 <= 1; heart (x^2 + y^2 - 1)^3 <= x^2 y^3
  (the classic implicit heart, re-centred on its bounding box). The original's sprites were drawn
  by DeepMind's own renderer; their exact outlines, the ellipse's aspect ratio and the heart's
  curve will differ by a pixel or more at the edges.
- Size: at scale 1 the square's side is 0.3 of the image side (19.2 px at 64x64), the other
  shapes have about the same extent; the original's absolute sizes are not documented and may
  differ by a few pixels.
- Position: the shape's centre (of its bounding box, unrotated) moves from MARGIN to
  size - MARGIN pixels (14.1 to 49.9 at 64x64, 1.15 px per step), MARGIN being the largest
  distance of any shape point from that centre at scale 1 plus half a pixel, so every shape at
  every orientation stays inside the frame. (A re-implementation that aims at the original's
  ranges, sbdzdz/disco's InfiniteDSprites, spans 16 to 48 px.) Position y grows downwards
  (image rows); whether the original's does is not documented.
- Orientation turns the shape counter-clockwise as seen on screen; the original's direction and
  the heart's orientation-0 pose (here: lobes up, tip down) may differ.
- Color-dSprites: the colour is a deterministic function of (seed, grid index), so the same index
  always has the same colour (disentanglement_lib draws a fresh colour at every sample), and it is
  quantised to 8 bits (round(255 c), so each channel is in 128..255); the `red`, `green`, `blue`
  attributes are those quantised values / 255.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * math.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
GRID = (len(SHAPES), len(SCALES), len(ORIENTATIONS), len(POSITIONS), len(POSITIONS))  # original order
N_COMBINATIONS = math.prod(GRID)  # 737,280
FACTORS = ["shape", "scale", "orientation", "x", "y"]
SIZE = 64

# Shape geometry in units of HALF_SIDE * image side (the square's half side at scale 1).
HALF_SIDE = 0.15
ELLIPSE_AXES = (1.4, 0.75)
HEART_Y_OFFSET = 0.118  # the implicit heart spans y in [-1, 1.236]: shift it onto its box centre
HEART_CENTROID_Y = 0.2935  # its centroid, in the curve's coordinates (numerical integration)
HEART_AREA = 3.662  # its area in shape units squared (the square's is 4)
MAX_RADIUS = math.sqrt(2.0)  # the square's corner is the farthest point of any shape (heart 1.34, ellipse 1.4)
# Rotational symmetry of each shape, for orientation measurements: square 90 deg, ellipse 180 deg.
FOLD = {"square": 4, "ellipse": 2, "heart": 1}
BATCH = 512  # images rendered at once: (512, 64, 64) float32 intermediates are 8 MB each


def margin(size: int = SIZE) -> float:
    """Pixels between the frame and the nearest possible shape centre."""
    return MAX_RADIUS * HALF_SIDE * size + 0.5


@dataclass(frozen=True)
class Factors:
    """Factor values of a batch, one row per image."""

    shape: np.ndarray  # (B,) int64 index into SHAPES
    scale: np.ndarray  # (B,) float64 in [0.5, 1]
    orientation: np.ndarray  # (B,) float64 radians in [0, 2 pi]
    x: np.ndarray  # (B,) float64 in [0, 1]
    y: np.ndarray  # (B,) float64 in [0, 1]

    def __len__(self) -> int:
        return len(self.shape)


def factors_of(indices: np.ndarray) -> Factors:
    """Grid indices (B,) in [0, 737280) -> their factor values."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= N_COMBINATIONS):
        raise IndexError(f"dSprites grid indices must be in [0, {N_COMBINATIONS}), got {idx.min()}..{idx.max()}")
    sh, sc, orient, px, py = np.unravel_index(idx, GRID)
    return Factors(sh.astype(np.int64), SCALES[sc], ORIENTATIONS[orient], POSITIONS[px], POSITIONS[py])


def index_of(shape: int, scale: int, orientation: int, x: int, y: int) -> int:
    """Factor value indices -> the grid index (the row of the original file)."""
    return int(np.ravel_multi_index((shape, scale, orientation, x, y), GRID))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A counter-based hash (uint64 -> uint64): colours depend on the index only, not on draw order."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def colours(indices: np.ndarray, seed: int) -> np.ndarray:
    """(B,) grid indices -> (B, 3) uint8 colours, each channel round(255 * U[0.5, 1]), fixed by (seed, index)."""
    idx = np.asarray(indices, dtype=np.uint64)
    key = _splitmix64(np.asarray([seed], dtype=np.uint64))[0]
    counters = idx[:, None] * np.uint64(3) + np.arange(3, dtype=np.uint64)[None, :]  # (B, 3)
    with np.errstate(over="ignore"):
        bits = _splitmix64(counters ^ key)
    u = (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53)  # (B, 3) uniform in [0, 1)
    return np.rint(255.0 * (0.5 + 0.5 * u)).astype(np.uint8)


def render_masks(f: Factors, size: int = SIZE) -> np.ndarray:
    """Factors of B images -> (B, size, size) bool, True where the sprite is."""
    out = np.empty((len(f), size, size), dtype=bool)
    unit = HALF_SIDE * size  # pixels per shape unit at scale 1
    lo = margin(size)
    centre = (np.arange(size, dtype=np.float32) + 0.5)[None, :]  # pixel centres (1, size)
    for start in range(0, len(f), BATCH):
        sl = slice(start, start + BATCH)
        cx = (lo + f.x[sl] * (size - 2 * lo)).astype(np.float32)[:, None]  # (b, 1) pixels
        cy = (lo + f.y[sl] * (size - 2 * lo)).astype(np.float32)[:, None]
        dx = (centre - cx)[:, None, :]  # (b, 1, W): right
        dy = (cy - centre)[:, :, None]  # (b, H, 1): up
        cos = np.cos(f.orientation[sl]).astype(np.float32)[:, None, None]
        sin = np.sin(f.orientation[sl]).astype(np.float32)[:, None, None]
        s = (unit * f.scale[sl]).astype(np.float32)[:, None, None]
        # undo the counter-clockwise rotation: shape coordinates (u, v) of every pixel, (b, H, W)
        u = (cos * dx + sin * dy) / s
        v = (cos * dy - sin * dx) / s
        block = out[sl]
        for k in np.unique(f.shape[sl]):
            pick = f.shape[sl] == k  # each shape's test only on its own images
            uk, vk = u[pick], v[pick]
            if k == 0:
                block[pick] = (np.abs(uk) <= 1.0) & (np.abs(vk) <= 1.0)
            elif k == 1:
                block[pick] = (uk * (1 / ELLIPSE_AXES[0])) ** 2 + (vk * (1 / ELLIPSE_AXES[1])) ** 2 <= 1.0
            else:
                hv = vk + np.float32(HEART_Y_OFFSET)
                uu = uk * uk
                q = uu + hv * hv - 1.0
                block[pick] = q * q * q <= uu * hv * hv * hv
    return out


def render(indices: np.ndarray, color: bool = False, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """Grid indices (B,) -> (B, 1, size, size) uint8 in {0, 255}, or (B, 3, size, size) coloured."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    masks = render_masks(factors_of(idx), size)[:, None]  # (B, 1, H, W) bool
    if not color:
        return masks.astype(np.uint8) * np.uint8(255)
    rgb = colours(idx, seed)[:, :, None, None]  # (B, 3, 1, 1)
    return masks * rgb  # bool * uint8 -> (B, 3, H, W) uint8


def attributes(indices: np.ndarray, color: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """The attribute table of grid indices: (N,) float32 columns x, y, scale, orientation_cos and
    orientation_sin, square/ellipse/heart (one-hot 0/1) and, for Color-dSprites, red/green/blue
    in [0.5, 1].

    Orientation is a circle, and a square looks the same every 90 degrees and an ellipse every
    180: its columns are the cosine and sine of FOLD x angle (k = 4, 2, 1 for square, ellipse,
    heart), a property of the image for every shape. A raw angle column cannot give a direction:
    a straight line in the code cannot turn every shape the same way round a circle (the
    direction once fitted to hearts' wrapped angles moved 47.8% of them the right way, chance).
    Their directions are fitted on ellipses (FIT_ON_SHAPE, see train/analysis.py)."""
    f = factors_of(indices)
    fold = np.array([FOLD[name] for name in SHAPES], dtype=np.float64)[f.shape]  # (N,)
    cols = {
        "x": f.x.astype(np.float32),
        "y": f.y.astype(np.float32),
        "scale": f.scale.astype(np.float32),
        "orientation_cos": np.cos(fold * f.orientation).astype(np.float32),
        "orientation_sin": np.sin(fold * f.orientation).astype(np.float32),
    }
    for k, name in enumerate(SHAPES):
        cols[name] = (f.shape == k).astype(np.float32)
    if color:
        rgb = colours(np.asarray(indices), seed).astype(np.float32) / 255.0
        for k, name in enumerate(("red", "green", "blue")):
            cols[name] = np.ascontiguousarray(rgb[:, k])
    return cols


ATTRIBUTE_KINDS = {"x": "continuous", "y": "continuous", "scale": "continuous",
                   "orientation_cos": "continuous", "orientation_sin": "continuous",
                   "square": "binary", "ellipse": "binary", "heart": "binary",
                   "red": "continuous", "green": "continuous", "blue": "continuous"}  # fmt: skip
# Attributes whose direction is fitted, and measured, on one shape only. The orientation columns
# on ellipses: measured on color-dsprites codes (benchmarks/orientation_probe.py), an ellipse's
# doubled angle is the one a straight line follows best (held-out R^2 of its cosine and sine from
# the code 0.79 and 0.81, squares 0.48 and 0.19, hearts 0.01 on the shipped seed 3; 0.82 / 0.67,
# 0.55 / 0.50 and 0.01 on seed 0), and a direction fitted on every shape at its own fold turned
# held-out ellipses the right way less often (91.4% and 91.2% against 95.1% and 94.9% for cos and
# sin on seed 3; 88.8% / 86.9% against 94.4% / 91.6% on seed 0).
FIT_ON_SHAPE = {"orientation_cos": "ellipse", "orientation_sin": "ellipse"}


def sample_indices(n: int, seed: int) -> np.ndarray:
    """n grid indices drawn uniformly with replacement (fresh test images for a seed)."""
    return np.random.default_rng(seed).integers(0, N_COMBINATIONS, size=n, dtype=np.int64)


class DSpritesArray:
    """A lazy (N, C, size, size) uint8 array of dSprites images: rows are rendered when indexed.

    `indices` are grid indices (the rows of the original file); the same grid index always gives
    the same image (and, for colour, the same colour for a given seed)."""

    def __init__(self, indices: np.ndarray, color: bool = False, seed: int = 0, size: int = SIZE) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        self.color = color
        self.seed = seed
        self.size = size
        self.dtype = np.dtype(np.uint8)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.indices), 3 if self.color else 1, self.size, self.size)

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int | slice | np.ndarray) -> np.ndarray:
        if isinstance(item, (int, np.integer)):
            return render(self.indices[[item]], self.color, self.seed, self.size)[0]
        return render(self.indices[item], self.color, self.seed, self.size)

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        # np.asarray on the whole set renders all of it: meant for small subsets only
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def attributes(self) -> dict[str, np.ndarray]:
        return attributes(self.indices, self.color, self.seed)


# -- measurements from pixels ----------------------------------------------------------------------


def _as_float(images: np.ndarray) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim == 3:  # (B, H, W): one channel
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {a.shape}")
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32, copy=False)


def shape_mask(images: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """(B, C, H, W) in [0, 1] (or uint8) -> (B, H, W) bool: pixels whose brightest channel exceeds
    `threshold` (Color-dSprites channels are >= 0.5 on the shape, 0 elsewhere)."""
    return _as_float(images).max(axis=1) > threshold


def area(images: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """(B,) number of shape pixels."""
    return shape_mask(images, threshold).sum(axis=(1, 2)).astype(np.float64)


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5  # pixel centres, as in render_masks
    return xs, ys


def centroid(images: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """(B, 2) shape centre (x to the right, y down) in pixels; NaN for an empty image."""
    m = shape_mask(images, threshold).astype(np.float64)  # (B, H, W)
    xs, ys = _coords(*m.shape[1:])
    n = m.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([(m * xs).sum(axis=(1, 2)) / n, (m * ys).sum(axis=(1, 2)) / n], axis=1)


def _complex_moment(images: np.ndarray, fold: int, threshold: float) -> np.ndarray:
    """(B,) complex moment of the shape about its centroid whose argument turns `fold` times as
    fast as the shape: sum z^fold for fold >= 2, sum z |z|^2 for fold 1 (the first moment
    vanishes about the centroid). z = dx + i dy with y up, so angles are counter-clockwise."""
    m = shape_mask(images, threshold).astype(np.float64)
    xs, ys = _coords(*m.shape[1:])
    c = centroid(images, threshold)  # (B, 2)
    z = (xs[None] - c[:, 0, None, None]) - 1j * (ys[None] - c[:, 1, None, None])  # (B, H, W)
    zf = z * np.abs(z) ** 2 if fold == 1 else z**fold
    return (m * zf).sum(axis=(1, 2))


def principal_axis_angle(images: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """(B,) angle of the major principal axis (second moments) in [0, pi), counter-clockwise from
    the x axis. Defined modulo 180 deg; meaningless for a square (isotropic second moments)."""
    return np.mod(np.angle(_complex_moment(images, 2, threshold)) / 2.0, math.pi)


def angle_change(before: np.ndarray, after: np.ndarray, period: float = 2 * math.pi) -> np.ndarray:
    """Signed change after - before, wrapped into [-period / 2, period / 2)."""
    return np.mod(np.asarray(after) - np.asarray(before) + period / 2, period) - period / 2


@functools.lru_cache(maxsize=8)
def _reference_angle(shape: str, size: int) -> float:
    # the raw moment angle of the shape at orientation 0: subtracted so that estimates read 0 there
    one = render(np.array([index_of(SHAPES.index(shape), 5, 0, 16, 16)]), size=size)
    return float(np.angle(_complex_moment(one, FOLD[shape], 0.5))[0] / FOLD[shape])


def _heart_angle(images: np.ndarray, threshold: float) -> np.ndarray:
    """(B,) heart orientation by template matching: the angle whose rendered heart (at the
    measured centroid, with the scale implied by the area) disagrees with the fewest pixels of a
    window around the centroid. Third-order moments are too noisy on hearts of 10-20 pixels."""
    masks = shape_mask(images, threshold)  # (B, H, W)
    b, _, w = masks.shape
    unit = HALF_SIDE * w
    c = np.nan_to_num(centroid(images, threshold), nan=w / 2)  # (B, 2)
    scale = np.sqrt(masks.sum(axis=(1, 2)) / (HEART_AREA * unit * unit)).astype(np.float32)  # area ~ scale^2
    r = math.ceil(1.5 * unit * max(1.0, float(scale.max(initial=1.0))))  # window half side, pixels
    padded = np.pad(masks, ((0, 0), (r, r), (r, r)))
    top = np.floor(c[:, 1]).astype(np.int64)  # window rows top..top+2r-1 of the padded mask
    left = np.floor(c[:, 0]).astype(np.int64)
    offs = np.arange(2 * r)
    patch = padded[np.arange(b)[:, None, None], (top[:, None] + offs)[:, :, None], (left[:, None] + offs)[:, None, :]]
    # pixel centres of the window relative to the centroid, y up: (B, 2r)
    px = (left[:, None] - r + offs + 0.5 - c[:, 0:1]).astype(np.float32)
    py = (c[:, 1:2] - (top[:, None] - r + offs + 0.5)).astype(np.float32)

    def disagreement(sl: slice, angles: np.ndarray) -> np.ndarray:  # angles (b', K) -> (b', K)
        cos = np.cos(angles).astype(np.float32)[..., None, None]  # (b', K, 1, 1)
        sin = np.sin(angles).astype(np.float32)[..., None, None]
        inv = (1.0 / (unit * scale[sl]))[:, None, None, None]
        dx, dy = px[sl, None, None, :], py[sl, None, :, None]  # (b', 1, 1, 2r), (b', 1, 2r, 1)
        u = (cos * dx + sin * dy) * inv
        v = (cos * dy - sin * dx) * inv + np.float32(HEART_CENTROID_Y)  # implicit-curve coordinates
        uu = u * u
        q = uu + v * v - 1.0
        heart = q * q * q <= uu * v * v * v
        return (heart != patch[sl, None]).sum(axis=(2, 3))

    coarse = np.linspace(0, 2 * math.pi, 72, endpoint=False)
    out = np.zeros(b)
    for start in range(0, b, 64):
        sl = slice(start, start + 64)
        n = len(c[sl])
        best = coarse[np.argmin(disagreement(sl, np.broadcast_to(coarse, (n, 72))), axis=1)]  # (n,)
        fine = best[:, None] + np.radians(np.arange(-4.0, 4.5, 1.0))[None, :]  # (n, 9)
        out[sl] = fine[np.arange(n), np.argmin(disagreement(sl, fine), axis=1)]
    return np.mod(out, 2 * math.pi)


def orientation(images: np.ndarray, shape: str, threshold: float = 0.25) -> np.ndarray:
    """(B,) orientation in radians, counter-clockwise, modulo the shape's symmetry period
    (2 pi / FOLD[shape]: square pi/2, ellipse pi, heart 2 pi), in [0, period), for images
    that all show `shape`; 0 is the pose rendered at orientation 0. Square and ellipse: from
    4th- and 2nd-order complex moments; heart: by template matching (see _heart_angle)."""
    if shape not in FOLD:
        raise ValueError(f"unknown shape {shape!r}: use one of {', '.join(SHAPES)}")
    if shape == "heart":
        return _heart_angle(images, threshold)
    fold = FOLD[shape]
    size = np.asarray(images).shape[-1]
    raw = np.angle(_complex_moment(images, fold, threshold)) / fold
    return np.mod(raw - _reference_angle(shape, size), 2 * math.pi / fold)


def mean_colour(images: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """(B, C) mean value of each channel over the shape's pixels, in [0, 1]; NaN for an empty image."""
    x = _as_float(images)  # (B, C, H, W)
    m = shape_mask(x, threshold)[:, None]  # (B, 1, H, W)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * m).sum(axis=(2, 3)) / m.sum(axis=(2, 3))


def _label_count_numpy(mask: np.ndarray) -> int:
    """Connected components (8-connectivity) of one (H, W) bool mask, by flood fill."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    count = 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        count += 1
        stack = [start]
        seen[start] = True
        while stack:
            i, j = stack.pop()
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    a, b = i + di, j + dj
                    if 0 <= a < h and 0 <= b < w and mask[a, b] and not seen[a, b]:
                        seen[a, b] = True
                        stack.append((a, b))
    return count


def components(images: np.ndarray, threshold: float = 0.25, use_scipy: bool = True) -> np.ndarray:
    """(B,) int number of 8-connected components of the shape mask (scipy.ndimage when present)."""
    masks = shape_mask(images, threshold)
    label = None
    if use_scipy:
        try:
            from scipy import ndimage

            label = ndimage.label
        except ImportError:  # scipy is optional: the flood fill below gives the same counts
            label = None
    if label is None:
        return np.array([_label_count_numpy(m) for m in masks], dtype=np.int64)
    structure = np.ones((3, 3), dtype=bool)
    return np.array([label(m, structure=structure)[1] for m in masks], dtype=np.int64)


@functools.lru_cache(maxsize=4)
def area_range(size: int = SIZE) -> tuple[float, float]:
    """(smallest, largest) sprite area in pixels over the data set: every shape and orientation at
    scales 0.5 and 1, at 4 x 4 positions (the area barely depends on position)."""
    pos = [0, 10, 21, 31]
    small = [index_of(s, 0, o, x, y) for s in range(3) for o in range(40) for x in pos for y in pos]
    large = [index_of(s, 5, o, x, y) for s in range(3) for o in range(40) for x in pos for y in pos]
    return float(area(render(np.array(small), size=size), 0.5).min()), float(
        area(render(np.array(large), size=size), 0.5).max()
    )


def one_clean_shape(images: np.ndarray, threshold: float = 0.25, tolerance: float = 0.1) -> np.ndarray:
    """(B,) bool: exactly one connected component whose area is within the data set's range
    (widened by `tolerance`, a fraction)."""
    lo, hi = area_range(np.asarray(images).shape[-1])
    a = area(images, threshold)
    return (components(images, threshold) == 1) & (a >= lo * (1 - tolerance)) & (a <= hi * (1 + tolerance))


# Which measured property each factor should move, and in which direction (+1: grows with the
# factor). Position y grows downwards, like image rows; orientation turns counter-clockwise.
PROPERTY_OF_FACTOR = {"x": "x", "y": "y", "scale": "area", "orientation": "orientation",
                      "orientation_cos": "orientation_cos", "orientation_sin": "orientation_sin",
                      "red": "red", "green": "green", "blue": "blue"}  # fmt: skip


def orientation_column(factor: str, shape: str, angle: np.ndarray) -> np.ndarray:
    """(B,) the attribute column `factor` ("orientation_cos" or "orientation_sin") of images of
    `shape` whose measured angle is `angle` (radians): cos or sin of FOLD[shape] x angle."""
    fn = {"orientation_cos": np.cos, "orientation_sin": np.sin}[factor]
    return fn(FOLD[shape] * np.asarray(angle))


def measure(images: np.ndarray, shape: str | None = None, threshold: float = 0.25) -> dict[str, np.ndarray]:
    """Every pixel measurement of a batch (B, C, H, W): x, y (centroid, pixels), area (pixels),
    components, red/green/blue (mean over the shape, RGB only) and, given the `shape` all images
    show, orientation (radians modulo its symmetry period) and orientation_cos / orientation_sin
    (the cosine and sine of FOLD[shape] x orientation, as in the attribute table)."""
    c = centroid(images, threshold)
    out = {"x": c[:, 0], "y": c[:, 1], "area": area(images, threshold), "components": components(images, threshold)}
    if np.asarray(images).shape[1] == 3:
        colour = mean_colour(images, threshold)
        out.update(red=colour[:, 0], green=colour[:, 1], blue=colour[:, 2])
    if shape is not None:
        angle = orientation(images, shape, threshold)
        out["orientation"] = angle
        out["orientation_cos"] = orientation_column("orientation_cos", shape, angle)
        out["orientation_sin"] = orientation_column("orientation_sin", shape, angle)
    return out


def property_change(before: dict[str, np.ndarray], after: dict[str, np.ndarray], name: str,
                    shape: str | None = None) -> np.ndarray:  # fmt: skip
    """(B,) signed change of one measured property; orientation wrapped by the shape's period."""
    if name == "orientation":
        if shape is None:
            raise ValueError("orientation changes need the shape (its symmetry period)")
        return angle_change(before[name], after[name], 2 * math.pi / FOLD[shape])
    return after[name] - before[name]


def moved_right_way(before: dict[str, np.ndarray], after: dict[str, np.ndarray], factor: str,
                    shape: str | None = None) -> np.ndarray:  # fmt: skip
    """(B,) bool: the factor's property grew after a +shift (NaN, e.g. an empty image, counts as no)."""
    change = property_change(before, after, PROPERTY_OF_FACTOR[factor], shape)
    return np.nan_to_num(change, nan=0.0) > 0
